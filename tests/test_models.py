from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import FieldError
from django.core.management import call_command
from django.db import IntegrityError, connection
from django.db.models import Q
from django.utils import timezone

from django_sessionkit.backends.db import SessionStore
from django_sessionkit.keys import hash_key
from django_sessionkit.models import Device, Session, SessionEvent

pytestmark = pytest.mark.django_db


def test_migrations_match_models() -> None:
    out = StringIO()
    try:
        call_command(
            "makemigrations", "sessionkit", check=True, dry_run=True, stdout=out
        )
    except SystemExit:  # pragma: no cover - the failure this test exists for
        pytest.fail(f"Model changes without a migration:\n{out.getvalue()}")


def _indexes(table: str) -> dict[str, dict[str, object]]:
    with connection.cursor() as cursor:
        return connection.introspection.get_constraints(cursor, table)


def test_session_indexes_cover_lookups() -> None:
    constraints = _indexes(Session._meta.db_table).values()
    indexed = [tuple(c["columns"]) for c in constraints]  # type: ignore[call-overload]
    unique = [tuple(c["columns"]) for c in constraints if c["unique"]]  # type: ignore[call-overload]
    # One index on key_hash (the unique one), not a second LIKE index.
    assert indexed.count(("key_hash",)) == 1
    assert ("key_hash",) in unique
    assert ("user_id", "expire_date") in indexed
    assert ("expire_date",) in indexed
    assert ("absolute_expire_date",) in indexed


def test_session_key_hash_unique() -> None:
    now = timezone.now()
    Session.objects.create(
        key_hash=hash_key("a" * 32), session_data="", expire_date=now
    )
    with pytest.raises(IntegrityError):
        Session.objects.create(
            key_hash=hash_key("a" * 32), session_data="", expire_date=now
        )


def test_session_primary_key_not_derived_from_key() -> None:
    store = SessionStore()
    store["x"] = 1
    store.save()
    row = Session.objects.get()
    assert store.session_key is not None
    assert str(row.pk) not in (store.session_key, row.key_hash)
    assert isinstance(row.pk, int)


def test_session_str_and_repr_hide_key() -> None:
    store = SessionStore()
    store["x"] = 1
    store.save()
    key = store.session_key
    assert key is not None
    row = Session.objects.get()
    for text in (str(row), repr(row), repr(store), str(store)):
        assert key not in text
        assert row.key_hash not in text
    assert str(row.pk) in repr(store)


def test_session_filter_by_session_key_hashes_it() -> None:
    store = SessionStore()
    store["x"] = 1
    store.save()
    assert Session.objects.filter(
        session_key=store.session_key
    ).get().get_decoded() == {"x": 1}
    assert not Session.objects.filter(session_key="z" * 32).exists()
    assert not Session.objects.exclude(session_key=store.session_key).exists()


def _stored(count: int) -> list[str]:
    keys = []
    for n in range(count):
        store = SessionStore()
        store["n"] = n
        store.save()
        assert store.session_key is not None
        keys.append(store.session_key)
    return keys


def test_session_key_in_q_object_hashes_it() -> None:
    first, second = _stored(2)
    found = Session.objects.filter(Q(session_key=first) | Q(session_key=second))
    assert sorted(row.get_decoded()["n"] for row in found) == [0, 1]
    assert Session.objects.get(Q(session_key=second)).get_decoded() == {"n": 1}
    assert not Session.objects.filter(Q(session_key="z" * 32)).exists()
    # Negated and nested, through exclude() too.
    assert Session.objects.exclude(Q(session_key=first)).get().get_decoded() == {"n": 1}
    assert Session.objects.filter(~Q(Q(session_key=first) | Q(pk=0))).count() == 1


def test_session_key_in_lookup_hashes_each_key() -> None:
    first, second, third = _stored(3)
    found = Session.objects.filter(session_key__in=[first, third, "z" * 32])
    assert sorted(row.get_decoded()["n"] for row in found) == [0, 2]
    assert Session.objects.filter(Q(session_key__in=(second,))).count() == 1
    assert Session.objects.exclude(session_key__in=[first, second]).count() == 1
    assert Session.objects.filter(session_key__exact=second).count() == 1
    assert not Session.objects.filter(session_key__in=[]).exists()


def test_session_key_lookup_that_cannot_be_hashed_is_refused() -> None:
    (key,) = _stored(1)
    for lookup in ("session_key__startswith", "session_key__icontains"):
        with pytest.raises(FieldError, match="stored only as its hash"):
            Session.objects.filter(**{lookup: key[:4]})
    with pytest.raises(FieldError, match="stored only as its hash"):
        Session.objects.filter(Q(session_key__gt=key))


def test_user_agent_column_is_bounded() -> None:
    field = Session._meta.get_field("user_agent")
    assert field.max_length == 512
    assert Device._meta.get_field("user_agent").max_length == 512


def test_deleting_user_removes_sessions_and_devices_keeps_events() -> None:
    user = User.objects.create_user("gone")
    device = Device.objects.create(user=user)
    Session.objects.create(
        key_hash=hash_key("b" * 32),
        session_data="",
        expire_date=timezone.now(),
        user=user,
        device=device,
    )
    event = SessionEvent.objects.create(
        kind=SessionEvent.Kind.LOGIN, session_id=1, user=user, device=device
    )
    user.delete()
    assert not Session.objects.exists()
    assert not Device.objects.exists()
    event.refresh_from_db()
    assert event.user is None and event.device is None and event.session_id == 1
    assert "1" in str(event)


def _row(key: str, user: User | None = None, **values: object) -> Session:
    now = timezone.now()
    values.setdefault("expire_date", now + timedelta(hours=1))
    return Session.objects.create(
        key_hash=hash_key(key), session_data="", user=user, **values
    )


def test_live_is_within_both_deadlines() -> None:
    now = timezone.now()
    hour = timedelta(hours=1)
    live = _row("a" * 32)
    bounded = _row("b" * 32, absolute_expire_date=now + hour)
    idle = _row("c" * 32, expire_date=now - hour)
    absolute = _row("d" * 32, absolute_expire_date=now - hour)
    at_deadline = _row("e" * 32, expire_date=now)
    assert set(Session.objects.live(now)) == {live, bounded}
    assert set(Session.objects.expired(now)) == {idle, absolute, at_deadline}
    for row in (live, bounded, idle, absolute, at_deadline):
        assert row.is_live(now) is (row in (live, bounded))
    # Without a moment: now.
    assert set(Session.objects.live()) == {live, bounded}


def test_of_user_is_that_users_sessions_only(alice: User, bob: User) -> None:
    mine = _row("a" * 32, alice)
    _row("b" * 32, bob)
    _row("c" * 32)
    assert list(Session.objects.of_user(alice)) == [mine]
