"""The demo site that ``make demo`` serves, exercised as a user would.

Everything runs in subprocesses of ``manage.py`` with ``demo.settings`` against
a temporary SQLite file, so this suite's own settings are left untouched: the
``demo_user`` command, and a ``runserver`` on a free loopback port that is
fetched with urllib.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from django_sessionkit.keys import hash_key
from tests.servers import free_port

ROOT = Path(__file__).resolve().parent.parent
PASSWORD_LINE = re.compile(r"^\s*password: (\S+)\s*$", re.MULTILINE)
TIMEOUT = 120


# -- Helpers -----------------------------------------------------------------


def demo_env(db_path: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "DEMO_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="demo.settings",
        DEMO_DATABASE_PATH=str(db_path),
        DEMO_SECRET_KEY_FILE=str(db_path.parent / "secret_key"),
        PYTHONUNBUFFERED="1",
    )
    return env


def manage(db_path: Path, *args: str, **env: str) -> str:
    """Run ``manage.py`` with the demo settings; return its stdout."""
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**demo_env(db_path), **env},
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, (
        f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    )
    return result.stdout


def printed_password(output: str) -> str:
    found = PASSWORD_LINE.findall(output)
    assert len(found) == 1, f"expected one password line in:\n{output}"
    password: str = found[0]
    # Printed once: nowhere else in the output.
    assert output.count(password) == 1, output
    return password


def demo_user_state(db_path: Path, password: str) -> dict[str, bool]:
    """Ask the demo itself whether ``password`` signs ``demo`` in."""
    script = (
        "import json, os\n"
        "from django.contrib.auth import authenticate, get_user_model\n"
        "user = get_user_model().objects.get(username='demo')\n"
        "ok = authenticate(username='demo', password=os.environ['DEMO_PW'])\n"
        "print('STATE=' + json.dumps({'authenticates': ok is not None,"
        " 'is_staff': user.is_staff, 'is_superuser': user.is_superuser}))\n"
    )
    output = manage(db_path, "shell", "-c", script, DEMO_PW=password)
    match = re.search(r"^STATE=(.*)$", output, re.MULTILINE)
    assert match is not None, output
    state: dict[str, bool] = json.loads(match.group(1))
    return state


def session_rows(db_path: Path) -> list[tuple[int, str, int | None, str | None]]:
    with sqlite3.connect(db_path) as conn:
        return list(
            conn.execute(
                "SELECT id, key_hash, user_id, authenticated_at "
                "FROM sessionkit_session ORDER BY id"
            )
        )


@dataclass
class Page:
    status: int
    url: str
    body: str


class Browser:
    """A cookie-keeping client for the loopback demo server."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.cookies)
        )

    def request(self, path: str, data: dict[str, str] | None = None) -> Page:
        url = urllib.parse.urljoin(self.base_url, path)
        assert url.startswith(self.base_url), url
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        request = urllib.request.Request(url, data=body)  # noqa: S310
        try:
            with self.opener.open(request, timeout=30) as response:
                return Page(response.status, response.url, response.read().decode())
        except urllib.error.HTTPError as error:
            return Page(error.code, error.url, error.read().decode())

    def cookie(self, name: str) -> str | None:
        for cookie in self.cookies:
            if cookie.name == name:
                return cookie.value
        return None

    def sign_in(self, username: str, password: str) -> Page:
        form = self.request("/accounts/login/")
        assert form.status == 200, form.body
        return self.request(
            "/accounts/login/",
            {
                "csrfmiddlewaretoken": csrf_token(form.body),
                "username": username,
                "password": password,
            },
        )


def csrf_token(html: str) -> str:
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    assert match is not None, f"no CSRF token in:\n{html}"
    return match.group(1)


def session_id_shown(html: str) -> str:
    match = re.search(r'<dd id="session-id">(\d+)</dd>', html)
    assert match is not None, f"no session id in:\n{html}"
    return match.group(1)


# -- Fixtures ------------------------------------------------------------------


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    """A directory for the demo's databases and keys, removed at the end."""
    with tempfile.TemporaryDirectory(prefix="sessionkit-demo-") as path:
        yield Path(path)


def copy_db(source: Path, workdir: Path) -> Path:
    """Copy ``source`` into a directory of its own (the key file goes there)."""
    path = Path(tempfile.mkdtemp(dir=workdir)) / "db.sqlite3"
    shutil.copyfile(source, path)
    return path


@pytest.fixture(scope="module")
def migrated_db(workdir: Path) -> Path:
    """A migrated demo database, copied by each test that needs one."""
    path = workdir / "template" / "db.sqlite3"
    path.parent.mkdir()
    manage(path, "migrate", "--noinput")
    return path


@pytest.fixture
def fresh_db(migrated_db: Path, workdir: Path) -> Path:
    return copy_db(migrated_db, workdir)


@dataclass
class DemoServer:
    base_url: str
    db_path: Path
    password: str


@pytest.fixture(scope="module")
def demo_server(migrated_db: Path, workdir: Path) -> Iterator[DemoServer]:
    db_path = copy_db(migrated_db, workdir)
    password = printed_password(manage(db_path, "demo_user"))
    port = free_port()
    log_path = db_path.parent / "runserver.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "manage.py",
                "runserver",
                "--noreload",
                f"127.0.0.1:{port}",
            ],
            cwd=ROOT,
            env=demo_env(db_path),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(
                        "manage.py runserver did not start:\n"
                        + log_path.read_text(errors="replace")
                    )
                time.sleep(0.1)
        yield DemoServer(base_url, db_path, password)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


# -- manage.py demo_user -------------------------------------------------------


def test_demo_user_first_run_prints_working_password(fresh_db: Path) -> None:
    output = manage(fresh_db, "demo_user")
    password = printed_password(output)
    assert len(password) >= 16
    assert demo_user_state(fresh_db, password) == {
        "authenticates": True,
        "is_staff": True,
        "is_superuser": True,
    }
    assert demo_user_state(fresh_db, password + "x")["authenticates"] is False


def test_demo_user_second_run_keeps_password(fresh_db: Path) -> None:
    password = printed_password(manage(fresh_db, "demo_user"))
    output = manage(fresh_db, "demo_user")
    assert "already exists" in output
    assert "--reset-password" in output
    assert not PASSWORD_LINE.search(output)
    assert password not in output
    assert demo_user_state(fresh_db, password)["authenticates"] is True


def test_demo_user_reset_password_changes_it(fresh_db: Path) -> None:
    old = printed_password(manage(fresh_db, "demo_user"))
    new = printed_password(manage(fresh_db, "demo_user", "--reset-password"))
    assert new != old
    assert old not in new
    assert demo_user_state(fresh_db, new)["authenticates"] is True
    assert demo_user_state(fresh_db, old)["authenticates"] is False


def test_demo_user_reset_password_without_user_creates_it(fresh_db: Path) -> None:
    password = printed_password(manage(fresh_db, "demo_user", "--reset-password"))
    assert demo_user_state(fresh_db, password)["authenticates"] is True


def test_demo_settings_pass_system_checks(fresh_db: Path) -> None:
    output = manage(fresh_db, "check", "--fail-level", "WARNING")
    assert "no issues" in output


# -- The site ------------------------------------------------------------------


def test_home_anonymous_says_not_signed_in_without_session_row(
    demo_server: DemoServer,
) -> None:
    before = session_rows(demo_server.db_path)
    browser = Browser(demo_server.base_url)
    page = browser.request("/")
    assert page.status == 200
    assert "You are not signed in" in page.body
    assert 'href="/accounts/login/"' in page.body
    assert browser.cookie("sessionid") is None
    assert session_rows(demo_server.db_path) == before


def test_login_page_renders_labelled_form(demo_server: DemoServer) -> None:
    before = session_rows(demo_server.db_path)
    browser = Browser(demo_server.base_url)
    page = browser.request("/accounts/login/")
    assert page.status == 200
    assert '<label for="id_username">' in page.body
    assert '<label for="id_password">' in page.body
    assert browser.cookie("csrftoken") is not None
    assert browser.cookie("sessionid") is None
    assert session_rows(demo_server.db_path) == before


def test_sign_in_wrong_password_is_refused(demo_server: DemoServer) -> None:
    before = session_rows(demo_server.db_path)
    browser = Browser(demo_server.base_url)
    page = browser.sign_in("demo", demo_server.password + "x")
    assert page.status == 200
    assert page.url.endswith("/accounts/login/")
    assert browser.cookie("sessionid") is None
    assert session_rows(demo_server.db_path) == before


def test_sign_in_shows_session_by_id_never_by_key(demo_server: DemoServer) -> None:
    browser = Browser(demo_server.base_url)
    page = browser.sign_in("demo", demo_server.password)
    assert page.status == 200
    assert page.url == demo_server.base_url
    key = browser.cookie("sessionid")
    assert key is not None
    rows = [r for r in session_rows(demo_server.db_path) if r[1] == hash_key(key)]
    assert len(rows) == 1
    session_id, key_hash, user_id, authenticated_at = rows[0]
    assert user_id is not None
    assert authenticated_at is not None
    assert session_id_shown(page.body) == str(session_id)
    assert "demo" in page.body
    assert "Signed in at" in page.body
    assert "Absolute deadline" in page.body
    assert "127.0.0.1" in page.body
    assert "Python-urllib" in page.body
    assert key not in page.body
    assert key_hash not in page.body
    # The same session on the next request, addressed by the same id.
    again = browser.request("/")
    assert session_id_shown(again.body) == str(session_id)


def test_admin_open_to_demo_user(demo_server: DemoServer) -> None:
    browser = Browser(demo_server.base_url)
    home = browser.sign_in("demo", demo_server.password)
    assert 'href="/admin/"' in home.body
    page = browser.request("/admin/sessionkit/session/")
    assert page.status == 200, page.body
    assert page.url.startswith(demo_server.base_url + "admin/")
    key = browser.cookie("sessionid")
    assert key is not None
    assert key not in page.body
    assert hash_key(key) not in page.body


def test_sign_out_deletes_session_row(demo_server: DemoServer) -> None:
    browser = Browser(demo_server.base_url)
    home = browser.sign_in("demo", demo_server.password)
    key = browser.cookie("sessionid")
    assert key is not None
    assert hash_key(key) in {r[1] for r in session_rows(demo_server.db_path)}
    assert 'action="/accounts/logout/"' in home.body
    # Sign-out is a POST with a CSRF token; a GET does nothing.
    assert browser.request("/accounts/logout/").status == 405
    page = browser.request(
        "/accounts/logout/", {"csrfmiddlewaretoken": csrf_token(home.body)}
    )
    assert page.status == 200
    assert page.url == demo_server.base_url
    assert "You are not signed in" in page.body
    assert hash_key(key) not in {r[1] for r in session_rows(demo_server.db_path)}


def test_stylesheet_served(demo_server: DemoServer) -> None:
    browser = Browser(demo_server.base_url)
    home = browser.request("/")
    assert 'href="/static/demo/demo.css"' in home.body
    # Scripts are files (the consent banner's, the deferred analytics one):
    # none inline.
    assert re.findall(r"<script(?![^>]*\bsrc=)", home.body) == []
    assert 'src="/static/django_sessionkit/consent.js"' in home.body
    assert "style=" not in home.body
    css = browser.request("/static/demo/demo.css")
    assert css.status == 200
    assert ".facts" in css.body


def test_header_links_sessions_page_when_signed_in(demo_server: DemoServer) -> None:
    browser = Browser(demo_server.base_url)
    anonymous = browser.request("/")
    assert "Sessions and devices" not in anonymous.body

    home = browser.sign_in("demo", demo_server.password)
    header = re.search(r'<header class="site-header">.*?</header>', home.body, re.S)
    assert header is not None, home.body
    link = re.search(r'<a href="([^"]+)">Sessions and devices</a>', header.group(0))
    assert link is not None, header.group(0)
    assert link.group(1) == "/sessions/"

    page = browser.request(link.group(1))
    assert page.status == 200, page.body
    assert page.url == demo_server.base_url + "sessions/"
    assert '<h1 class="sessionkit-sessions__title">Sessions and devices</h1>' in (
        page.body
    )
    # In the demo's layout: its header (the link marked as the current page)
    # and both stylesheets, with no inline style or script.
    assert '<header class="site-header">' in page.body
    assert 'aria-current="page">Sessions and devices</a>' in page.body
    assert 'href="/static/demo/demo.css"' in page.body
    assert 'href="/static/django_sessionkit/sessions.css"' in page.body
    assert page.body.count("<main") == 1
    assert "style=" not in page.body
    assert "<script>" not in page.body
    assert "This session" in page.body
    assert browser.request("/static/django_sessionkit/sessions.css").status == 200
