"""Per-request cost of a session store: time, SQL statements and writes.

Runs a signed-in, read-only request (session loaded, user looked up, nothing
changed) through Django's real middleware stack, in one process and one run:
Django's ``db`` engine with ``SessionMiddleware``, and ours with
``SessionKitMiddleware`` enforcing the whole default policy (idle and
absolute timeouts, activity every 60 s, rotation every 15 minutes):

    python bench/requests.py                 # SQLite (a file in a temp dir)
    python bench/requests.py --postgres      # PostgreSQL from PG* variables

Times are medians and 95th percentiles over ``--requests`` requests after a
warm-up; the figures in docs/topics/performance.rst come from this script.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from common import (
    DJANGO_MIDDLEWARE,
    SESSIONKIT_MIDDLEWARE,
    Case,
    configure,
    interleave,
    postgres_database,
    test_databases,
)

#: label -> (SESSION_ENGINE, MIDDLEWARE)
ENGINES = {
    "django db": ("django.contrib.sessions.backends.db", DJANGO_MIDDLEWARE),
    "sessionkit db": ("django_sessionkit.backends.db", SESSIONKIT_MIDDLEWARE),
}


def run(requests: int, warmup: int, background: int) -> list[dict[str, object]]:
    from django.contrib.auth.models import User
    from django.test import Client, override_settings

    user, _ = User.objects.get_or_create(username="bench")
    user.set_password("bench")
    user.save()
    cases = []
    for label, (engine, middleware) in ENGINES.items():
        with override_settings(SESSION_ENGINE=engine, MIDDLEWARE=middleware):
            store_class = __import__(engine, fromlist=["SessionStore"]).SessionStore
            for _ in range(background):  # other visitors' sessions
                other = store_class()
                other["n"] = 1
                other.save()
            client = Client()
            client.force_login(user)
            # The first request builds this client's middleware, which keeps
            # the engine it was built with.
            client.get("/")
            cases.append(
                Case(label, lambda i, client=client: client.get("/"), b"bench")
            )
    interleave(cases, requests=requests, warmup=warmup)
    return [case.row(requests) for case in cases]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--background", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        if args.postgres:
            database = postgres_database("sessionkit_bench")
        else:
            database = {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": str(Path(workdir) / "bench.sqlite3"),
            }
        configure(database)
        import django
        from django.db import connection

        with test_databases():
            results = run(args.requests, args.warmup, args.background)
        print(
            f"Django {django.get_version()}, Python {sys.version.split()[0]}, "
            f"{connection.vendor}, {args.background} other sessions, "
            f"{args.requests} requests"
        )
        print(
            f"{'engine':<16}{'median µs':>10}{'p95 µs':>10}{'vs first':>10}"
            f"{'SQL/req':>9}{'writes/req':>12}"
        )
        base = float(results[0]["median_us"])  # type: ignore[arg-type]
        for r in results:
            median = float(r["median_us"])  # type: ignore[arg-type]
            print(
                f"{r['label']:<16}{median:>10.0f}{r['p95_us']:>10.0f}"
                f"{median / base:>9.2f}x"
                f"{r['sql_per_request']:>9.2f}{r['writes_per_request']:>12.2f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
