"""The stores with a million sessions: request time, revoking one user, cleanup.

On PostgreSQL (the ``PG*`` variables; the database ``sessionkit_bench_scale``
is created and dropped around the run) and a private Redis (a
``redis-server`` on a free loopback port), the tables filled with SQL
(``generate_series``; key hashes are SHA-256 of the row number, plausible
deadlines, one real encoded session per user, 10 sessions per user at the
largest size):

1. growth: a signed-in, read-only request with 10k, 100k and 1M sessions in
   the table, ``sessionkit cached_db`` and ``sessionkit db`` taking turns;
2. revoke: ``revoke_user_sessions(user, reason=...)`` for a user holding 10
   of the 1M live sessions, with ``cached_db`` as the engine so the cache
   purge is included (median over several users; ``db`` beside it); and
   Django's way of doing the same with its own backends: scan
   ``django_session`` (1M rows of real encoded data) decoding every row with
   ``get_decoded()`` to find the user's sessions, then delete them;
3. cleanup: ``SessionStore.clear_expired()`` of the cached store on 100k and
   on 1M expired sessions (beside 10k live ones that must survive), each in a
   fresh subprocess: wall time, peak of ``tracemalloc`` and growth of the
   process's maximum resident set size (``getrusage``), to show that memory
   does not grow with the number of sessions.

    python bench/scale.py                    # 10k, 100k, 1M (about 4 minutes)
    python bench/scale.py --quick            # 1k, 10k, 50k (under a minute)
    python bench/scale.py --sizes 10000,100000 --parts growth,revoke

Exit status: 0 when the run completed, 2 when it could not be set up.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
from typing import Any

from common import (
    SESSION_CACHE,
    SESSIONKIT_MIDDLEWARE,
    Case,
    StatementCounter,
    configure,
    count_redis,
    interleave,
    machine,
    postgres_database,
    redis_cache,
)

DATABASE = "sessionkit_bench_scale"
CACHED = "django_sessionkit.backends.cached_db"
DB = "django_sessionkit.backends.db"
PARTS = ("growth", "revoke", "cleanup")
#: How many sessions each user holds at the largest size.
SESSIONS_PER_USER = 10
#: Live sessions kept beside the expired ones during cleanup.
LIVE_BESIDE_EXPIRED = 10_000
BACKEND = "django.contrib.auth.backends.ModelBackend"
USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


def settings_for(redis_url: str) -> dict[str, Any]:
    """The cached store on the private Redis, with the policy middleware."""
    return {
        "CACHES": {
            "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
            SESSION_CACHE: redis_cache(redis_url),
        },
        "SESSION_CACHE_ALIAS": SESSION_CACHE,
        "SESSION_ENGINE": CACHED,
        "MIDDLEWARE": SESSIONKIT_MIDDLEWARE,
    }


# -- Filling the tables with SQL ------------------------------------------------


class Tables:
    """Users and sessions written by SQL, fast."""

    def __init__(self, users: int) -> None:
        self.users = users
        self.first_user = 0
        self.live = 0  # live sessions in sessionkit_session so far

    def sql(self, statement: str, params: list[Any] | None = None) -> Any:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute(statement, params)
            return cursor.fetchall() if cursor.description else None

    def create_users(self) -> None:
        """``self.users`` users with one encoded session each, for the fills."""
        from django.contrib.auth.models import User
        from django.db import connection

        from django_sessionkit.backends.db import SessionStore

        started = time.monotonic()
        self.sql(
            "INSERT INTO auth_user (password, is_superuser, username, first_name,"
            " last_name, email, is_staff, is_active, date_joined)"
            " SELECT '!', false, 'user' || i, '', '', '', false, true, now()"
            " FROM generate_series(1, %s) i",
            [self.users],
        )
        ((first, last),) = self.sql(
            "SELECT min(id), max(id) FROM auth_user WHERE username LIKE %s",
            ["user%"],
        )
        assert last - first + 1 == self.users
        self.first_user = first
        # What login() stores: the user's id, backend and password hash HMAC
        # (the same for all, whose passwords are unusable).
        auth_hash = User(password="!").get_session_auth_hash()  # noqa: S106
        store = SessionStore()
        self.sql(
            "CREATE UNLOGGED TABLE bench_encoding (user_id bigint PRIMARY KEY,"
            " data text NOT NULL)"
        )
        with connection.cursor() as cursor:
            raw = cursor.cursor
            with raw.copy("COPY bench_encoding (user_id, data) FROM STDIN") as copy:
                for user_id in range(first, last + 1):
                    data = {
                        "_auth_user_id": str(user_id),
                        "_auth_user_backend": BACKEND,
                        "_auth_user_hash": auth_hash,
                    }
                    copy.write_row((user_id, store.encode(data)))
        print(
            f"  {self.users:,} users and their encoded sessions: "
            f"{time.monotonic() - started:.1f} s"
        )

    def fill_live(self, total: int) -> None:
        """Add live sessions until ``total`` are stored (10 per user at most)."""
        self._fill("live", self.live + 1, total)
        self.live = total

    def fill_expired(self, count: int) -> None:
        """Add ``count`` sessions past their idle deadline."""
        self._fill("gone", 1, count)

    def _fill(self, kind: str, first: int, last: int) -> None:
        if last < first:
            return
        started = time.monotonic()
        if kind == "live":
            # Signed in up to 11 hours ago, active up to 25 minutes ago.
            active = "now() - (i %% 1500) * interval '1 second'"
            signed_in = "now() - (i * 7919 %% 39600) * interval '1 second'"
        else:
            # Last active 31 minutes to 7 days ago: past the idle deadline.
            active = (
                "now() - interval '31 minutes' - (i * 7919 %% 604800)"
                " * interval '1 second'"
            )
            signed_in = f"{active} - (i %% 39600) * interval '1 second'"
        # Only this function's own SQL fragments are formatted in.
        self.sql(
            "INSERT INTO sessionkit_session (key_hash, session_data, user_id,"  # noqa: S608
            " created_at, authenticated_at, last_seen_at, expire_date,"
            " absolute_expire_date, ip, user_agent, remember_me, rotate_due)"
            " SELECT encode(sha256(convert_to(%(kind)s || '-' || i, 'UTF8')), 'hex'),"
            " e.data, e.user_id, s.signed_in, s.signed_in, s.active,"
            " s.active + interval '30 minutes', s.signed_in + interval '12 hours',"
            " '10.0.0.0'::inet + i, %(agent)s, false, false"
            " FROM generate_series(%(start)s::bigint, %(stop)s::bigint) i"
            f" CROSS JOIN LATERAL (SELECT {active} AS active,"
            f" {signed_in} AS signed_in) s"
            " JOIN bench_encoding e ON e.user_id = %(first)s + i %% %(users)s",
            {
                "kind": kind,
                "agent": USER_AGENT,
                "start": first,
                "stop": last,
                "first": self.first_user,
                "users": self.users,
            },
        )
        self.sql("VACUUM ANALYZE sessionkit_session")
        print(
            f"  {last - first + 1:,} {kind} sessions written: "
            f"{time.monotonic() - started:.1f} s"
        )

    def fill_django(self, count: int) -> None:
        """``count`` sessions in Django's own table, the same data and users."""
        started = time.monotonic()
        self.sql(
            "INSERT INTO django_session (session_key, session_data, expire_date)"
            " SELECT md5('django-' || i), e.data,"
            " now() + interval '1 day' + (i %% 86400) * interval '1 second'"
            " FROM generate_series(1, %(count)s) i"
            " JOIN bench_encoding e ON e.user_id = %(first)s + i %% %(users)s",
            {"count": count, "first": self.first_user, "users": self.users},
        )
        self.sql("VACUUM ANALYZE django_session")
        print(
            f"  {count:,} sessions in django_session: "
            f"{time.monotonic() - started:.1f} s"
        )

    def empty(self) -> None:
        self.sql("TRUNCATE sessionkit_session, sessionkit_sessionevent")
        self.live = 0

    def user_ids(self, how_many: int) -> list[int]:
        """Users spread over the range, each holding its share of the sessions."""
        step = self.users // (how_many + 1)
        return [self.first_user + step * k for k in range(1, how_many + 1)]


# -- 1. Growth ------------------------------------------------------------------------


def growth(
    tables: Tables, sizes: list[int], args: argparse.Namespace, redis: type[Any]
) -> list[dict[str, Any]]:
    from django.contrib.auth.models import User
    from django.test import Client, override_settings

    user, _ = User.objects.get_or_create(username="bench")
    rows = []
    for size in sizes:
        tables.fill_live(size)
        cases = []
        for label, engine in (("sessionkit cached_db", CACHED), ("sessionkit db", DB)):
            with override_settings(SESSION_ENGINE=engine):
                client = Client()
                client.force_login(user)
                client.get("/")  # builds this client's middleware with the engine
            cases.append(
                Case(label, lambda i, client=client: client.get("/"), b"bench")
            )
        interleave(
            cases,
            requests=args.requests,
            warmup=args.warmup,
            redis=redis,
            rotate=True,
        )
        for case in cases:
            rows.append({"size": size, **case.row(args.requests)})
        print(
            "  "
            + ", ".join(
                f"{r['label']} {r['median_us']:.0f} µs"
                for r in rows
                if r["size"] == size
            )
        )
    return rows


def print_growth(rows: list[dict[str, Any]]) -> None:
    print(
        f"{'sessions':>10}  {'store':<22}{'median µs':>10}{'p95 µs':>9}"
        f"{'SQL/req':>9}{'writes/req':>11}{'Redis cmd/req':>14}{'round trips':>12}"
    )
    for r in rows:
        print(
            f"{r['size']:>10,}  {r['label']:<22}{r['median_us']:>10.0f}"
            f"{r['p95_us']:>9.0f}{r['sql_per_request']:>9.2f}"
            f"{r['writes_per_request']:>11.2f}"
            f"{r['redis_commands_per_request']:>14.2f}"
            f"{r['redis_round_trips_per_request']:>12.2f}"
        )


# -- 2. Revoking one user's sessions --------------------------------------------------


def revoke(tables: Tables, users: int, redis: type[Any]) -> dict[str, Any]:
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import override_settings

    from django_sessionkit.models import Session
    from django_sessionkit.revocation import revoke_user_sessions

    result: dict[str, Any] = {"live": Session.objects.count()}
    picked = tables.user_ids(2 * users)
    for label, engine, ids in (
        ("sessionkit cached_db", CACHED, picked[0::2]),
        ("sessionkit db", DB, picked[1::2]),
    ):
        times, statements, round_trips, revoked = [], [], [], []
        with override_settings(SESSION_ENGINE=engine):
            for user_id in ids:
                user = User.objects.get(pk=user_id)
                counter = StatementCounter()
                redis.reset()
                with connection.execute_wrapper(counter):
                    start = time.perf_counter()
                    count = revoke_user_sessions(user, reason="bench")
                    times.append((time.perf_counter() - start) * 1000)
                statements.append(counter.statements)
                round_trips.append(redis.round_trips)
                revoked.append(count)
        expected = tables.live // tables.users  # what each user holds
        if set(revoked) != {expected}:
            raise RuntimeError(f"{label}: revoked {revoked}, expected {expected}")
        result[label] = {
            "median_ms": statistics.median(times),
            "min_ms": min(times),
            "max_ms": max(times),
            "runs": len(times),
            "sessions": revoked[0],
            "sql": statistics.median(statements),
            "redis_round_trips": statistics.median(round_trips),
        }
        print(
            f"  {label}: {result[label]['median_ms']:.2f} ms median over "
            f"{len(times)} users ({revoked[0]} sessions each)"
        )
    return result


def django_revoke(tables: Tables, size: int) -> dict[str, Any]:
    """Django's way: decode every row of ``django_session`` to find a user's."""
    from django.contrib.auth import SESSION_KEY
    from django.contrib.sessions.backends.cached_db import SessionStore
    from django.contrib.sessions.models import Session as DjangoSession
    from django.test import override_settings

    tables.fill_django(size)
    (user_id,) = tables.user_ids(1)
    wanted = str(user_id)
    with override_settings(SESSION_ENGINE="django.contrib.sessions.backends.cached_db"):
        start = time.perf_counter()
        scanned = 0
        found = []
        for row in DjangoSession.objects.iterator(chunk_size=2000):
            scanned += 1
            if row.get_decoded().get(SESSION_KEY) == wanted:
                found.append(row.session_key)
        scan = time.perf_counter() - start
        start = time.perf_counter()
        for session_key in found:
            SessionStore().delete(session_key)  # the row and its cache entry
        delete = time.perf_counter() - start
    expected = size // tables.users
    if len(found) != expected:
        raise RuntimeError(f"Django scan found {len(found)} sessions, not {expected}")
    print(f"  Django: scan and decode {scanned:,} rows {scan:.1f} s")
    return {
        "rows": scanned,
        "sessions": len(found),
        "scan_s": scan,
        "delete_ms": delete * 1000,
    }


def print_revoke(result: dict[str, Any], django: dict[str, Any] | None) -> None:
    print(f"{result['live']:,} live sessions in the table.")
    print(
        f"  {'how':<52}{'median':>12}{'min':>10}{'max':>10}{'SQL':>6}{'Redis RT':>10}"
    )
    for label in ("sessionkit cached_db", "sessionkit db"):
        r = result[label]
        print(
            f"  revoke_user_sessions(), {label:<28}"
            f"{r['median_ms']:>9.2f} ms{r['min_ms']:>7.2f} ms{r['max_ms']:>7.2f} ms"
            f"{r['sql']:>6.0f}{r['redis_round_trips']:>10.0f}"
            f"   ({r['runs']} users, {r['sessions']} sessions each)"
        )
    if django is not None:
        print(
            f"  Django: scan + get_decoded() of {django['rows']:,} rows"
            f"{django['scan_s'] * 1000:>24,.0f} ms   (once; found "
            f"{django['sessions']}, then deleted them in "
            f"{django['delete_ms']:.1f} ms with cached_db's delete())"
        )


# -- 3. Cleanup, in a fresh process per size ------------------------------------------


def cleanup(tables: Tables, sizes: list[int], redis_url: str) -> list[dict[str, Any]]:
    from django.db import connection

    from django_sessionkit.models import Session

    rows = []
    for size in sizes:
        measured: dict[str, Any] = {"size": size}
        # Two runs: the first times it, the second traces allocations (which
        # slows Python down).
        for trace in (False, True):
            tables.empty()
            tables.fill_live(LIVE_BESIDE_EXPIRED)
            tables.fill_expired(size)
            command = [
                sys.executable,
                __file__,
                "--cleanup-child",
                connection.settings_dict["NAME"],
                redis_url,
            ] + (["--trace"] if trace else [])
            done = subprocess.run(
                command, capture_output=True, text=True, check=False, timeout=3600
            )
            if done.returncode != 0:
                raise RuntimeError(f"cleanup child failed:\n{done.stderr}")
            child = json.loads(done.stdout.strip().splitlines()[-1])
            if trace:
                measured["tracemalloc_peak_kib"] = child["tracemalloc_peak_kib"]
                measured["traced_seconds"] = child["seconds"]
            else:
                measured.update(child)
            left = Session.objects.count()
            if left != LIVE_BESIDE_EXPIRED:
                raise RuntimeError(f"{left} sessions left, not {LIVE_BESIDE_EXPIRED}")
        rows.append(measured)
        print(
            f"  {size:,} expired: {measured['seconds']:.1f} s, "
            f"tracemalloc peak {measured['tracemalloc_peak_kib']:,.0f} KiB, "
            f"maxrss +{measured['maxrss_growth_kib']:,} KiB"
        )
    return rows


def cleanup_child(database: str, redis_url: str, trace: bool) -> int:
    """Run ``clear_expired()`` once in this fresh process; print what it cost."""
    base = postgres_database(database)
    base["NAME"] = database
    configure(base, **settings_for(redis_url))
    import gc

    from django.db import connection

    from django_sessionkit.backends.cached_db import SessionStore

    connection.ensure_connection()
    SessionStore._queryset().filter(pk=0).exists()  # imports and first query
    gc.collect()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if trace:
        tracemalloc.start()
    start = time.perf_counter()
    SessionStore.clear_expired()
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1] if trace else 0
    tracemalloc.stop()
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "seconds": seconds,
                "tracemalloc_peak_kib": peak / 1024,
                "maxrss_before_kib": before,
                "maxrss_growth_kib": after - before,
            }
        )
    )
    return 0


def print_cleanup(rows: list[dict[str, Any]]) -> None:
    print(
        f"{'expired':>10}{'wall s':>9}{'rows/s':>10}{'tracemalloc peak':>18}"
        f"{'maxrss growth':>15}{'maxrss at start':>17}"
    )
    for r in rows:
        print(
            f"{r['size']:>10,}{r['seconds']:>9.1f}{r['size'] / r['seconds']:>10,.0f}"
            f"{r['tracemalloc_peak_kib']:>14,.0f} KiB"
            f"{r['maxrss_growth_kib']:>11,} KiB{r['maxrss_before_kib']:>13,} KiB"
        )


# -- Main ------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        default="10000,100000,1000000",
        help="session counts for growth; revoke at the largest, cleanup at the "
        "larger two (default 10000,100000,1000000)",
    )
    parser.add_argument("--parts", default=",".join(PARTS))
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--revoke-users", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="1k, 10k, 50k sessions")
    parser.add_argument("--cleanup-child", nargs=2, metavar=("DATABASE", "REDIS_URL"))
    parser.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cleanup_child:
        return cleanup_child(*args.cleanup_child, trace=args.trace)
    if args.quick:
        args.sizes, args.requests, args.warmup = "1000,10000,50000", 300, 30
    sizes = sorted(int(s) for s in args.sizes.split(","))
    parts = set(args.parts.split(","))
    if not parts <= set(PARTS) or not sizes:
        parser.error(f"--parts: some of {', '.join(PARTS)}; --sizes: numbers")
    largest = sizes[-1]

    from tests.servers import RedisProcess

    started = time.monotonic()
    try:
        server = RedisProcess().start()
    except RuntimeError as exc:
        print(f"Setup failed: {exc}", file=sys.stderr)
        return 2
    try:
        database = postgres_database(DATABASE)
        configure(database, **settings_for(server.url))
        from django.conf import settings
        from django.test.utils import get_runner

        try:
            redis = count_redis()
            runner = get_runner(settings)(verbosity=0, interactive=False)
            old_config = runner.setup_databases()
        except Exception as exc:
            print(f"Setup failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 2
        try:
            tables = Tables(users=max(largest // SESSIONS_PER_USER, 1))
            print("Filling:")
            tables.create_users()
            results: dict[str, Any] = {}
            if "growth" in parts:
                print("Growth:")
                results["growth"] = growth(tables, sizes, args, redis)
            if "revoke" in parts:
                print("Revoke:")
                tables.fill_live(largest)
                results["revoke"] = revoke(tables, args.revoke_users, redis)
                results["django"] = django_revoke(tables, largest)
            if "cleanup" in parts:
                print("Cleanup:")
                results["cleanup"] = cleanup(tables, sizes[-2:], server.url)
            print(
                f"\n{machine()}, Redis 7 (private redis-server); "
                f"run took {time.monotonic() - started:.0f} s"
            )
            if "growth" in results:
                print(
                    f"\nRead-only signed-in request, {args.requests} timed "
                    f"requests per store after {args.warmup} warm-up rounds:"
                )
                print_growth(results["growth"])
            if "revoke" in results:
                print("\nRevoking one user's sessions:")
                print_revoke(results["revoke"], results.get("django"))
            if "cleanup" in results:
                print(
                    f"\nclear_expired() of the cached store, "
                    f"{LIVE_BESIDE_EXPIRED:,} live sessions beside (fresh process "
                    "per size; wall time without tracemalloc):"
                )
                print_cleanup(results["cleanup"])
        finally:
            runner.teardown_databases(old_config)
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
