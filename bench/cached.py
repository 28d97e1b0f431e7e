"""The cached store against Django's cache and cached_db: per-request time and costs.

In one run, on one PostgreSQL database and one private Redis (a
``redis-server`` started on a free loopback port), five set-ups take turns
request by request, each with ``AuthenticationMiddleware`` and a signed-in
user:

- ``django cache``: ``django.contrib.sessions.backends.cache`` (django-redis)
  with ``SessionMiddleware``;
- ``django cached_db``: ``django.contrib.sessions.backends.cached_db`` with
  ``SessionMiddleware``;
- ``sessionkit db`` and ``sessionkit cached_db``: our two stores with
  ``SessionKitMiddleware`` enforcing the default policy (activity written at
  most every 60 s, rotation every 15 minutes);
- ``store only cached_db``: our cached store with ``SessionMiddleware`` only,
  no policy: the store compared with Django's stores like for like.

Two kinds of signed-in request: ``read`` (the session and the user are
loaded, nothing changes) and ``write`` (the view stores a new value in the
session); and two kinds of anonymous request carrying a well-formed key that
matches no session: ``unknown`` (the same key every time) and ``random`` (a
new key every time). Each reports the median and p95 µs, SQL statements and
writes, Redis commands and round trips per request, and the two targets are
checked, for the store alone and for the full stack: a read of ``store only
cached_db`` and of ``sessionkit cached_db`` within 1.05x of ``django cache``,
a write no slower than ``django cached_db``.

    python bench/cached.py                   # PostgreSQL from the PG* variables
    python bench/cached.py --quick           # a short run, to try it out
    python bench/cached.py --profile "sessionkit cached_db:read"
    python bench/cached.py --kinds unknown random --setups "sessionkit db"

``--profile CASE:KIND`` runs cProfile over that case's timed requests and
prints where the time goes (that run's times are slowed by the profiler).
The database ``sessionkit_bench_cached`` is created and dropped around the
run. Exit status: 0 when the run completed (whether or not the targets were
met), 2 when it could not be set up.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from typing import Any

from common import (
    DJANGO_MIDDLEWARE,
    SESSION_CACHE,
    SESSIONKIT_MIDDLEWARE,
    Case,
    configure,
    count_redis,
    interleave,
    machine,
    postgres_database,
    redis_cache,
    test_databases,
)

#: label -> (SESSION_ENGINE, MIDDLEWARE)
SETUPS = {
    "django cache": ("django.contrib.sessions.backends.cache", DJANGO_MIDDLEWARE),
    "django cached_db": (
        "django.contrib.sessions.backends.cached_db",
        DJANGO_MIDDLEWARE,
    ),
    "sessionkit db": ("django_sessionkit.backends.db", SESSIONKIT_MIDDLEWARE),
    "sessionkit cached_db": (
        "django_sessionkit.backends.cached_db",
        SESSIONKIT_MIDDLEWARE,
    ),
    # The store alone, under Django's middleware only: what the store costs
    # against Django's stores, without the policy that ours enforce.
    "store only cached_db": (
        "django_sessionkit.backends.cached_db",
        DJANGO_MIDDLEWARE,
    ),
}
KINDS = ("read", "write")
#: Requests carrying a well-formed key that matches no session: ``unknown``
#: presents the same key every time (a stale cookie sent again and again),
#: ``random`` a new one each time (a flood of made-up cookies).
UNKNOWN_KINDS = ("unknown", "random")
#: (kind, set-up measured, set-up it is held against, largest ratio allowed)
TARGETS = [
    ("read", "sessionkit cached_db", "django cache", 1.05),
    ("write", "sessionkit cached_db", "django cached_db", 1.00),
    ("read", "store only cached_db", "django cache", 1.05),
    ("write", "store only cached_db", "django cached_db", 1.00),
]
DATABASE = "sessionkit_bench_cached"


def signed_in_case(label: str, kind: str, user: Any, background: int) -> Case:
    """A client signed in with the set-up ``label``, sending ``kind`` requests."""
    from django.test import Client, override_settings

    engine, middleware = SETUPS[label]
    with override_settings(SESSION_ENGINE=engine, MIDDLEWARE=middleware):
        store_class = __import__(engine, fromlist=["SessionStore"]).SessionStore
        for _ in range(background):  # other visitors' sessions
            other = store_class()
            other["n"] = 1
            other.save()
        client = Client()
        client.force_login(user)
        # The first request builds this client's middleware, which keeps the
        # engine it was built with; the others run under the same settings.
        client.get("/")
    if kind == "read":
        return Case(f"{label}:{kind}", lambda i: client.get("/"), b"bench")
    return Case(f"{label}:{kind}", lambda i: client.get("/put/", {"n": i}), b"bench")


def unknown_case(label: str, kind: str) -> Case:
    """A client presenting a key that matches no session (``kind``: see UNKNOWN_KINDS).

    The cookie is set before every request: the response deletes it, as it
    should, and the attacker or the stale browser sends it again.
    """
    from django.conf import settings
    from django.test import Client, override_settings

    from django_sessionkit.keys import new_key

    engine, middleware = SETUPS[label]
    with override_settings(SESSION_ENGINE=engine, MIDDLEWARE=middleware):
        client = Client()
        client.get("/")  # builds the client's middleware with this engine
    stale = new_key()

    def send(i: int) -> Any:
        key = stale if kind == "unknown" else new_key()
        client.cookies[settings.SESSION_COOKIE_NAME] = key
        return client.get("/")

    return Case(f"{label}:{kind}", send, b"")


def run(args: argparse.Namespace, redis: type[Any]) -> list[dict[str, Any]]:
    from django.contrib.auth.models import User

    user = User.objects.create_user("bench", password="bench")  # noqa: S106
    kinds = args.kinds
    signed_in = [k for k in kinds if k in KINDS]
    # Each kind of request has a session of its own.
    per_setup = args.background // max(len(signed_in), 1)
    setups = args.setups or list(SETUPS)
    cases = [
        signed_in_case(label, kind, user, per_setup)
        if kind in KINDS
        else unknown_case(label, kind)
        for label in setups
        for kind in kinds
    ]
    profiler = cProfile.Profile() if args.profile else None
    profiled = next((c for c in cases if c.label == args.profile), None)
    if args.profile and profiled is None:
        raise SystemExit(f"--profile: no case {args.profile!r}")
    started = time.monotonic()
    interleave(
        cases,
        requests=args.requests,
        warmup=args.warmup,
        redis=redis,
        rotate=True,
        profile=profiled,
        profiler=profiler,
    )
    print(f"Timed and warm-up rounds took {time.monotonic() - started:.0f} s.")
    if profiler is not None:
        stats = pstats.Stats(profiler, stream=sys.stdout)
        print(f"\nProfile of {args.requests} requests of {args.profile}:")
        stats.strip_dirs().sort_stats("tottime").print_stats(25)
        stats.sort_stats("cumulative").print_stats(40)
    return [case.row(args.requests) for case in cases]


def report(results: list[dict[str, Any]]) -> bool:
    """Print the table and the targets; return whether every target is met."""
    by_label = {r["label"]: r for r in results}
    print(
        f"{'set-up':<22}{'kind':<7}{'median µs':>10}{'p95 µs':>9}"
        f"{'SQL/req':>9}{'writes/req':>11}{'Redis cmd/req':>14}{'round trips':>12}"
        "  Redis commands per request"
    )
    for r in results:
        label, kind = r["label"].split(":")
        commands = ", ".join(
            f"{name} {count:.2f}" for name, count in sorted(r["redis_commands"].items())
        )
        print(
            f"{label:<22}{kind:<7}{r['median_us']:>10.0f}{r['p95_us']:>9.0f}"
            f"{r['sql_per_request']:>9.2f}{r['writes_per_request']:>11.2f}"
            f"{r['redis_commands_per_request']:>14.2f}"
            f"{r['redis_round_trips_per_request']:>12.2f}  {commands or '-'}"
        )
    met = True
    print("\nTargets (medians):")
    for kind, ours, theirs, limit in TARGETS:
        if f"{ours}:{kind}" not in by_label or f"{theirs}:{kind}" not in by_label:
            continue  # not measured in this run
        ratio = (
            by_label[f"{ours}:{kind}"]["median_us"]
            / (by_label[f"{theirs}:{kind}"]["median_us"])
        )
        ok = ratio <= limit
        met = met and ok
        print(
            f"  {kind}: {ours} / {theirs} = {ratio:.3f}x "
            f"(target <= {limit:.2f}x): {'met' if ok else 'MISSED'}"
        )
    return met


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument(
        "--background",
        type=int,
        default=10_000,
        help="other visitors' sessions stored by each set-up (default 10000)",
    )
    parser.add_argument("--quick", action="store_true", help="200 requests, 20 warm-up")
    parser.add_argument("--profile", metavar="SETUP:KIND")
    parser.add_argument(
        "--kinds",
        nargs="+",
        choices=KINDS + UNKNOWN_KINDS,
        default=list(KINDS + UNKNOWN_KINDS),
        help="kinds of request to measure (default: all)",
    )
    parser.add_argument(
        "--setups",
        nargs="+",
        choices=list(SETUPS),
        help="set-ups to measure (default: all)",
    )
    args = parser.parse_args()
    if args.quick:
        args.requests, args.warmup, args.background = 200, 20, 200

    from tests.servers import RedisProcess

    try:
        server = RedisProcess().start()
    except RuntimeError as exc:
        print(f"Setup failed: {exc}", file=sys.stderr)
        return 2
    try:
        configure(
            postgres_database(DATABASE),
            CACHES={
                "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
                SESSION_CACHE: redis_cache(server.url),
            },
            SESSION_CACHE_ALIAS=SESSION_CACHE,
        )
        try:
            redis = count_redis()
            databases = test_databases()
            databases.__enter__()
        except Exception as exc:
            print(f"Setup failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 2
        try:
            results = run(args, redis)
            print(
                f"\n{machine()}, Redis {server_version(server.url)}; "
                f"{args.requests} timed requests per case after {args.warmup} "
                f"warm-up rounds, {args.background} other sessions per set-up"
            )
            report(results)
        finally:
            databases.__exit__(None, None, None)
    finally:
        server.stop()
    return 0


def server_version(url: str) -> str:
    import redis

    client = redis.Redis.from_url(url)
    try:
        return str(client.info("server")["redis_version"])
    finally:
        client.close()


if __name__ == "__main__":
    sys.exit(main())
