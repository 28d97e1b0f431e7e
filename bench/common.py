"""What the benchmark scripts share: settings, the views, the request loop, counters.

Not a script: ``requests.py``, ``cached.py`` and ``scale.py`` import it (they
run with this directory first on ``sys.path``). Every benchmark works the same
way: the set-ups under comparison take turns request by request within one
run, so drift in the machine's speed is shared between them instead of
favouring one, and each reports the median and the 95th percentile of its
timed requests, with what each request cost in SQL statements and writes
(and, where a cache is used, in Redis commands and round trips).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # django_sessionkit and tests.servers

DJANGO_MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
SESSIONKIT_MIDDLEWARE = [
    *DJANGO_MIDDLEWARE,
    "django_sessionkit.middleware.SessionKitMiddleware",
]
#: The cache alias the cached stores use, on the benchmark's own Redis.
SESSION_CACHE = "sessions"


def postgres_database(name: str) -> dict[str, Any]:
    """PostgreSQL from the ``PG*`` variables, in a database of its own.

    The test runner creates ``name`` (dropping a leftover of the same name)
    and drops it after the run.
    """
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "postgres",
        "USER": os.environ.get("PGUSER", "postgres"),
        "PASSWORD": os.environ.get("PGPASSWORD", ""),
        "HOST": os.environ.get("PGHOST", "127.0.0.1"),
        "PORT": os.environ.get("PGPORT", "5432"),
        "TEST": {"NAME": name},
    }


def redis_cache(url: str) -> dict[str, Any]:
    """A django-redis cache on ``url``, as a site would configure it."""
    return {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": url,
        "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 1, "SOCKET_TIMEOUT": 1},
    }


def configure(database: dict[str, Any], **extra: Any) -> None:
    """Configure Django for a benchmark and set it up."""
    import django
    from django.conf import settings

    options: dict[str, Any] = {
        "SECRET_KEY": "bench-only",
        "DEBUG": False,
        "USE_TZ": True,
        "ALLOWED_HOSTS": ["testserver"],
        "INSTALLED_APPS": [
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "django_sessionkit",
        ],
        "MIDDLEWARE": DJANGO_MIDDLEWARE,
        "ROOT_URLCONF": __name__,
        "DATABASES": {"default": database},
        "PASSWORD_HASHERS": ["django.contrib.auth.hashers.MD5PasswordHasher"],
        "DEFAULT_AUTO_FIELD": "django.db.models.BigAutoField",
    }
    options.update(extra)
    settings.configure(**options)
    django.setup()


def count_redis() -> type[Any]:
    """Make the session cache count its commands; return the counting class.

    Call it after ``configure()`` and before the cache is first used.
    ``tests.helpers.CountingConnection`` counts round trips (one per
    ``send_packed_command``: a pipeline or an ``MGET`` is one) and records
    each command's name.
    """
    from django.conf import settings
    from django.core.cache import caches

    from tests.helpers import CountingConnection

    options = settings.CACHES[SESSION_CACHE].setdefault("OPTIONS", {})
    options["CONNECTION_POOL_KWARGS"] = {"connection_class": CountingConnection}
    caches[SESSION_CACHE].get("bench:probe")  # connects (handshake commands)
    CountingConnection.reset()
    caches[SESSION_CACHE].get("bench:probe")
    counted = (CountingConnection.round_trips, CountingConnection.commands)
    if counted != (1, ["GET"]):
        raise RuntimeError(f"the session cache does not count its commands: {counted}")
    return CountingConnection


@contextmanager
def test_databases() -> Iterator[None]:
    """Create the configured databases (migrated) and drop them afterwards."""
    import django
    from django.test.utils import get_runner

    runner = get_runner(django.conf.settings)(verbosity=0, interactive=False)
    old_config = runner.setup_databases()
    try:
        yield
    finally:
        runner.teardown_databases(old_config)


# -- Views ----------------------------------------------------------------------


def whoami(request):  # type: ignore[no-untyped-def]
    """Read-only: the signed-in user's name (loads the session and the user)."""
    from django.http import HttpResponse

    return HttpResponse(request.user.get_username())


def put(request):  # type: ignore[no-untyped-def]
    """Modifies the session (``?n=<value>``), then answers like ``whoami``."""
    from django.http import HttpResponse

    request.session["n"] = request.GET["n"]
    return HttpResponse(request.user.get_username())


def _urls() -> list[object]:
    try:
        from django.urls import path
    except ImportError:  # Django not set up: this module is being read only
        return []
    return [path("", whoami), path("put/", put)]


urlpatterns = _urls()


# -- Measuring ------------------------------------------------------------------


class StatementCounter:
    """A database execute wrapper that counts statements and writes.

    A write is a statement that changes rows (INSERT, UPDATE, DELETE);
    savepoints count as statements only.
    """

    WRITES = ("INSERT", "UPDATE", "DELETE", "MERGE")

    def __init__(self) -> None:
        self.statements = 0
        self.writes = 0

    def __call__(self, execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        self.statements += 1
        if sql.lstrip()[:6].upper() in self.WRITES:
            self.writes += 1
        return execute(sql, params, many, context)

    def reset(self) -> None:
        self.statements = self.writes = 0


def median_p95(samples: list[float]) -> tuple[float, float]:
    """The median and the 95th percentile (nearest rank) of ``samples``."""
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[max(int(len(ordered) * 0.95) - 1, 0)]


@dataclass
class Case:
    """One set-up and one kind of request, measured request by request."""

    label: str
    #: Sends request number ``i`` and returns the response.
    send: Callable[[int], Any]
    expected: bytes
    times_us: list[float] = field(default_factory=list)
    sql: StatementCounter = field(default_factory=StatementCounter)
    redis_round_trips: int = 0
    redis_commands: Counter[str] = field(default_factory=Counter)

    def row(self, requests: int) -> dict[str, Any]:
        """The case's summary: times in µs, costs per request."""
        median, p95 = median_p95(self.times_us)
        return {
            "label": self.label,
            "median_us": median,
            "p95_us": p95,
            "sql_per_request": self.sql.statements / requests,
            "writes_per_request": self.sql.writes / requests,
            "redis_commands_per_request": sum(self.redis_commands.values()) / requests,
            "redis_round_trips_per_request": self.redis_round_trips / requests,
            "redis_commands": {
                name: count / requests for name, count in self.redis_commands.items()
            },
        }


def interleave(
    cases: list[Case],
    *,
    requests: int,
    warmup: int,
    redis: type[Any] | None = None,
    rotate: bool = False,
    profile: Case | None = None,
    profiler: Any = None,
) -> None:
    """Send ``warmup + requests`` rounds, one request of every case per round.

    Only the last ``requests`` rounds are timed and counted. ``redis`` is a
    counting connection class (see :func:`count_redis`); ``rotate`` starts
    each round with the next case, so no case always follows the same one.
    ``profiler`` (a ``cProfile.Profile``) runs around the timed requests of
    ``profile`` only; it slows that case, so a profiled run is not a timing.
    """
    from django.db import connection

    for i in range(warmup + requests):
        timed = i >= warmup
        order = cases[i % len(cases) :] + cases[: i % len(cases)] if rotate else cases
        for case in order:
            if redis is not None:
                redis.reset()
            profiling = timed and profiler is not None and case is profile
            wrapper = connection.execute_wrapper(case.sql) if timed else nullcontext()
            with wrapper:
                if profiling:
                    profiler.enable()
                start = time.perf_counter_ns()
                response = case.send(i)
                elapsed = (time.perf_counter_ns() - start) / 1000
                if profiling:
                    profiler.disable()
            if response.status_code != 200 or response.content != case.expected:
                raise RuntimeError(
                    f"{case.label}: unexpected response {response.status_code} "
                    f"{response.content[:80]!r}"
                )
            if timed:
                case.times_us.append(elapsed)
                if redis is not None:
                    case.redis_round_trips += redis.round_trips
                    case.redis_commands.update(redis.commands)


def machine() -> str:
    """Versions and cores, for the summary line."""
    import django
    import redis
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SHOW server_version")
            database = f"PostgreSQL {cursor.fetchone()[0].split()[0]}"
        else:
            database = connection.vendor
    return (
        f"{os.cpu_count()} cores, Python {sys.version.split()[0]}, "
        f"Django {django.get_version()}, {database}, redis-py {redis.__version__}"
    )
