"""The fault-and-load run: two gunicorn servers, one Redis, one PostgreSQL, faults.

    python soak/run.py            # the full run (about 3 to 4 minutes)
    python soak/run.py --short    # what CI runs (about a minute and a half)

Sets up, on loopback only: a private PostgreSQL database (from the ``PG*``
variables, default 127.0.0.1:5432 as ``postgres``; created with a unique name
and dropped at the end), a private ``redis-server`` on a free port, the soak
site (``soak/settings.py``: the cached store, the policy middleware) migrated
with one user per client, and two gunicorn servers (two sync workers each).
Then, for a bounded time and number of requests, several clients sign in,
read (on the two servers in turn, on an ordinary and a passive URL), write,
rotate and revoke their other sessions, while a fault thread pauses Redis
(``SIGSTOP``), kills and restarts it, and kills a worker inside a revocation,
after its database commit and before its cache tombstone (the soak site's
``X-Soak-Die`` hook).

It prints its figures and exits 1 if one of these fails:

- no answer is a 5xx, and no request fails to connect but those the run
  killed;
- a revoked session is anonymous on both servers, on ordinary and passive
  URLs, once its revocation returned (a revocation during a Redis fault may
  leave its tombstone pending: then within the sweep interval plus a second,
  the bound the store documents);
- a revocation killed after its commit is not served later than the sweep
  interval plus a second after the kill;
- no session the client holds and never revoked becomes anonymous, or
  another user's;
- each revoked session has exactly one ``revoke`` event, and no other session
  has one.

Exit status 2: the run could not be set up (no ``redis-server``, no
PostgreSQL, a server that did not start).
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import math
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # soak.settings, django_sessionkit, tests.servers

from tests.servers import RedisProcess, free_port  # noqa: E402

COOKIE = "sessionid"
PASSWORD = "soak-password"
DIE_HEADER = "X-Soak-Die"
#: How long a client waits for an answer; longer than gunicorn's --timeout.
CLIENT_TIMEOUT = 30.0
START_TIMEOUT = 30.0
#: Added to a Redis fault's window: a request that began just before the
#: fault ended may still be waiting for its socket timeout (0.5 s).
FAULT_MARGIN = 1.0
#: Added to the sweep interval: the bound after which a pending tombstone
#: must be in Redis (the sweep itself, a request in flight).
BOUND_MARGIN = 1.0


@dataclass(frozen=True)
class Plan:
    """How long and how hard the run goes."""

    name: str
    duration: float
    max_requests: int
    clients: int
    #: Faults, in turn, one every ``fault_every`` seconds from ``first_fault``.
    faults: tuple[str, ...]
    first_fault: float
    fault_every: float


FULL = Plan(
    name="full",
    duration=180.0,
    max_requests=40_000,
    clients=6,
    faults=("die", "pause", "redis_kill"),
    first_fault=4.0,
    fault_every=10.0,
)
SHORT = Plan(
    name="short",
    duration=50.0,
    max_requests=10_000,
    clients=4,
    faults=("die", "pause", "redis_kill"),
    first_fault=4.0,
    fault_every=9.0,
)


#: Figures that send the reader to the servers' logs.
SERVER_TROUBLE = ("5xx", "unexpected_status", "unreachable_other", "driver_errors")


class SetupError(Exception):
    """The run could not be set up."""


# -- Figures ----------------------------------------------------------------


class Figures:
    """What the run counts, from every thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.samples: dict[str, list[str]] = {}

    def add(self, name: str, n: int = 1, sample: str | None = None) -> None:
        with self.lock:
            self.counts[name] += n
            if sample is not None:
                kept = self.samples.setdefault(name, [])
                if len(kept) < 5:
                    kept.append(sample)

    def __getitem__(self, name: str) -> int:
        with self.lock:
            return self.counts[name]


# -- HTTP -------------------------------------------------------------------


@dataclass
class Answer:
    status: int
    body: dict[str, Any]
    cookies: dict[str, str | None]


class Unreachable(Exception):
    """The request got no answer (connection refused, reset or closed)."""


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


def send(
    server: Server,
    method: str,
    path: str,
    cookies: dict[str, str],
    form: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> Answer:
    """One request on a connection of its own (gunicorn's sync workers do not
    keep connections alive)."""
    sent = {"Accept": "application/json", **(headers or {})}
    if cookies:
        sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
    body = None
    if form is not None:
        body = urlencode(form)
        sent["Content-Type"] = "application/x-www-form-urlencoded"
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=CLIENT_TIMEOUT)
    try:
        conn.request(method, path, body, sent)
        response = conn.getresponse()
        raw = response.read()
        set_cookies: dict[str, str | None] = {}
        for header in response.headers.get_all("Set-Cookie") or []:
            for name, morsel in SimpleCookie(header).items():
                expired = morsel["max-age"] == "0" or not morsel.value
                set_cookies[name] = None if expired else morsel.value
        try:
            parsed = json.loads(raw) if raw else {}
        except ValueError:
            parsed = {"unparsed": raw[:200].decode(errors="replace")}
        return Answer(response.status, parsed, set_cookies)
    except (OSError, http.client.HTTPException) as exc:
        raise Unreachable(f"{type(exc).__name__}: {exc}") from exc
    finally:
        conn.close()


# -- Clients ------------------------------------------------------------------


@dataclass
class Browser:
    """One signed-in browser: its cookies, whose session it is, its counter."""

    user_id: int
    cookies: dict[str, str] = field(default_factory=dict)
    session_id: int | None = None
    counter: int = 0

    def take(self, answer: Answer) -> None:
        """Keep the cookies the latest answer set (a rotation's new key)."""
        for name, value in answer.cookies.items():
            if value is None:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value


@dataclass
class Revoked:
    """A revoked session's cookies, and when its revocation returned."""

    cookies: dict[str, str]
    session_id: int
    returned: float
    #: The revocation overlapped a Redis fault: its tombstone may be pending.
    degraded: bool
    #: Killed after its commit: ``returned`` is when the client saw the kill.
    killed: bool = False
    accepted_late: bool = False


class Run:
    """The shared state of one run: servers, figures, fault windows."""

    def __init__(
        self, plan: Plan, servers: list[Server], redis: RedisProcess, seed: int
    ) -> None:
        self.plan = plan
        self.servers = servers
        self.redis = redis
        self.seed = seed
        self.figures = Figures()
        self.stop = threading.Event()
        self.started = time.monotonic()
        self.bound = sweep_interval() + BOUND_MARGIN
        self.windows_lock = threading.Lock()
        #: Redis fault windows (start, end); end is None while it lasts.
        self.windows: list[tuple[float, float | None]] = []
        self.revoked_lock = threading.Lock()
        self.revoked: list[Revoked] = []
        self.held_lock = threading.Lock()
        self.held: list[Browser] = []

    def log(self, message: str) -> None:
        print(f"[{time.monotonic() - self.started:6.1f} s] {message}", flush=True)

    # Fault windows

    def fault_began(self) -> int:
        with self.windows_lock:
            self.windows.append((time.monotonic(), None))
            return len(self.windows) - 1

    def fault_ended(self, index: int) -> None:
        with self.windows_lock:
            self.windows[index] = (self.windows[index][0], time.monotonic())

    def during_fault(self, start: float, end: float) -> bool:
        with self.windows_lock:
            return any(
                start < (math.inf if w_end is None else w_end) + FAULT_MARGIN
                and end > w_start
                for w_start, w_end in self.windows
            )

    # Requests

    def request(
        self,
        server: Server,
        method: str,
        path: str,
        cookies: dict[str, str],
        form: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        *,
        killing: bool = False,
    ) -> Answer | None:
        """Send and count; None when no answer came (counted by cause)."""
        try:
            answer = send(server, method, path, cookies, form, headers)
        except Unreachable as exc:
            if killing:
                self.figures.add("unreachable_killed")
            else:
                self.figures.add(
                    "unreachable_other", sample=f"{server.name} {method} {path}: {exc}"
                )
            return None
        self.figures.add("requests")
        if answer.status >= 500:
            self.figures.add(
                "5xx", sample=f"{server.name} {method} {path}: {answer.status}"
            )
        elif answer.status != 200:
            self.figures.add(
                "unexpected_status",
                sample=f"{server.name} {method} {path}: {answer.status} {answer.body}",
            )
        return answer

    def over(self) -> bool:
        return self.stop.is_set() or self.figures["requests"] >= self.plan.max_requests

    def check_held(self, browser: Browser, answer: Answer | None, what: str) -> bool:
        """Whether ``answer`` served ``browser``'s session; count it if not."""
        if answer is None or answer.status != 200:
            return True  # counted as unreachable, 5xx or unexpected already
        user = answer.body.get("user")
        if user == browser.user_id:
            return True
        if user is None:
            self.figures.add("lost", sample=f"session {browser.session_id}: {what}")
        else:
            self.figures.add("wrong_user", sample=f"session {browser.session_id}")
        return False

    def probe_revoked(self, revoked: Revoked, server: Server, path: str) -> None:
        """Ask ``server`` for a revoked session; count it if it was served."""
        answer = self.request(server, "GET", path, revoked.cookies)
        if answer is None or answer.status != 200 or answer.body.get("user") is None:
            return
        late = time.monotonic() - revoked.returned
        if revoked.killed:
            allowed = late <= self.bound
            name = "killed"
        else:
            allowed = revoked.degraded and late <= self.bound
            name = "revoked"
        if allowed:
            self.figures.add(f"{name}_served_within_bound")
            return
        self.figures.add(f"{name}_probes_accepted")
        with self.revoked_lock:
            first = not revoked.accepted_late
            revoked.accepted_late = True
        if first:
            self.figures.add(
                f"{name}_sessions_accepted",
                sample=f"session {revoked.session_id} on {server.name}{path} "
                f"{late:.1f} s after its revocation returned",
            )

    def probe_everywhere(self, revoked: Revoked) -> None:
        for server in self.servers:
            for path in ("/read/", "/passive/"):
                self.probe_revoked(revoked, server, path)


class Client:
    """One user's browsers, driven by one thread."""

    def __init__(self, run: Run, username: str, user_id: int, seed: int) -> None:
        self.run = run
        self.username = username
        self.user_id = user_id
        self.rng = random.Random(seed)
        self.browsers: list[Browser] = []
        self.revoked: list[Revoked] = []
        self.turn = 0

    def server(self) -> Server:
        """The servers in turn: a session signed in on one is used on the other."""
        self.turn += 1
        return self.run.servers[self.turn % len(self.run.servers)]

    def sign_in(self) -> Browser | None:
        browser = Browser(self.user_id)
        answer = self.run.request(
            self.server(),
            "POST",
            "/sign-in/",
            {},
            {"username": self.username, "password": PASSWORD},
        )
        if answer is None or answer.status != 200:
            return None
        browser.take(answer)
        browser.session_id = answer.body.get("session")
        if answer.body.get("user") != self.user_id or COOKIE not in browser.cookies:
            self.run.figures.add("sign_in_failed", sample=str(answer.body))
            return None
        self.run.figures.add("sign_ins")
        return browser

    def top_up(self, count: int) -> None:
        while len(self.browsers) < count and not self.run.over():
            browser = self.sign_in()
            if browser is not None:
                self.browsers.append(browser)

    def drop(self, browser: Browser) -> None:
        self.browsers.remove(browser)

    def read(self, browser: Browser) -> None:
        path = self.rng.choice(("/read/", "/passive/"))
        answer = self.run.request(self.server(), "GET", path, browser.cookies)
        if not self.run.check_held(browser, answer, f"read {path}"):
            self.drop(browser)
            return
        if answer is not None and answer.status == 200:
            browser.take(answer)
            self.run.figures.add("reads")
            if answer.body.get("counter") != browser.counter:
                self.run.figures.add("stale_counter_reads")

    def write(self, browser: Browser) -> None:
        answer = self.run.request(self.server(), "POST", "/write/", browser.cookies, {})
        if not self.run.check_held(browser, answer, "write"):
            self.drop(browser)
            return
        if answer is not None and answer.status == 200:
            browser.take(answer)
            self.run.figures.add("writes")
            counter = answer.body.get("counter")
            if counter != browser.counter + 1:
                self.run.figures.add("counter_not_incremented")
            if isinstance(counter, int):
                browser.counter = counter

    def rotate(self, browser: Browser) -> None:
        before = browser.cookies.get(COOKIE)
        answer = self.run.request(
            self.server(), "POST", "/rotate/", browser.cookies, {}
        )
        if not self.run.check_held(browser, answer, "rotate"):
            self.drop(browser)
            return
        if answer is not None and answer.status == 200:
            browser.take(answer)
            self.run.figures.add("rotations")
            if browser.cookies.get(COOKIE) in (None, before):
                self.run.figures.add("rotations_without_new_key")

    def revoke(self, revoker: Browser, target: Browser) -> None:
        # Read first, so that the target's entry is in Redis when it is revoked.
        warm = self.run.request(self.server(), "GET", "/passive/", target.cookies)
        if not self.run.check_held(target, warm, "read before its revocation"):
            self.drop(target)
            return
        assert target.session_id is not None
        start = time.monotonic()
        answer = self.run.request(
            self.server(),
            "POST",
            "/revoke/",
            revoker.cookies,
            {"session_id": str(target.session_id)},
        )
        end = time.monotonic()
        if not self.run.check_held(revoker, answer, "revoke"):
            self.drop(revoker)
            return
        if answer is None or answer.status != 200:
            return
        revoker.take(answer)
        if answer.body.get("revoked") is not True:
            self.run.figures.add("revocations_not_done", sample=str(answer.body))
            return
        self.run.figures.add("revocations")
        self.drop(target)
        revoked = Revoked(
            dict(target.cookies),
            target.session_id,
            returned=end,
            degraded=self.run.during_fault(start, end),
        )
        if revoked.degraded:
            self.run.figures.add("revocations_during_redis_fault")
        with self.run.revoked_lock:
            self.run.revoked.append(revoked)
        self.revoked.append(revoked)
        self.run.probe_everywhere(revoked)

    def step(self) -> None:
        self.top_up(3)
        if len(self.browsers) < 2:
            return
        roll = self.rng.random()
        browser = self.rng.choice(self.browsers)
        if roll < 0.50:
            self.read(browser)
        elif roll < 0.72:
            self.write(browser)
        elif roll < 0.82:
            self.rotate(browser)
        elif roll < 0.92:
            revoker, target = self.rng.sample(self.browsers, 2)
            self.revoke(revoker, target)
        elif self.revoked:
            # A session revoked a while ago must stay revoked.
            revoked = self.rng.choice(self.revoked)
            self.run.probe_revoked(
                revoked, self.server(), self.rng.choice(("/read/", "/passive/"))
            )

    def loop(self) -> None:
        try:
            while not self.run.over():
                self.step()
        except Exception as exc:  # a bug of the driver: fail the run, loudly
            self.run.figures.add("driver_errors", sample=repr(exc))
            raise
        finally:
            with self.run.held_lock:
                self.run.held.extend(self.browsers)


# -- Faults -------------------------------------------------------------------


class Faults:
    """Redis paused, Redis killed and restarted, a worker killed after commit.

    One fault at a time, so that each one's effect is its own: a killed
    revocation is probed while Redis keeps its data (a Redis restart would
    drop the stale entry and hide the defect the probe looks for).
    """

    def __init__(self, run: Run, client: Client) -> None:
        self.run = run
        self.client = client  # its own user: the revoker of the killed revocations
        self.done: Counter[str] = Counter()

    def pause(self) -> None:
        self.run.log("fault: Redis paused (SIGSTOP) for 1.5 s")
        window = self.run.fault_began()
        self.run.redis.pause()
        try:
            time.sleep(1.5)
        finally:
            self.run.redis.resume()
            self.run.fault_ended(window)

    def redis_kill(self) -> None:
        self.run.log("fault: Redis killed (SIGKILL), restarted 0.5 s later")
        window = self.run.fault_began()
        try:
            self.run.redis.kill()
            time.sleep(0.5)
        finally:
            self.run.redis.start()
            self.run.fault_ended(window)

    def die(self) -> None:
        """Kill a worker inside a revocation, after its commit, then probe."""
        client, run = self.client, self.run
        client.top_up(2)
        if len(client.browsers) < 2:
            run.figures.add("die_not_run", sample="no sessions to revoke")
            return
        revoker, target = client.browsers[0], client.browsers[1]
        # The target's entry on both servers' Redis reads, as a browser would.
        for server in run.servers:
            for path in ("/read/", "/passive/"):
                answer = run.request(server, "GET", path, target.cookies)
                if not run.check_held(target, answer, "read before a killed revoke"):
                    client.drop(target)
                    return
        assert target.session_id is not None
        # The two servers in turn.
        server = run.servers[self.done["die"] % len(run.servers)]
        run.log(f"fault: worker of {server.name} killed inside a revocation")
        answer = run.request(
            server,
            "POST",
            "/revoke/",
            revoker.cookies,
            {"session_id": str(target.session_id)},
            {DIE_HEADER: "after-commit"},
            killing=True,
        )
        killed_at = time.monotonic()
        client.drop(target)
        if answer is not None:
            run.figures.add("die_not_killed", sample=f"{answer.status} {answer.body}")
            if answer.status == 200 and answer.body.get("revoked") is True:
                # Revoked all the same: its event and its probes count.
                with run.revoked_lock:
                    run.revoked.append(
                        Revoked(
                            dict(target.cookies), target.session_id, killed_at, False
                        )
                    )
            return
        run.figures.add("killed_revocations")
        revoked = Revoked(
            dict(target.cookies),
            target.session_id,
            returned=killed_at,
            degraded=False,
            killed=True,
        )
        with run.revoked_lock:
            run.revoked.append(revoked)
        # Within the bound the entry may still be served (counted apart);
        # after it, never.
        while time.monotonic() < killed_at + run.bound:
            run.probe_everywhere(revoked)
            time.sleep(0.5)
        for _ in range(3):
            run.probe_everywhere(revoked)
            time.sleep(0.5)

    def loop(self) -> None:
        plan = self.run.plan
        actions: dict[str, Callable[[], None]] = {
            "die": self.die,
            "pause": self.pause,
            "redis_kill": self.redis_kill,
        }
        try:
            for index in range(10_000):
                due = self.run.started + plan.first_fault + index * plan.fault_every
                if self.run.stop.wait(max(0.0, due - time.monotonic())):
                    return
                if self.run.over():
                    return
                kind = plan.faults[index % len(plan.faults)]
                actions[kind]()
                self.done[kind] += 1
        except Exception as exc:
            self.run.figures.add("driver_errors", sample=repr(exc))
            raise


# -- Set-up -------------------------------------------------------------------


def sweep_interval() -> float:
    """``SESSIONKIT_CACHE_SWEEP_INTERVAL`` of the soak site, in seconds."""
    from django_sessionkit.conf import conf

    interval = conf.CACHE_SWEEP_INTERVAL
    if interval is None:
        raise SetupError("soak/settings.py must set SESSIONKIT_CACHE_SWEEP_INTERVAL.")
    return interval.total_seconds()


def pg_connect(dbname: str) -> Any:
    import psycopg

    return psycopg.connect(
        host=os.environ.get("PGHOST", "127.0.0.1"),
        port=os.environ.get("PGPORT", "5432"),
        user=os.environ.get("PGUSER", "postgres"),
        password=os.environ.get("PGPASSWORD", ""),
        dbname=dbname,
        autocommit=True,
        connect_timeout=10,
    )


@contextmanager
def private_database() -> Iterator[str]:
    """A PostgreSQL database of the run's own, dropped at the end."""
    from psycopg import OperationalError, sql

    name = f"sessionkit_soak_{os.getpid()}_{random.SystemRandom().randrange(16**6):06x}"
    try:
        with pg_connect("postgres") as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except OperationalError as exc:
        raise SetupError(f"PostgreSQL is not reachable: {exc}") from exc
    try:
        yield name
    finally:
        with pg_connect("postgres") as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(name)
                )
            )


@contextmanager
def private_redis() -> Iterator[RedisProcess]:
    """A private ``redis-server``, stopped and its directory removed at the end."""
    try:
        redis = RedisProcess()
    except RuntimeError as exc:
        raise SetupError(str(exc)) from exc
    try:
        try:
            redis.start()
        except RuntimeError as exc:
            raise SetupError(str(exc)) from exc
        yield redis
    finally:
        redis.stop()


def prepare_site(clients: int) -> list[tuple[str, int]]:
    """Migrate, check, and create one user per client (and the fault thread's)."""
    import django
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connections

    django.setup()
    call_command("check", fail_level="ERROR", stdout=io.StringIO())
    call_command("migrate", interactive=False, verbosity=0)
    users = []
    for index in range(clients + 1):
        username = f"soak-{index}"
        user = get_user_model().objects.create_user(username, password=PASSWORD)
        users.append((username, int(user.pk)))
    connections.close_all()
    return users


@contextmanager
def app_server(name: str, workdir: Path, env: dict[str, str]) -> Iterator[Server]:
    """A gunicorn server of the soak site: two sync workers, its own process group."""
    port = free_port()
    log = workdir / f"{name}.log"
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        "2",
        "--timeout",
        "20",
        "--graceful-timeout",
        "5",
        "--chdir",
        str(ROOT),
        "--error-logfile",
        "-",
        "soak.wsgi:application",
    ]
    with log.open("wb") as output:
        proc = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # the arbiter and its workers: one group
        )
    server = Server(name, port, proc, log)
    try:
        wait_until_answering(server)
        yield server
    finally:
        stop_group(proc)


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """Stop a process and everything in its process group."""
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait)
            # Workers the arbiter did not reap are in its group still.
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            return
        except subprocess.TimeoutExpired:
            continue


def wait_until_answering(server: Server) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if server.proc.poll() is not None:
            raise SetupError(f"{server.name} exited:\n{server.tail()}")
        with suppress(Unreachable):
            if send(server, "GET", "/read/", {}).status == 200:
                return
        if time.monotonic() > deadline:
            raise SetupError(f"{server.name} did not answer:\n{server.tail()}")
        time.sleep(0.1)


# -- The end ------------------------------------------------------------------


def final_checks(run: Run) -> None:
    """After the faults: every held session served, every revoked one not."""
    time.sleep(run.bound)
    run.log(
        f"final probes: {len(run.held)} held sessions, "
        f"{len(run.revoked)} revoked sessions, on both servers"
    )
    for browser in run.held:
        for server in run.servers:
            answer = run.request(server, "GET", "/read/", browser.cookies)
            if not run.check_held(browser, answer, f"final read on {server.name}"):
                break
    rng = random.Random(run.seed)
    for revoked in run.revoked:
        # Both servers, one ordinary and one passive read between them.
        paths = rng.sample(("/read/", "/passive/"), 2)
        for server, path in zip(run.servers, paths, strict=True):
            run.probe_revoked(revoked, server, path)


def revoke_events(run: Run) -> tuple[Counter[int], int]:
    """Revoke events per revoked session, and revoke events of other sessions."""
    from django.db import connections
    from django.db.models import Count

    from django_sessionkit.models import SessionEvent

    rows = (
        SessionEvent.objects.filter(kind=SessionEvent.Kind.REVOKE)
        .values_list("session_id")
        .annotate(n=Count("id"))
    )
    per_session = {session_id: n for session_id, n in rows}
    connections.close_all()
    revoked_ids = {r.session_id for r in run.revoked}
    counts = Counter(per_session.get(pk, 0) for pk in revoked_ids)
    others = sum(n for pk, n in per_session.items() if pk not in revoked_ids)
    return counts, others


def report(run: Run, faults: Faults, elapsed: float) -> bool:
    """Print the figures; return whether every assertion held."""
    f = run.figures
    events, other_events = revoke_events(run)
    plan = run.plan
    print()
    print(
        f"soak ({plan.name}, seed {run.seed}): {elapsed:.0f} s of load, "
        f"{plan.clients} clients, 2 gunicorn servers x 2 sync workers, "
        f"sweep interval {run.bound - BOUND_MARGIN:g} s"
    )
    print(
        f"faults: Redis paused {faults.done['pause']}, Redis killed "
        f"{faults.done['redis_kill']}, worker killed after commit "
        f"{f['killed_revocations']}"
    )
    one_event = events[1]
    assertions: list[tuple[str, int, bool]] = [
        ("requests served", f["requests"], f["requests"] > 0),
        ("5xx", f["5xx"], f["5xx"] == 0),
        ("connection errors, requests the run killed", f["unreachable_killed"], True),
        (
            "connection errors, other requests",
            f["unreachable_other"],
            f["unreachable_other"] == 0,
        ),
        ("other answers than 200", f["unexpected_status"], f["unexpected_status"] == 0),
        ("sign-ins", f["sign_ins"], True),
        ("reads", f["reads"], True),
        ("writes", f["writes"], True),
        ("rotations", f["rotations"], True),
        ("revocations (answered)", f["revocations"], f["revocations"] > 0),
        ("  of them during a Redis fault", f["revocations_during_redis_fault"], True),
        (
            "revoked sessions accepted again after their revocation returned",
            f["revoked_sessions_accepted"],
            f["revoked_sessions_accepted"] == 0,
        ),
        (
            "  probes served within the pending-tombstone bound (allowed)",
            f["revoked_served_within_bound"],
            True,
        ),
        ("revocations killed after commit", f["killed_revocations"], True),
        (
            f"  still served later than sweep interval + {BOUND_MARGIN:g} s",
            f["killed_sessions_accepted"],
            f["killed_sessions_accepted"] == 0,
        ),
        ("  probes that served it after the bound", f["killed_probes_accepted"], True),
        (
            "  probes served before that bound (allowed)",
            f["killed_served_within_bound"],
            True,
        ),
        (
            "kill requests the hook did not kill",
            f["die_not_killed"],
            f["die_not_killed"] == 0,
        ),
        ("sessions lost that were never revoked", f["lost"], f["lost"] == 0),
        ("sessions answered as another user", f["wrong_user"], f["wrong_user"] == 0),
        (
            "sign-ins or revocations refused",
            f["sign_in_failed"] + f["revocations_not_done"],
            f["sign_in_failed"] + f["revocations_not_done"] == 0,
        ),
        (
            "revoked sessions with exactly 1 revoke event",
            one_event,
            one_event == len(run.revoked) and len(run.revoked) > 0,
        ),
        ("  with none", events[0], events[0] == 0),
        (
            "  with more than one",
            sum(n for k, n in events.items() if k > 1),
            all(k <= 1 for k in events),
        ),
        (
            "revoke events of sessions the run did not revoke",
            other_events,
            other_events == 0,
        ),
        (
            "reads that showed an older counter (information)",
            f["stale_counter_reads"],
            True,
        ),
        (
            "writes not counted from the last one (information)",
            f["counter_not_incremented"],
            True,
        ),
        (
            "rotations without a new key",
            f["rotations_without_new_key"],
            f["rotations_without_new_key"] == 0,
        ),
        ("driver errors", f["driver_errors"], f["driver_errors"] == 0),
    ]
    width = max(len(label) for label, _, _ in assertions)
    passed = True
    for label, value, ok in assertions:
        print(f"  {label:<{width}}  {value:>7}  {'' if ok else 'FAILED'}")
        passed = passed and ok
    if (
        f["killed_revocations"] == 0
        or faults.done["pause"] == 0
        or faults.done["redis_kill"] == 0
    ):
        print("  not every kind of fault ran: FAILED")
        passed = False
    for name, samples in sorted(f.samples.items()):
        for sample in samples:
            print(f"  e.g. {name}: {sample}")
    return passed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--short", action="store_true", help="the short form CI runs")
    parser.add_argument("--seed", type=int, default=None, help="replay a run")
    args = parser.parse_args()
    plan = SHORT if args.short else FULL
    seed = (
        args.seed if args.seed is not None else random.SystemRandom().randrange(10**6)
    )

    # Ctrl-C and SIGTERM both unwind through the finally blocks below.
    def interrupted(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    os.environ["DJANGO_SETTINGS_MODULE"] = "soak.settings"
    try:
        with ExitStack() as stack:
            database = stack.enter_context(private_database())
            redis = stack.enter_context(private_redis())
            workdir = Path(
                stack.enter_context(
                    tempfile.TemporaryDirectory(prefix="sessionkit-soak-")
                )
            )
            os.environ["SOAK_DATABASE"] = database
            os.environ["SOAK_REDIS_URL"] = redis.url
            users = prepare_site(plan.clients)
            env = dict(os.environ)
            a = stack.enter_context(app_server("A", workdir, env))
            b = stack.enter_context(app_server("B", workdir, env))
            return drive(Run(plan, [a, b], redis, seed), users)
    except SetupError as exc:
        print(f"soak: could not set up: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("soak: interrupted; everything it started is stopped.", file=sys.stderr)
        return 130


def drive(run: Run, users: list[tuple[str, int]]) -> int:
    plan = run.plan
    run.log(
        f"servers A (port {run.servers[0].port}) and B (port {run.servers[1].port}), "
        f"Redis on port {run.redis.port}; {plan.name} run, seed {run.seed}"
    )
    clients = [
        Client(run, username, user_id, run.seed + index)
        for index, (username, user_id) in enumerate(users[:-1])
    ]
    fault_user, fault_user_id = users[-1]
    faults = Faults(run, Client(run, fault_user, fault_user_id, run.seed - 1))
    threads = [threading.Thread(target=c.loop, daemon=True) for c in clients]
    threads.append(threading.Thread(target=faults.loop, daemon=True))
    run.started = time.monotonic()
    for thread in threads:
        thread.start()
    try:
        while not run.over() and time.monotonic() < run.started + plan.duration:
            time.sleep(0.2)
    finally:
        run.stop.set()
        for thread in threads:
            thread.join(timeout=CLIENT_TIMEOUT + 30)
    elapsed = time.monotonic() - run.started
    with run.held_lock:
        run.held.extend(faults.client.browsers)
    for server in run.servers:
        if server.proc.poll() is not None:
            run.figures.add("driver_errors", sample=f"{server.name} exited")
    final_checks(run)
    passed = report(run, faults, elapsed)
    if run.figures["killed_sessions_accepted"]:
        print(
            "\nA revocation killed after its commit lost its cache tombstone: "
            "its session was served from Redis after the bound."
        )
    if any(run.figures[name] for name in SERVER_TROUBLE):
        for server in run.servers:
            print(f"\n--- last lines of server {server.name}'s log\n{server.tail()}")
    print(f"\nsoak: {'passed' if passed else 'FAILED'}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
