"""Importing the sessions of ``django.contrib.sessions``: library and command."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from io import StringIO
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth.models import User
from django.contrib.sessions.backends.db import SessionStore as DjangoStore
from django.contrib.sessions.models import Session as DjangoSession
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import AsyncClient, Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_sessionkit.importing import ImportResult, import_django_sessions
from django_sessionkit.keys import hash_key
from django_sessionkit.models import Session
from tests.helpers import PASSWORD

pytestmark = pytest.mark.django_db

COOKIE = settings.SESSION_COOKIE_NAME
MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"
DJANGO_ENGINE = "django.contrib.sessions.backends.db"
JSON = {"Accept": "application/json"}
POLICY_MIDDLEWARE = "django_sessionkit.middleware.SessionKitMiddleware"

_serials = itertools.count(1)


def new_key() -> str:
    """A distinct key of the shape Django issues (32 characters of a-z0-9)."""
    return f"k{next(_serials):031d}"


def signed_in_data(user_id: Any, auth_hash: str = "") -> dict[str, Any]:
    return {
        SESSION_KEY: str(user_id),
        BACKEND_SESSION_KEY: MODEL_BACKEND,
        HASH_SESSION_KEY: auth_hash,
    }


def django_row(
    data: dict[str, Any] | None = None,
    *,
    key: str | None = None,
    expire_date: datetime | None = None,
) -> DjangoSession:
    """A row of Django's session table, with data encoded as Django does."""
    return DjangoSession.objects.create(
        session_key=key or new_key(),
        session_data=DjangoStore().encode(data if data is not None else {"a": 1}),
        expire_date=expire_date or timezone.now() + timedelta(days=1),
    )


def run(*args: str) -> str:
    out = StringIO()
    call_command("sessionkit_import", *args, stdout=out)
    return out.getvalue()


def counts(result: ImportResult) -> dict[str, int]:
    return {
        "imported": result.imported,
        "signed_in": result.signed_in,
        "already_present": result.already_present,
        "skipped_malformed": result.skipped_malformed,
        "users_missing": result.users_missing,
    }


# -- What is copied ---------------------------------------------------------------


def test_import_copies_anonymous_session_as_is() -> None:
    source = django_row({"cart": [1, 2]})
    now = timezone.now()
    result = import_django_sessions(now=now)
    assert counts(result) == {
        "imported": 1,
        "signed_in": 0,
        "already_present": 0,
        "skipped_malformed": 0,
        "users_missing": 0,
    }
    assert result.read == 1 and result.batches == 1 and not result.dry_run
    row = Session.objects.get()
    assert row.key_hash == hash_key(source.session_key)
    assert row.session_data == source.session_data
    assert row.get_decoded() == {"cart": [1, 2]}
    assert row.user_id is None
    assert row.expire_date == source.expire_date
    assert row.absolute_expire_date is None
    assert row.authenticated_at is None
    assert row.created_at == now and row.last_seen_at == now
    # Django's rows are left as they were.
    assert list(DjangoSession.objects.values_list("session_key", flat=True)) == [
        source.session_key
    ]


def test_import_links_signed_in_session_with_deadlines_from_now(alice: User) -> None:
    now = timezone.now()
    source = django_row(
        signed_in_data(alice.pk, alice.get_session_auth_hash()),
        expire_date=now + timedelta(weeks=2),
    )
    result = import_django_sessions(now=now)
    assert (result.imported, result.signed_in) == (1, 1)
    row = Session.objects.get()
    assert row.key_hash == hash_key(source.session_key)
    assert row.session_data == source.session_data
    assert row.user_id == alice.pk
    assert row.authenticated_at == now and row.last_seen_at == now
    # The default policy's deadlines, counted from the import.
    assert row.expire_date == now + timedelta(minutes=30)
    assert row.absolute_expire_date == now + timedelta(hours=12)


def test_import_keeps_earlier_django_expiry(alice: User) -> None:
    now = timezone.now()
    soon = now + timedelta(minutes=5)
    django_row(signed_in_data(alice.pk), expire_date=soon)
    import_django_sessions(now=now)
    row = Session.objects.get()
    assert row.expire_date == soon
    assert row.absolute_expire_date == now + timedelta(hours=12)


def test_import_deadlines_follow_timeout_settings(alice: User, settings: Any) -> None:
    settings.SESSIONKIT_IDLE_TIMEOUT = 600
    settings.SESSIONKIT_ABSOLUTE_TIMEOUT = timedelta(hours=1)
    now = timezone.now()
    django_row(signed_in_data(alice.pk))
    import_django_sessions(now=now)
    row = Session.objects.get()
    assert row.expire_date == now + timedelta(minutes=10)
    assert row.absolute_expire_date == now + timedelta(hours=1)


def test_import_without_timeouts_keeps_django_expiry(
    alice: User, settings: Any
) -> None:
    settings.SESSIONKIT_IDLE_TIMEOUT = None
    settings.SESSIONKIT_ABSOLUTE_TIMEOUT = None
    source = django_row(signed_in_data(alice.pk))
    import_django_sessions()
    row = Session.objects.get()
    assert row.expire_date == source.expire_date
    assert row.absolute_expire_date is None
    assert row.authenticated_at is not None


def test_import_idle_deadline_never_after_absolute(alice: User, settings: Any) -> None:
    settings.SESSIONKIT_IDLE_TIMEOUT = timedelta(hours=2)
    settings.SESSIONKIT_ABSOLUTE_TIMEOUT = timedelta(hours=1)
    now = timezone.now()
    django_row(signed_in_data(alice.pk))
    import_django_sessions(now=now)
    row = Session.objects.get()
    assert row.expire_date == row.absolute_expire_date == now + timedelta(hours=1)


# -- What is left alone ---------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "short",
        "K" * 32,  # Django never issues upper case
        "a" * 31,
        "a" * 33,
        "a" * 40,
        "a" * 31 + "-",
        "a" * 31 + "é",
    ],
)
def test_import_skips_malformed_keys(key: str) -> None:
    django_row(key=key)
    result = import_django_sessions()
    assert (result.skipped_malformed, result.imported) == (1, 0)
    assert not Session.objects.exists()


def test_import_skips_expired_rows() -> None:
    now = timezone.now()
    django_row(expire_date=now - timedelta(seconds=1))
    django_row(expire_date=now)
    live = django_row(expire_date=now + timedelta(seconds=1))
    result = import_django_sessions(now=now)
    assert result.read == result.imported == 1
    assert Session.objects.get().key_hash == hash_key(live.session_key)


def test_import_skips_sessions_of_missing_users(alice: User) -> None:
    gone = User.objects.create_user("gone")
    django_row(signed_in_data(gone.pk))
    django_row(signed_in_data("not-a-number"))
    kept = django_row(signed_in_data(alice.pk))
    gone.delete()
    result = import_django_sessions()
    assert counts(result) == {
        "imported": 1,
        "signed_in": 1,
        "already_present": 0,
        "skipped_malformed": 0,
        "users_missing": 2,
    }
    assert Session.objects.get().key_hash == hash_key(kept.session_key)


def test_import_copies_undecodable_data_as_anonymous() -> None:
    # Django reads such a row as an empty session; so does our store.
    source = DjangoSession.objects.create(
        session_key=new_key(),
        session_data="not signed data",
        expire_date=timezone.now() + timedelta(days=1),
    )
    result = import_django_sessions()
    assert (result.imported, result.signed_in) == (1, 0)
    row = Session.objects.get()
    assert row.session_data == source.session_data
    assert row.user_id is None and row.get_decoded() == {}


def test_import_is_idempotent(alice: User) -> None:
    django_row()
    django_row(signed_in_data(alice.pk))
    first = import_django_sessions()
    assert (first.imported, first.already_present) == (2, 0)
    rows = {row.pk: row.session_data for row in Session.objects.all()}
    # A session changed with our engine since is not overwritten.
    Session.objects.filter(user__isnull=True).update(session_data="changed")
    second = import_django_sessions()
    assert counts(second) == {
        "imported": 0,
        "signed_in": 0,
        "already_present": 2,
        "skipped_malformed": 0,
        "users_missing": 0,
    }
    assert Session.objects.count() == 2
    assert set(Session.objects.values_list("pk", flat=True)) == set(rows)
    assert Session.objects.filter(session_data="changed").count() == 1


def test_import_copies_only_new_rows_on_second_run() -> None:
    django_row()
    import_django_sessions()
    django_row()
    result = import_django_sessions()
    assert (result.imported, result.already_present) == (1, 1)
    assert Session.objects.count() == 2


def test_dry_run_counts_and_writes_nothing(alice: User) -> None:
    django_row()
    django_row(signed_in_data(alice.pk))
    django_row(signed_in_data(999_999))
    django_row(key="bad")
    dry = import_django_sessions(dry_run=True)
    assert dry.dry_run
    assert not Session.objects.exists()
    real = import_django_sessions()
    assert (
        counts(dry)
        == counts(real)
        == {
            "imported": 2,
            "signed_in": 1,
            "already_present": 0,
            "skipped_malformed": 1,
            "users_missing": 1,
        }
    )
    assert Session.objects.count() == 2


def test_dry_run_reports_already_present() -> None:
    django_row()
    import_django_sessions()
    with CaptureQueriesContext(connection) as queries:
        result = import_django_sessions(dry_run=True)
    assert (result.imported, result.already_present) == (0, 1)
    assert all(q["sql"].lstrip().upper().startswith("SELECT") for q in queries)


def test_raw_key_never_stored_or_printed(alice: User) -> None:
    keys = [django_row().session_key, django_row(signed_in_data(alice.pk)).session_key]
    with CaptureQueriesContext(connection) as queries:
        output = run("--verbosity", "2")
    texts = [
        str(value)
        for row in Session.objects.values_list()
        for value in row  # every column of every imported row
    ]
    for key in keys:
        assert not [text for text in texts if key in text]
        assert key not in output
        # Keys are read from Django's table, never sent to ours.
        assert not [
            q["sql"]
            for q in queries.captured_queries
            if key in q["sql"] and Session._meta.db_table in q["sql"]
        ]


# -- Batches ---------------------------------------------------------------------


def _queries_on(queries: CaptureQueriesContext, table: str) -> list[str]:
    quoted = connection.ops.quote_name(table)
    return [q["sql"] for q in queries.captured_queries if quoted in q["sql"]]


def test_import_reads_in_batches_with_one_user_query_each() -> None:
    users = [User.objects.create_user(f"user{i}") for i in range(5)]
    for user in users:
        django_row(signed_in_data(user.pk))
    with CaptureQueriesContext(connection) as queries:
        result = import_django_sessions(batch_size=2)
    assert result.batches == 3
    assert (result.imported, result.signed_in) == (5, 5)
    assert len(_queries_on(queries, User._meta.db_table)) == 3
    # Keyset pages in key order, never OFFSET.
    reads = [
        sql
        for sql in _queries_on(queries, DjangoSession._meta.db_table)
        if sql.lstrip().upper().startswith("SELECT")
    ]
    assert len(reads) == 3
    assert not [sql for sql in reads if "OFFSET" in sql.upper()]
    assert "ORDER BY" in reads[0].upper()
    assert Session.objects.filter(user__isnull=False).count() == 5


def test_import_stops_after_a_last_empty_page() -> None:
    for _ in range(4):
        django_row()
    result = import_django_sessions(batch_size=2)
    assert (result.batches, result.imported) == (2, 4)


def test_import_batch_size_defaults_to_cleanup_setting(settings: Any) -> None:
    settings.SESSIONKIT_CLEANUP_BATCH_SIZE = 2
    for _ in range(5):
        django_row()
    assert import_django_sessions().batches == 3
    assert run("--verbosity", "2").count("Batch ") == 3


def test_import_progress_gets_running_totals() -> None:
    for _ in range(3):
        django_row()
    seen: list[tuple[int, int]] = []
    import_django_sessions(
        batch_size=2, progress=lambda r: seen.append((r.batches, r.imported))
    )
    assert seen == [(1, 2), (2, 3)]


def test_import_with_nothing_to_do() -> None:
    result = import_django_sessions()
    assert result.batches == result.read == 0


@pytest.mark.parametrize("size", [0, -1])
def test_import_batch_size_must_be_positive(size: int) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        import_django_sessions(batch_size=size)


# -- The command ------------------------------------------------------------------


def test_command_reports_counts(alice: User) -> None:
    django_row()
    django_row(signed_in_data(alice.pk))
    django_row(signed_in_data(999_999))
    django_row(key="bad")
    assert run() == (
        "Imported 2 sessions (1 signed in).\n"
        "Left alone: 0 already present, 1 with a malformed key, "
        "1 whose user no longer exists.\n"
    )
    assert Session.objects.count() == 2
    assert run() == (
        "Imported 0 sessions (0 signed in).\n"
        "Left alone: 2 already present, 1 with a malformed key, "
        "1 whose user no longer exists.\n"
    )


def test_command_dry_run_writes_nothing() -> None:
    django_row()
    assert run("--dry-run") == (
        "Dry run: nothing was written.\n"
        "Would import 1 session (0 signed in).\n"
        "Left alone: 0 already present, 0 with a malformed key, "
        "0 whose user no longer exists.\n"
    )
    assert not Session.objects.exists()


def test_command_batch_size_and_progress() -> None:
    for _ in range(3):
        django_row()
    output = run("--batch-size", "2", "--verbosity", "2")
    assert output.splitlines()[:2] == [
        "Batch 1: 2 read, 2 imported.",
        "Batch 2: 3 read, 3 imported.",
    ]
    dry = run("--dry-run", "--batch-size", "2", "--verbosity", "2")
    assert "Batch 2: 3 read, 0 to import." in dry.splitlines()
    assert "Batch" not in run("--batch-size", "2")


@pytest.mark.parametrize("size", ["0", "-5"])
def test_command_batch_size_must_be_positive(size: str) -> None:
    with pytest.raises(CommandError, match="--batch-size"):
        run("--batch-size", size)


def test_command_batch_size_must_be_a_number() -> None:
    with pytest.raises(CommandError):
        run("--batch-size", "many")


# -- The browser's point of view ---------------------------------------------------


def test_browser_stays_signed_in_across_the_switch(alice: User) -> None:
    without_policy = [m for m in settings.MIDDLEWARE if m != POLICY_MIDDLEWARE]
    with override_settings(SESSION_ENGINE=DJANGO_ENGINE, MIDDLEWARE=without_policy):
        before = Client()
        response = before.post("/login/", {"username": "alice", "password": PASSWORD})
        assert response.status_code == 200
        assert before.get("/put/?colour=blue").status_code == 200
        assert before.get("/peek/").json()["user"] == "alice"
        key = before.cookies[COOKIE].value
    assert DjangoSession.objects.filter(session_key=key).exists()
    assert not Session.objects.exists()

    call_command("sessionkit_import", stdout=StringIO())

    after = Client()
    after.cookies[COOKIE] = key
    response = after.get("/peek/")
    assert response.json() == {
        "user": "alice",
        "data": {
            SESSION_KEY: str(alice.pk),
            BACKEND_SESSION_KEY: MODEL_BACKEND,
            HASH_SESSION_KEY: alice.get_session_auth_hash(),
            "colour": "blue",
        },
    }
    # Same key: nothing to rotate yet, no new cookie.
    assert COOKIE not in response.cookies
    row = Session.objects.get()
    assert row.key_hash == hash_key(key) and row.user_id == alice.pk
    # The session works from now on with our engine: it is saved, and it
    # signs out.
    assert after.get("/put/?colour=red").status_code == 200
    assert after.get("/peek/").json()["data"]["colour"] == "red"
    assert after.get("/logout/").status_code == 200
    assert not Session.objects.exists()
    stale = Client()
    stale.cookies[COOKIE] = key
    assert stale.get("/peek/").json()["user"] == ""


def imported_browser(user: User) -> str:
    """The key of a session of ``user`` signed in under Django's engine, then
    imported."""
    without_policy = [m for m in settings.MIDDLEWARE if m != POLICY_MIDDLEWARE]
    with override_settings(SESSION_ENGINE=DJANGO_ENGINE, MIDDLEWARE=without_policy):
        before = Client()
        response = before.post(
            "/login/", {"username": user.get_username(), "password": PASSWORD}
        )
        assert response.status_code == 200
        key = str(before.cookies[COOKIE].value)
    call_command("sessionkit_import", stdout=StringIO())
    return key


def test_imported_session_must_reauthenticate_for_sudo(
    alice: User, engine: str
) -> None:
    other = Client()
    other.post("/login/", {"username": "alice", "password": PASSWORD})
    after = Client()
    after.cookies[COOKIE] = imported_browser(alice)
    # Still signed in: only the sudo window is closed.
    assert after.get("/peek/").json()["user"] == "alice"
    response = after.post("/sessions/sign-out-others/", headers=JSON)
    assert response.status_code == 403
    assert response.json()["error"] == "reauthentication_required"
    assert Session.objects.filter(user=alice).count() == 2
    response = after.post("/sessions/reauthenticate/", {"password": PASSWORD})
    assert response.status_code == 302
    response = after.post("/sessions/sign-out-others/", headers=JSON)
    assert response.status_code == 200
    assert response.json() == {"revoked": 1}


@pytest.mark.urls("tests.urls_reauth")
@pytest.mark.parametrize("path", ["/sensitive/", "/asensitive/"])
def test_imported_session_not_recent_authentication(alice: User, path: str) -> None:
    after = Client()
    after.cookies[COOKIE] = imported_browser(alice)
    assert after.get("/last/").json()["at"] is None
    response = after.get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/sessions/reauthenticate/")


@pytest.mark.urls("tests.urls_reauth")
async def test_imported_session_not_recent_authentication_async(
    alice: User,
) -> None:
    key = await sync_to_async(imported_browser)(alice)
    after = AsyncClient()
    after.cookies[COOKIE] = key
    assert (await after.get("/alast/")).json()["at"] is None
    response = await after.get("/asensitive/", headers=JSON)
    assert response.status_code == 403


def test_imported_session_signing_in_again_is_recent(alice: User, engine: str) -> None:
    after = Client()
    after.cookies[COOKIE] = imported_browser(alice)
    response = after.post("/login/", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 200
    response = after.post("/sessions/sign-out-others/", headers=JSON)
    assert response.status_code == 200


# -- Scale -------------------------------------------------------------------------


def _insert_django_rows(rows: list[tuple[str, str, datetime]]) -> None:
    """Insert rows into Django's session table, faster than ``bulk_create``."""
    quote = connection.ops.quote_name
    table = quote(DjangoSession._meta.db_table)
    columns = ", ".join(
        quote(name) for name in ("session_key", "session_data", "expire_date")
    )
    expire = connection.ops.adapt_datetimefield_value
    with connection.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {table} ({columns}) VALUES (%s, %s, %s)",  # noqa: S608
            [(key, data, expire(expire_date)) for key, data, expire_date in rows],
        )


def test_import_100k_sessions() -> None:
    users = User.objects.bulk_create(
        [User(username=f"user{i}", password="!") for i in range(100)]
    )
    if users[0].pk is None:  # backends that do not return ids
        users = list(User.objects.order_by("pk"))
    anonymous = DjangoStore().encode({"cart": [1]})
    signed_in = [DjangoStore().encode(signed_in_data(user.pk)) for user in users]
    expire_date = timezone.now() + timedelta(days=1)
    total = 100_000
    _insert_django_rows(
        [
            # Every fourth session is signed in.
            (f"{i:032x}", signed_in[i % 100] if i % 4 == 0 else anonymous, expire_date)
            for i in range(total)
        ]
    )
    assert DjangoSession.objects.count() == total

    result = import_django_sessions(batch_size=1000)
    assert result.batches == 100
    assert counts(result) == {
        "imported": total,
        "signed_in": total // 4,
        "already_present": 0,
        "skipped_malformed": 0,
        "users_missing": 0,
    }
    assert Session.objects.count() == total
    assert Session.objects.filter(user__isnull=False).count() == total // 4
    row = Session.objects.get(key_hash=hash_key(f"{8:032x}"))
    assert row.user_id == users[8].pk
    assert row.get_decoded()[SESSION_KEY] == str(users[8].pk)

    again = import_django_sessions(batch_size=1000)
    assert (again.imported, again.already_present) == (0, total)


def test_import_without_django_sessions_installed_is_a_clear_error(
    settings: Any,
) -> None:
    from django.core.management import CommandError, call_command

    settings.INSTALLED_APPS = [
        app for app in settings.INSTALLED_APPS if app != "django.contrib.sessions"
    ]
    with pytest.raises(CommandError, match="is not in INSTALLED_APPS"):
        call_command("sessionkit_import")
