"""Signal receivers: sign-in rotation, password and privilege changes, users
set inactive or deleted."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.backends import BaseBackend
from django.contrib.auth.models import Group, Permission, User
from django.test import AsyncClient, Client
from django.utils.crypto import salted_hmac

from django_sessionkit import receivers
from django_sessionkit.keys import hash_key
from django_sessionkit.models import Device, Session, SessionEvent
from django_sessionkit.signals import session_revoked, session_rotated
from tests.helpers import PASSWORD, captured, carrying, events, set_cookie, user_of

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "battery staple"
COOKIE = settings.SESSION_COOKIE_NAME
Kind = SessionEvent.Kind


def sign_in(client: Client, path: str = "/login/", username: str = "alice") -> str:
    response = client.post(path, {"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.content
    return str(client.cookies[COOKIE].value)


def signed_in_browsers(count: int, username: str = "alice") -> list[Client]:
    browsers = [Client() for _ in range(count)]
    for browser in browsers:
        sign_in(browser, username=username)
    return browsers


def key_of(client: Client) -> str:
    return str(client.cookies[COOKIE].value)


def row_of(client: Client) -> Session:
    return Session.objects.get(key_hash=hash_key(key_of(client)))


# -- Every sign-in rotates the key ------------------------------------------------


@pytest.mark.parametrize("path", ["/login/", "/alogin/"])
def test_sign_in_again_as_same_user_rotates_key(
    client: Client, alice: User, path: str
) -> None:
    first = sign_in(client, path)
    row = Session.objects.get()
    second = sign_in(client, path)
    assert second != first
    again = Session.objects.get()
    assert again.pk == row.pk
    assert again.key_hash == hash_key(second)
    assert user_of(carrying(first).get("/peek/")) == ""
    assert user_of(client.get("/peek/")) == "alice"


async def test_alogin_again_as_same_user_rotates_key(alice: User) -> None:
    client = AsyncClient()
    keys = []
    for _ in range(2):
        response = await client.post(
            "/alogin/", {"username": "alice", "password": PASSWORD}
        )
        assert response.status_code == 200
        keys.append(client.cookies[COOKIE].value)
    assert keys[0] != keys[1]
    row = await Session.objects.aget()
    assert row.key_hash == hash_key(keys[1])
    stale = AsyncClient()
    stale.cookies[COOKIE] = keys[0]
    assert user_of(await stale.get("/peek/")) == ""
    assert user_of(await client.get("/peek/")) == "alice"


@pytest.mark.parametrize("path", ["/login/", "/alogin/"])
def test_sign_in_of_anonymous_session_keeps_row(
    client: Client, alice: User, path: str
) -> None:
    client.get("/put/?basket=3")
    anonymous = Session.objects.get()
    old = key_of(client)
    new = sign_in(client, path)
    assert new != old
    row = Session.objects.get()
    assert row.pk == anonymous.pk
    assert row.user == alice
    assert row.key_hash == hash_key(new)
    assert client.get("/peek/").json()["data"]["basket"] == "3"
    assert carrying(old).get("/peek/").json() == {"user": "", "data": {}}


# -- Password change ----------------------------------------------------------------


@pytest.mark.urls("tests.urls_rotation")
@pytest.mark.parametrize("path", ["/password/", "/apassword/"])
def test_password_change_keeps_current_and_revokes_others(
    alice: User, bob: User, path: str
) -> None:
    current, other, another = signed_in_browsers(3)
    [bobs] = signed_in_browsers(1, username="bob")
    row = row_of(current)
    old = key_of(current)
    others = [row_of(other).pk, row_of(another).pk]
    with captured(session_revoked) as revoked:
        response = current.post(path, {"password": NEW_PASSWORD})
    assert response.status_code == 200
    new = set_cookie(response)
    assert new is not None and new != old
    assert user_of(current.get("/peek/")) == "alice"
    assert row_of(current).pk == row.pk
    assert user_of(carrying(old).get("/peek/")) == ""
    assert list(Session.objects.filter(user=alice)) == [row_of(current)]
    assert user_of(other.get("/peek/")) == ""
    assert user_of(another.get("/peek/")) == ""
    revokes = events(Kind.REVOKE)
    assert sorted(e.session_id for e in revokes) == sorted(others)
    assert {e.reason for e in revokes} == {"password_change"}
    assert sorted(r["session_id"] for r in revoked) == sorted(others)
    # Nobody else's sessions are touched.
    assert user_of(bobs.get("/peek/")) == "bob"


@pytest.mark.urls("tests.urls_rotation")
def test_password_change_without_revoking_others(alice: User, settings: Any) -> None:
    settings.SESSIONKIT_REVOKE_OTHERS_ON_PASSWORD_CHANGE = False
    current, other = signed_in_browsers(2)
    other_row = row_of(other)
    response = current.post("/password/", {"password": NEW_PASSWORD})
    assert response.status_code == 200
    assert user_of(current.get("/peek/")) == "alice"
    assert not events(Kind.REVOKE)
    # The other row stays until its next request, when Django itself signs
    # it out: its session hash no longer matches the password.
    assert Session.objects.filter(user=alice).count() == 2
    assert Session.objects.filter(pk=other_row.pk).exists()
    assert user_of(other.get("/peek/")) == ""
    assert not Session.objects.filter(pk=other_row.pk).exists()
    assert user_of(current.get("/peek/")) == "alice"


@pytest.mark.urls("tests.urls_rotation")
def test_password_change_of_another_user_revokes_all_theirs(
    alice: User, bob: User
) -> None:
    browsers = signed_in_browsers(2)
    [admin] = signed_in_browsers(1, username="bob")
    response = admin.post("/password-of/alice/", {"password": NEW_PASSWORD})
    assert response.status_code == 200
    assert not Session.objects.filter(user=alice).exists()
    assert len(events(Kind.REVOKE)) == 2
    assert [user_of(b.get("/peek/")) for b in browsers] == ["", ""]
    assert user_of(admin.get("/peek/")) == "bob"


def test_password_change_outside_request_revokes_all(alice: User) -> None:
    browsers = signed_in_browsers(2)
    alice.set_password(NEW_PASSWORD)
    alice.save()
    assert not Session.objects.exists()
    assert {e.reason for e in events(Kind.REVOKE)} == {"password_change"}
    assert len(events(Kind.REVOKE)) == 2
    assert [user_of(b.get("/peek/")) for b in browsers] == ["", ""]


def test_save_without_password_change_revokes_nothing(alice: User) -> None:
    browsers = signed_in_browsers(2)
    alice.first_name = "Alice"
    alice.save()
    assert Session.objects.count() == 2
    assert not events(Kind.REVOKE)
    assert [user_of(b.get("/peek/")) for b in browsers] == ["alice", "alice"]


# -- Privilege change -----------------------------------------------------------------


@pytest.mark.parametrize("field", ["is_staff", "is_superuser"])
def test_privilege_change_rotates_every_session_at_next_request(
    alice: User, bob: User, field: str
) -> None:
    browsers = signed_in_browsers(2)
    [bobs] = signed_in_browsers(1, username="bob")
    bobs_key = key_of(bobs)
    rows = {row_of(b).pk: key_of(b) for b in browsers}
    # Changed elsewhere: another request, the admin, a shell.
    elsewhere = User.objects.get(pk=alice.pk)
    setattr(elsewhere, field, True)
    with captured(session_rotated) as rotated:
        elsewhere.save()
        assert not events(Kind.ROTATE)
        assert set(Session.objects.filter(rotate_due=True)) == {
            Session.objects.get(pk=pk) for pk in rows
        }
        for browser in browsers:
            old = key_of(browser)
            response = browser.get("/peek/")
            assert user_of(response) == "alice"
            new = set_cookie(response)
            assert new is not None and new != old
            assert user_of(carrying(old).get("/peek/")) == ""
    assert {row_of(b).pk for b in browsers} == set(rows)
    assert not Session.objects.filter(rotate_due=True).exists()
    # Rotated once: the next requests keep their new keys.
    for browser in browsers:
        response = browser.get("/peek/")
        assert user_of(response) == "alice"
        assert set_cookie(response) is None
    rotations = events(Kind.ROTATE)
    assert sorted(e.session_id for e in rotations) == sorted(rows)
    assert {e.reason for e in rotations} == {"privilege"}
    assert sorted(r["session_id"] for r in rotated) == sorted(rows)
    assert key_of(bobs) == bobs_key
    assert set_cookie(bobs.get("/peek/")) is None


def test_privilege_revoked_also_rotates(alice: User) -> None:
    alice.is_staff = True
    alice.save()
    [browser] = signed_in_browsers(1)
    old = key_of(browser)
    elsewhere = User.objects.get(pk=alice.pk)
    elsewhere.is_staff = False
    elsewhere.save()
    response = browser.get("/peek/")
    assert user_of(response) == "alice"
    assert set_cookie(response) not in (None, old)


def test_save_without_privilege_change_does_not_rotate(alice: User) -> None:
    [browser] = signed_in_browsers(1)
    elsewhere = User.objects.get(pk=alice.pk)
    elsewhere.is_staff = elsewhere.is_staff
    elsewhere.last_name = "Liddell"
    elsewhere.save()
    assert not Session.objects.filter(rotate_due=True).exists()
    response = browser.get("/peek/")
    assert user_of(response) == "alice"
    assert set_cookie(response) is None


# -- Users set inactive or deleted ----------------------------------------------


def test_inactive_user_loses_all_sessions(alice: User, bob: User) -> None:
    browsers = signed_in_browsers(2)
    [bobs] = signed_in_browsers(1, username="bob")
    ids = sorted(row_of(b).pk for b in browsers)
    elsewhere = User.objects.get(pk=alice.pk)
    elsewhere.is_active = False
    with captured(session_revoked) as revoked:
        elsewhere.save()
    assert not Session.objects.filter(user=alice).exists()
    revokes = events(Kind.REVOKE)
    assert sorted(e.session_id for e in revokes) == ids
    assert {(e.reason, e.user_id) for e in revokes} == {("inactive", alice.pk)}
    assert sorted(r["session_id"] for r in revoked) == ids
    assert [user_of(b.get("/peek/")) for b in browsers] == ["", ""]
    assert user_of(bobs.get("/peek/")) == "bob"


@pytest.mark.parametrize("store", ["db", "cached_db"])
def test_deleting_user_revokes_sessions(
    request: pytest.FixtureRequest, alice: User, bob: User, store: str
) -> None:
    if store == "cached_db":
        request.getfixturevalue("cached_engine")
    browsers = signed_in_browsers(2)
    [bobs] = signed_in_browsers(1, username="bob")
    ids = sorted(row_of(b).pk for b in browsers)
    keys = [key_of(b) for b in browsers]
    for browser in browsers:  # served from the cache with the cached store
        assert user_of(browser.get("/peek/")) == "alice"
    with captured(session_revoked) as revoked:
        User.objects.get(pk=alice.pk).delete()
    assert list(Session.objects.all()) == [row_of(bobs)]
    # Revoked through the API, not by the cascade: events (whose user is then
    # set to NULL with the user) and signals.
    revokes = events(Kind.REVOKE)
    assert sorted(e.session_id for e in revokes) == ids
    assert {(e.reason, e.user_id) for e in revokes} == {("user_deleted", None)}
    assert sorted(r["session_id"] for r in revoked) == ids
    for key in keys:
        response = carrying(key).get("/peek/")
        assert response.json() == {"user": "", "data": {}}
        assert getattr(response.wsgi_request.session, "from_cache", False) is False
    assert user_of(bobs.get("/peek/")) == "bob"


def test_deleting_users_in_bulk_revokes_each(alice: User, bob: User) -> None:
    signed_in_browsers(2)
    signed_in_browsers(1, username="bob")
    User.objects.filter(username__in=["alice", "bob"]).delete()
    assert not Session.objects.exists()
    reasons = [e.reason for e in events(Kind.REVOKE)]
    assert reasons == ["user_deleted"] * 3


class ProxiedUser(User):
    """A proxy of the user model, as an admin for "staff" might use."""

    class Meta:
        proxy = True
        app_label = "auth"


def test_proxy_user_deactivated_or_deleted_ends_sessions(alice: User) -> None:
    # The proxy is defined after the app was ready: connect it as ready() does.
    receivers.connect_user_proxies()
    browsers = signed_in_browsers(2)
    proxied = ProxiedUser.objects.get(pk=alice.pk)
    proxied.is_active = False
    proxied.save()
    assert not Session.objects.exists()
    assert [user_of(b.get("/peek/")) for b in browsers] == ["", ""]
    assert {e.reason for e in events(Kind.REVOKE)} == {"inactive"}
    proxied.is_active = True
    proxied.save()
    signed_in_browsers(1)
    ProxiedUser.objects.get(pk=alice.pk).delete()
    assert not Session.objects.exists()
    assert [e.reason for e in events(Kind.REVOKE)].count("user_deleted") == 1


# -- Group and permission changes -------------------------------------------------


def _permission() -> Permission:
    return Permission.objects.get(
        codename="view_session", content_type__app_label="sessionkit"
    )


MEMBERSHIP_CHANGES = {
    "user.groups.add": lambda user, group: user.groups.add(group),
    "group.user_set.add": lambda user, group: group.user_set.add(user),
    "user.groups.set": lambda user, group: user.groups.set([group]),
}
MEMBERSHIP_REMOVALS = {
    "user.groups.remove": lambda user, group: user.groups.remove(group),
    "group.user_set.remove": lambda user, group: group.user_set.remove(user),
    "user.groups.clear": lambda user, group: user.groups.clear(),
    "group.user_set.clear": lambda user, group: group.user_set.clear(),
}
PERMISSION_CHANGES = {
    "user.user_permissions.add": lambda u, p: u.user_permissions.add(p),
    "permission.user_set.add": lambda u, p: p.user_set.add(u),
}
PERMISSION_REMOVALS = {
    "user.user_permissions.remove": lambda u, p: u.user_permissions.remove(p),
    "permission.user_set.remove": lambda u, p: p.user_set.remove(u),
    "user.user_permissions.clear": lambda u, p: u.user_permissions.clear(),
    "permission.user_set.clear": lambda u, p: p.user_set.clear(),
}


def _rotated_users() -> set[str]:
    rows = Session.objects.filter(rotate_due=True).select_related("user")
    return {row.user.username for row in rows if row.user is not None}


def _assert_rotates_at_next_request(browser: Client) -> None:
    old = key_of(browser)
    response = browser.get("/peek/")
    assert user_of(response) == "alice"
    assert set_cookie(response) not in (None, old)
    assert user_of(carrying(old).get("/peek/")) == ""
    assert [e.reason for e in events(Kind.ROTATE)] == ["privilege"]


@pytest.mark.parametrize("change", MEMBERSHIP_CHANGES, ids=list(MEMBERSHIP_CHANGES))
def test_group_membership_added_rotates_sessions(
    alice: User, bob: User, change: str
) -> None:
    [browser] = signed_in_browsers(1)
    signed_in_browsers(1, username="bob")
    group = Group.objects.create(name="editors")
    MEMBERSHIP_CHANGES[change](User.objects.get(pk=alice.pk), group)
    assert _rotated_users() == {"alice"}
    _assert_rotates_at_next_request(browser)


@pytest.mark.parametrize("change", MEMBERSHIP_REMOVALS, ids=list(MEMBERSHIP_REMOVALS))
def test_group_membership_removed_rotates_sessions(
    alice: User, bob: User, change: str
) -> None:
    group = Group.objects.create(name="editors")
    alice.groups.add(group)
    [browser] = signed_in_browsers(1)
    signed_in_browsers(1, username="bob")
    MEMBERSHIP_REMOVALS[change](User.objects.get(pk=alice.pk), group)
    assert _rotated_users() == {"alice"}
    _assert_rotates_at_next_request(browser)


@pytest.mark.parametrize("change", PERMISSION_CHANGES, ids=list(PERMISSION_CHANGES))
def test_permission_granted_rotates_sessions(
    alice: User, bob: User, change: str
) -> None:
    [browser] = signed_in_browsers(1)
    signed_in_browsers(1, username="bob")
    PERMISSION_CHANGES[change](User.objects.get(pk=alice.pk), _permission())
    assert _rotated_users() == {"alice"}
    _assert_rotates_at_next_request(browser)


@pytest.mark.parametrize("change", PERMISSION_REMOVALS, ids=list(PERMISSION_REMOVALS))
def test_permission_withdrawn_rotates_sessions(
    alice: User, bob: User, change: str
) -> None:
    alice.user_permissions.add(_permission())
    [browser] = signed_in_browsers(1)
    signed_in_browsers(1, username="bob")
    PERMISSION_REMOVALS[change](User.objects.get(pk=alice.pk), _permission())
    assert _rotated_users() == {"alice"}
    _assert_rotates_at_next_request(browser)


def test_group_membership_unchanged_does_not_rotate(alice: User) -> None:
    group = Group.objects.create(name="editors")
    alice.groups.add(group)
    [browser] = signed_in_browsers(1)
    alice.groups.add(group)  # already a member
    User.objects.get(pk=alice.pk).user_permissions.remove(_permission())  # never had
    Group.objects.create(name="empty").user_set.clear()
    assert _rotated_users() == set()
    assert set_cookie(browser.get("/peek/")) is None


GROUP_PERMISSION_CHANGES = {
    "group.permissions.add": lambda g, p: g.permissions.add(p),
    "permission.group_set.add": lambda g, p: p.group_set.add(g),
    "group.permissions.remove": lambda g, p: g.permissions.remove(p),
    "permission.group_set.remove": lambda g, p: p.group_set.remove(g),
    "group.permissions.clear": lambda g, p: g.permissions.clear(),
    "permission.group_set.clear": lambda g, p: p.group_set.clear(),
}


@pytest.mark.parametrize(
    "change", GROUP_PERMISSION_CHANGES, ids=list(GROUP_PERMISSION_CHANGES)
)
def test_group_permission_change_rotates_members_sessions(
    alice: User, bob: User, change: str
) -> None:
    group = Group.objects.create(name="editors")
    alice.groups.add(group)
    if "add" not in change:
        group.permissions.add(_permission())
    [browser] = signed_in_browsers(1)
    signed_in_browsers(1, username="bob")
    GROUP_PERMISSION_CHANGES[change](Group.objects.get(pk=group.pk), _permission())
    assert _rotated_users() == {"alice"}
    _assert_rotates_at_next_request(browser)


def test_proxy_user_group_change_rotates_sessions(alice: User) -> None:
    receivers.connect_user_proxies()
    [browser] = signed_in_browsers(1)
    ProxiedUser.objects.get(pk=alice.pk).groups.add(Group.objects.create(name="ops"))
    assert _rotated_users() == {"alice"}
    _assert_rotates_at_next_request(browser)


# -- Password change without the middleware ----------------------------------------

WITHOUT_SESSIONKIT = [
    m for m in settings.MIDDLEWARE if not m.startswith("django_sessionkit.")
]


@pytest.mark.urls("tests.urls_rotation")
@pytest.mark.parametrize(
    "path", ["/password/", "/apassword/", "/password-after-decoding/"]
)
def test_password_change_without_middleware_keeps_current(
    alice: User, path: str, settings: Any
) -> None:
    settings.MIDDLEWARE = WITHOUT_SESSIONKIT
    current, other = signed_in_browsers(2)
    row = row_of(current)
    other_row = row_of(other)
    response = current.post(path, {"password": NEW_PASSWORD})
    assert response.status_code == 200, response.content
    assert user_of(current.get("/peek/")) == "alice"
    assert row_of(current).pk == row.pk
    assert user_of(other.get("/peek/")) == ""
    revokes = events(Kind.REVOKE)
    assert [(e.session_id, e.reason) for e in revokes] == [
        (other_row.pk, "password_change")
    ]


def test_password_change_with_request_factory_keeps_current(alice: User) -> None:
    from django.contrib.auth import update_session_auth_hash
    from django.test import RequestFactory

    from django_sessionkit.backends.db import SessionStore

    current, other = signed_in_browsers(2)
    row = row_of(current)
    request = RequestFactory().post("/")
    request.session = SessionStore(key_of(current))
    request.user = User.objects.get(pk=alice.pk)
    request.user.set_password(NEW_PASSWORD)
    request.user.save()
    update_session_auth_hash(request, request.user)
    request.session.save()
    assert request.session.session_key != key_of(current)
    assert Session.objects.get(pk=row.pk).key_hash == hash_key(
        request.session.session_key
    )
    assert user_of(carrying(request.session.session_key).get("/peek/")) == "alice"
    assert user_of(other.get("/peek/")) == ""
    assert [e.reason for e in events(Kind.REVOKE)] == ["password_change"]


@pytest.mark.urls("tests.urls_rotation")
def test_password_reset_without_session_keeps_no_stale_session(
    alice: User, settings: Any
) -> None:
    # A store of one of alice's sessions seen earlier in this thread must not
    # count as the session of a later request that resets her password.
    settings.MIDDLEWARE = WITHOUT_SESSIONKIT
    [browser] = signed_in_browsers(1)
    assert user_of(browser.get("/peek/")) == "alice"
    response = Client().post("/password-of/alice/", {"password": NEW_PASSWORD})
    assert response.status_code == 200
    assert not Session.objects.filter(user=alice).exists()


def test_password_change_outside_request_kept_session_is_signed_out(
    alice: User,
) -> None:
    # Outside a request (a shell, a task), the first store made since the
    # last request counts as the current session, and a password change
    # keeps its row; but that session still carries the old password's
    # hash, so Django's own check signs it out at its next request.
    from django_sessionkit.backends.db import SessionStore

    first, second = signed_in_browsers(2)
    store = SessionStore(key_of(second))
    store.load()
    alice.set_password(NEW_PASSWORD)
    alice.save()
    assert Session.objects.filter(pk=row_of(second).pk).exists()
    assert user_of(second.get("/peek/")) == ""
    assert user_of(first.get("/peek/")) == ""


# -- Signing in as another user in the same browser ---------------------------------


@pytest.mark.parametrize("path", ["/login/", "/alogin/"])
def test_sign_in_as_other_user_records_first_users_logout(
    alice: User, bob: User, path: str
) -> None:
    browser = Client()
    sign_in(browser, path=path)
    first = row_of(browser)
    sign_in(browser, path=path, username="bob")
    assert user_of(browser.get("/peek/")) == "bob"
    assert not Session.objects.filter(pk=first.pk).exists()
    [logout] = events(Kind.LOGOUT)
    assert (logout.session_id, logout.user, logout.reason) == (
        first.pk,
        alice,
        "user_switched",
    )
    assert [e.user for e in events(Kind.LOGIN)] == [alice, bob]


async def test_alogin_as_other_user_records_first_users_logout(
    alice: User, bob: User
) -> None:
    browser = AsyncClient()
    for username in ("alice", "bob"):
        response = await browser.post(
            "/alogin/", {"username": username, "password": PASSWORD}
        )
        assert response.status_code == 200
    logouts = [
        (e.user_id, e.reason)
        async for e in SessionEvent.objects.filter(kind=Kind.LOGOUT)
    ]
    assert logouts == [(alice.pk, "user_switched")]


def test_sign_out_then_in_as_other_user_records_one_logout(
    alice: User, bob: User
) -> None:
    browser = Client()
    sign_in(browser)
    browser.post("/logout/")
    sign_in(browser, username="bob")
    assert [e.reason for e in events(Kind.LOGOUT)] == ["logout"]


def test_sign_in_again_as_same_user_records_no_logout(alice: User) -> None:
    browser = Client()
    sign_in(browser)
    sign_in(browser)
    assert events(Kind.LOGOUT) == []


# -- A backend that signs in something other than the user model --------------------


class Account(Group):
    """A sign-in identity that is not ``AUTH_USER_MODEL`` (Django allows a
    backend to return one); a proxy of ``Group`` so that it needs no table."""

    is_active = True
    is_authenticated = True
    is_anonymous = False
    last_login = None

    class Meta:
        proxy = True
        app_label = "auth"

    def get_username(self) -> str:
        return self.name

    def get_session_auth_hash(self) -> str:
        return salted_hmac("tests.Account", self.name, algorithm="sha256").hexdigest()

    def save(self, *args: Any, **kwargs: Any) -> None:
        # Django's update_last_login() saves "last_login" on whatever signed in.
        if kwargs.get("update_fields") == ["last_login"]:
            return
        super().save(*args, **kwargs)


class AccountBackend(BaseBackend):
    def authenticate(  # type: ignore[override]
        self, request: Any, username: str | None = None, password: str | None = None
    ) -> Account | None:
        if password != "account secret":
            return None
        return Account.objects.filter(name=username).first()

    def get_user(self, pk: Any) -> Account | None:  # type: ignore[override]
        return Account.objects.filter(pk=pk).first()


ACCOUNT_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    f"{__name__}.AccountBackend",
]


@pytest.mark.parametrize("path", ["/login/", "/alogin/"])
def test_sign_in_of_other_model_makes_session_without_user(
    alice: User, settings: Any, path: str
) -> None:
    settings.AUTHENTICATION_BACKENDS = ACCOUNT_BACKENDS
    settings.SESSIONKIT_MAX_SESSIONS_PER_USER = 1
    # The same id as alice's: the session must not become hers.
    account = Account.objects.create(pk=alice.pk, name="ops")
    [alices] = signed_in_browsers(1)
    browser = Client()
    response = browser.post(path, {"username": "ops", "password": "account secret"})
    assert response.status_code == 200, response.content
    assert user_of(browser.get("/peek/")) == "ops"
    row = row_of(browser)
    assert (row.user_id, row.device_id) == (None, None)
    assert list(Session.objects.filter(user=alice)) == [row_of(alices)]
    assert user_of(alices.get("/peek/")) == "alice"  # not evicted by the limit
    assert Device.objects.filter(user=alice).count() == 1
    login = events(Kind.LOGIN)[-1]
    assert (login.session_id, login.user_id) == (row.pk, None)
    assert user_of(browser.get("/peek/")) == "ops"  # saved again, still unlinked
    browser.get("/put/?basket=3")
    assert Session.objects.get(pk=row.pk).user_id is None
    assert account.pk == alice.pk


def test_sign_in_as_user_after_other_model_links_session(
    alice: User, settings: Any
) -> None:
    settings.AUTHENTICATION_BACKENDS = ACCOUNT_BACKENDS
    Account.objects.create(name="ops")
    browser = Client()
    browser.post("/login/", {"username": "ops", "password": "account secret"})
    sign_in(browser)
    assert user_of(browser.get("/peek/")) == "alice"
    assert row_of(browser).user_id == alice.pk


def test_sign_in_of_other_model_over_user_session_records_switch(
    alice: User, settings: Any
) -> None:
    settings.AUTHENTICATION_BACKENDS = ACCOUNT_BACKENDS
    Account.objects.create(pk=alice.pk, name="ops")  # alice's id, another model
    browser = Client()
    sign_in(browser)
    first = row_of(browser)
    browser.post("/login/", {"username": "ops", "password": "account secret"})
    assert user_of(browser.get("/peek/")) == "ops"
    [logout] = events(Kind.LOGOUT)
    assert (logout.session_id, logout.user, logout.reason) == (
        first.pk,
        alice,
        "user_switched",
    )
