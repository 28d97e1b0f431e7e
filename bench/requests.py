"""Per-request cost of a session store: time, SQL statements and writes.

Runs a signed-in, read-only request (session loaded, user looked up, nothing
changed) through Django's real middleware stack, in one process and one run:
Django's ``db`` engine with ``SessionMiddleware``, and ours with
``SessionKitMiddleware`` enforcing the whole default policy (idle and
absolute timeouts, activity every 60 s, rotation every 15 minutes):

    python bench/requests.py                 # SQLite (a file in a temp dir)
    python bench/requests.py --postgres      # PostgreSQL from PG* variables

Times are medians and 95th percentiles over ``--requests`` requests after a
warm-up; the figures in docs/performance.rst come from this script.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

DJANGO_MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
#: label -> (SESSION_ENGINE, MIDDLEWARE)
ENGINES = {
    "django db": ("django.contrib.sessions.backends.db", DJANGO_MIDDLEWARE),
    "sessionkit db": (
        "django_sessionkit.backends.db",
        [*DJANGO_MIDDLEWARE, "django_sessionkit.middleware.SessionKitMiddleware"],
    ),
}


def configure(postgres: bool, workdir: str) -> None:
    import django
    from django.conf import settings

    if postgres:
        database = {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": "postgres",
            "USER": os.environ.get("PGUSER", "postgres"),
            "PASSWORD": os.environ.get("PGPASSWORD", ""),
            "HOST": os.environ.get("PGHOST", "127.0.0.1"),
            "PORT": os.environ.get("PGPORT", "5432"),
            # A database of its own, created and dropped around the run.
            "TEST": {"NAME": "sessionkit_bench"},
        }
    else:
        database = {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(Path(workdir) / "bench.sqlite3"),
        }
    settings.configure(
        SECRET_KEY="bench-only",  # noqa: S106
        DEBUG=False,
        USE_TZ=True,
        ALLOWED_HOSTS=["testserver"],
        INSTALLED_APPS=[
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "django_sessionkit",
        ],
        MIDDLEWARE=DJANGO_MIDDLEWARE,
        ROOT_URLCONF=__name__,
        DATABASES={"default": database},
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
    )
    django.setup()


def whoami(request):  # type: ignore[no-untyped-def]
    from django.http import HttpResponse

    return HttpResponse(request.user.get_username())


urlpatterns: list[object] = []


class StatementCounter:
    """A database execute wrapper that counts statements and writes."""

    def __init__(self) -> None:
        self.statements = 0
        self.writes = 0

    def __call__(self, execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        self.statements += 1
        if not sql.lstrip().upper().startswith("SELECT"):
            self.writes += 1
        return execute(sql, params, many, context)


def run(requests: int, warmup: int, background: int) -> list[dict[str, object]]:
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client, override_settings
    from django.urls import path

    urlpatterns.append(path("", whoami))
    user, _ = User.objects.get_or_create(username="bench")
    user.set_password("bench")
    user.save()
    clients = {}
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
            clients[label] = client
    # Engines take turns request by request, so drift in the machine's speed
    # is shared between them instead of favouring one.
    times: dict[str, list[float]] = {label: [] for label in clients}
    counters = {label: StatementCounter() for label in clients}
    for i in range(warmup + requests):
        for label, client in clients.items():
            with connection.execute_wrapper(counters[label]):
                start = time.perf_counter_ns()
                response = client.get("/")
                elapsed = (time.perf_counter_ns() - start) / 1000
            assert response.content == b"bench"
            if i == warmup - 1:
                counters[label].statements = counters[label].writes = 0
            if i >= warmup:
                times[label].append(elapsed)
    results = []
    for label, samples in times.items():
        samples.sort()
        results.append(
            {
                "engine": label,
                "median_us": statistics.median(samples),
                "p95_us": samples[int(len(samples) * 0.95) - 1],
                "sql_per_request": counters[label].statements / requests,
                "writes_per_request": counters[label].writes / requests,
            }
        )
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--background", type=int, default=10_000)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    with tempfile.TemporaryDirectory() as workdir:
        configure(args.postgres, workdir)
        import django
        from django.db import connection
        from django.test.utils import get_runner

        runner = get_runner(django.conf.settings)(verbosity=0, interactive=False)
        old_config = runner.setup_databases()
        try:
            results = run(args.requests, args.warmup, args.background)
        finally:
            runner.teardown_databases(old_config)
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
                f"{r['engine']:<16}{median:>10.0f}{r['p95_us']:>10.0f}"
                f"{median / base:>9.2f}x"
                f"{r['sql_per_request']:>9.2f}{r['writes_per_request']:>12.2f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
