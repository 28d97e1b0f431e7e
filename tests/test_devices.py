"""Devices: the device cookie, reuse per user, user-agent parsing, new-device
notice, and revoking a device, on both stores."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import django
import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib.auth.models import User
from django.core import mail
from django.db import connection
from django.forms.models import model_to_dict
from django.test import AsyncClient, Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import formats, timezone

from django_sessionkit import devices
from django_sessionkit.backends import cache_access, cache_entry
from django_sessionkit.devices import new_token, parse_user_agent
from django_sessionkit.events import Kind
from django_sessionkit.keys import hash_key
from django_sessionkit.models import USER_AGENT_MAX_LENGTH, Device, Session
from django_sessionkit.revocation import arevoke_device, revoke_device
from django_sessionkit.signals import device_added
from tests.helpers import (
    CHROME,
    FIREFOX,
    IPHONE,
    PASSWORD,
    captured,
    events,
    user_of,
)
from tests.servers import free_port

pytestmark = [
    pytest.mark.django_db,
    # Django 6.1 warns that a site without MAILERS will have no mailer in
    # Django 2028; that is the site's setting, and a MAILERS here would fail
    # Django's deploy check (mail.E001) in tests/test_checks.py.
    pytest.mark.filterwarnings("ignore:Django 2028 will not have a default mailer"),
]

DEVICE_COOKIE = "sessionkit_device"
IPAD = (
    "Mozilla/5.0 (iPad; CPU OS 16_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/16.0 Mobile/15E148 Safari/604.1"
)
GOOGLEBOT = "Googlebot/2.1 (+http://www.google.com/bot.html)"

TWINS = ["sync", "async"]
REVOKE_DEVICE: list[Callable[..., int]] = [
    revoke_device,
    async_to_sync(arevoke_device),
]


def sign_in(
    client: Client,
    username: str = "alice",
    user_agent: str = CHROME,
    path: str = "/login/",
) -> Any:
    response = client.post(
        path,
        {"username": username, "password": PASSWORD},
        headers={"user-agent": user_agent},
    )
    assert response.status_code == 200, response.content
    return response


def device_token(client: Client | AsyncClient) -> str:
    return client.cookies[DEVICE_COOKIE].value


def sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def session_of(user: User) -> Session:
    return Session.objects.get(user=user)


# -- The device cookie ----------------------------------------------------------


@pytest.mark.parametrize("path", ["/login/", "/alogin/"])
def test_sign_in_sets_device_cookie_and_stores_only_its_hash(
    alice: User, path: str
) -> None:
    client = Client()
    response = sign_in(client, path=path)
    morsel = response.cookies[DEVICE_COOKIE]
    token = morsel.value
    assert len(token) >= 43
    assert morsel["httponly"] is True
    assert morsel["max-age"] == 365 * 24 * 3600
    assert morsel["samesite"] == settings.SESSION_COOKIE_SAMESITE
    assert not morsel["secure"]
    assert morsel["path"] == settings.SESSION_COOKIE_PATH
    device = Device.objects.get()
    assert device.user == alice
    assert device.token_hash == sha256(token)
    assert token not in str(model_to_dict(device).values())
    assert session_of(alice).device_id == device.pk


@override_settings(SESSION_COOKIE_SECURE=True, SESSION_COOKIE_SAMESITE="Strict")
def test_sign_in_device_cookie_follows_session_cookie_settings(alice: User) -> None:
    morsel = sign_in(Client()).cookies[DEVICE_COOKIE]
    assert morsel["secure"] is True
    assert morsel["samesite"] == "Strict"
    assert morsel["httponly"] is True


@override_settings(
    SESSIONKIT_DEVICE_COOKIE_NAME="dev", SESSIONKIT_DEVICE_COOKIE_AGE=None
)
def test_sign_in_device_cookie_name_and_age_settings(alice: User) -> None:
    response = sign_in(Client())
    assert DEVICE_COOKIE not in response.cookies
    morsel = response.cookies["dev"]
    assert Device.objects.get().token_hash == sha256(morsel.value)
    # None: a browser-session cookie.
    assert morsel["max-age"] == ""
    assert morsel["expires"] == ""


async def test_sign_in_async_stack_sets_device_cookie(alice: User) -> None:
    client = AsyncClient()
    response = await client.post(
        "/alogin/",
        {"username": "alice", "password": PASSWORD},
        headers={"user-agent": CHROME},
    )
    assert response.status_code == 200
    token = response.cookies[DEVICE_COOKIE].value
    assert response.cookies[DEVICE_COOKIE]["httponly"] is True
    device = await Device.objects.aget()
    assert device.token_hash == sha256(token)
    assert device.browser == "Chrome 120.0.0"
    session = await Session.objects.aget()
    assert session.device_id == device.pk


def test_ordinary_request_sets_no_device_cookie(alice: User) -> None:
    client = Client()
    sign_in(client)
    response = client.get("/peek/")
    assert user_of(response) == "alice"
    assert DEVICE_COOKIE not in response.cookies


# -- Which device a sign-in uses -------------------------------------------------


@pytest.mark.parametrize("path", ["/login/", "/alogin/"])
def test_sign_in_again_same_user_reuses_device(
    alice: User, engine: str, path: str
) -> None:
    client = Client()
    sign_in(client, path=path)
    token = device_token(client)
    first = Device.objects.get()
    client.post("/logout/")
    assert user_of(client.get("/peek/")) == ""
    response = sign_in(client, path=path)
    # The cookie is refreshed with the same token.
    assert response.cookies[DEVICE_COOKIE].value == token
    assert list(Device.objects.all()) == [first]
    assert session_of(alice).device_id == first.pk


def test_sign_in_same_user_again_without_logout_keeps_device(alice: User) -> None:
    client = Client()
    sign_in(client)
    sign_in(client)
    assert Device.objects.count() == 1
    assert session_of(alice).device_id == Device.objects.get().pk


def test_sign_in_with_other_users_device_cookie_creates_new_device(
    alice: User, bob: User, engine: str
) -> None:
    client = Client()
    sign_in(client)
    alices_token = device_token(client)
    alices = Device.objects.get(user=alice)
    client.post("/logout/")
    sign_in(client, "bob")
    bobs = Device.objects.get(user=bob)
    assert bobs.pk != alices.pk
    assert device_token(client) != alices_token
    assert bobs.token_hash == sha256(device_token(client))
    assert session_of(bob).device_id == bobs.pk
    alices.refresh_from_db()
    assert alices.token_hash == sha256(alices_token)


@pytest.mark.parametrize(
    "forge",
    [
        lambda token: "not-a-token",
        lambda token: new_token(),
        lambda token: ("A" if token[0] != "A" else "B") + token[1:],
        lambda token: token + "x",
        lambda token: "",
    ],
    ids=["garbage", "unknown", "tampered", "too-long", "empty"],
)
def test_sign_in_with_forged_device_cookie_creates_new_device(
    alice: User, forge: Callable[[str], str]
) -> None:
    first = Client()
    sign_in(first)
    other = Client()
    other.cookies[DEVICE_COOKIE] = forge(device_token(first))
    sign_in(other)
    assert Device.objects.count() == 2
    assert device_token(other) != device_token(first)
    assert (
        Session.objects.get(device__token_hash=sha256(device_token(other))).user
        == alice
    )


def test_copied_device_cookie_same_user_joins_device(alice: User) -> None:
    # What a second sign-in in the same browser looks like to the server.
    first = Client()
    sign_in(first)
    second = Client()
    second.cookies[DEVICE_COOKIE] = device_token(first)
    sign_in(second)
    device = Device.objects.get()
    assert device.sessions.count() == 2


# -- Nothing for anonymous visitors, bots and failed sign-ins --------------------


@pytest.mark.parametrize("user_agent", [CHROME, GOOGLEBOT])
def test_anonymous_requests_create_no_device(user_agent: str) -> None:
    client = Client(headers={"user-agent": user_agent})
    for path in ("/put/?k=v", "/peek/", "/nothing/", "/put/?k=w"):
        response = client.get(path)
        assert DEVICE_COOKIE not in response.cookies
    assert Session.objects.count() == 1
    assert not Device.objects.exists()


def test_failed_sign_in_creates_no_device(alice: User) -> None:
    client = Client()
    for path in ("/login/", "/alogin/"):
        response = client.post(path, {"username": "alice", "password": "wrong"})
        assert response.status_code == 403
        assert DEVICE_COOKIE not in response.cookies
    assert not Device.objects.exists()


# -- User agents ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("user_agent", "expected"),
    [
        (CHROME, ("Chrome 120.0.0", "Windows 10", "", "desktop")),
        (FIREFOX, ("Firefox 121.0", "Linux", "", "desktop")),
        (IPHONE, ("Mobile Safari 17.1", "iOS 17.1", "iPhone", "mobile")),
        (IPAD, ("Mobile Safari 16.0", "iOS 16.0", "iPad", "tablet")),
        (GOOGLEBOT, ("Googlebot 2.1", "", "Spider", "bot")),
    ],
    ids=["chrome", "firefox", "iphone", "ipad", "googlebot"],
)
def test_parse_user_agent_known(user_agent: str, expected: tuple[str, ...]) -> None:
    parsed = parse_user_agent(user_agent)
    found = (parsed["browser"], parsed["os"], parsed["device_family"], parsed["kind"])
    assert found == expected


@pytest.mark.parametrize(
    "user_agent",
    ["", "garbage", "\x00\x1b[31m\x85", "(((((((", "A" * 10240, "Mozilla/" * 1280],
    ids=["empty", "garbage", "controls", "brackets", "10k-letters", "10k-mozilla"],
)
def test_parse_user_agent_garbage_unknown(user_agent: str) -> None:
    parsed = parse_user_agent(user_agent)
    assert parsed == {"browser": "", "os": "", "device_family": "", "kind": "other"}
    device = Device(**parsed)
    assert (device.browser_label, device.os_label, device.device_family_label) == (
        "Unknown",
        "Unknown",
        "Unknown",
    )


def test_parse_user_agent_parses_only_the_stored_prefix() -> None:
    # A real user agent padded to 10 KB is read within its first 512 chars.
    parsed = parse_user_agent(CHROME + " " + "x" * 10240)
    assert parsed["browser"] == "Chrome 120.0.0"


def test_sign_in_with_10k_user_agent_stored_truncated(alice: User) -> None:
    client = Client()
    huge = "Z" * 10240
    sign_in(client, user_agent=huge)
    assert user_of(client.get("/peek/")) == "alice"
    device = Device.objects.get()
    assert device.user_agent == "Z" * USER_AGENT_MAX_LENGTH
    assert (device.browser, device.os, device.kind) == ("", "", "other")
    assert device.browser_label == "Unknown"


def test_user_agent_not_parsed_on_ordinary_requests(alice: User) -> None:
    client = Client()
    sign_in(client, user_agent=CHROME)
    before = model_to_dict(Device.objects.get())
    with CaptureQueriesContext(connection) as queries:
        for _ in range(3):
            response = client.get("/peek/", headers={"user-agent": FIREFOX})
            assert user_of(response) == "alice"
    table = Device._meta.db_table
    assert not [q for q in queries.captured_queries if table in q["sql"]]
    assert model_to_dict(Device.objects.get()) == before


def test_sign_in_same_user_agent_not_parsed_again(alice: User) -> None:
    client = Client()
    sign_in(client, user_agent=CHROME)
    # A marker a new parse would overwrite.
    Device.objects.update(browser="marker", kind="other")
    client.post("/logout/")
    sign_in(client, user_agent=CHROME)
    device = Device.objects.get()
    assert (device.browser, device.kind) == ("marker", "other")


def test_sign_in_changed_user_agent_parsed_again(alice: User) -> None:
    client = Client()
    sign_in(client, user_agent=CHROME)
    client.post("/logout/")
    sign_in(client, user_agent=IPHONE)
    device = Device.objects.get()
    assert device.user_agent == IPHONE
    assert (device.browser, device.os, device.device_family, device.kind) == (
        "Mobile Safari 17.1",
        "iOS 17.1",
        "iPhone",
        "mobile",
    )


@override_settings(SESSIONKIT_STORE_USER_AGENT=False)
def test_sign_in_store_user_agent_off_stores_nothing_of_it(alice: User) -> None:
    sign_in(Client(), user_agent=CHROME)
    device = Device.objects.get()
    assert (device.user_agent, device.browser, device.os) == ("", "", "")


# -- New device: signal, event, email --------------------------------------------


@pytest.mark.parametrize("path", ["/login/", "/alogin/"])
def test_new_device_sends_signal_and_writes_event(alice: User, path: str) -> None:
    client = Client()
    with captured(device_added) as received:
        sign_in(client, path=path)
    device = Device.objects.get()
    assert len(received) == 1
    assert received[0]["device"] == device
    assert received[0]["user"] == alice
    assert received[0]["request"].path == path
    session = session_of(alice)
    [event] = events(Kind.NEW_DEVICE)
    assert (event.session_id, event.user, event.device, event.ip) == (
        session.pk,
        alice,
        device,
        "127.0.0.1",
    )
    [login] = events(Kind.LOGIN)
    assert login.device == device
    client.post("/logout/")
    with captured(device_added) as again:
        sign_in(client, path=path)
    assert again == []
    assert len(events(Kind.NEW_DEVICE)) == 1
    assert len(events(Kind.LOGIN)) == 2


def test_new_device_no_email_by_default(alice: User) -> None:
    sign_in(Client())
    assert mail.outbox == []


@override_settings(SESSIONKIT_NOTIFY_NEW_DEVICE=True)
def test_new_device_email_with_setting(alice: User) -> None:
    client = Client()
    sign_in(client, user_agent=CHROME)
    [message] = mail.outbox
    assert message.subject == "New sign-in to your account"
    assert message.to == ["alice@example.com"]
    device = Device.objects.get()
    assert "Chrome 120.0.0" in message.body
    assert "Windows 10" in message.body
    assert "127.0.0.1" in message.body
    # In the language's own format (DATETIME_FORMAT), with the time zone.
    when = timezone.localtime(device.created_at)
    assert f"{formats.date_format(when, 'DATETIME_FORMAT')} ({when:%Z})" in message.body
    assert device_token(client) not in message.body
    # The same device again: no email.
    client.post("/logout/")
    sign_in(client)
    assert len(mail.outbox) == 1


@override_settings(SESSIONKIT_NOTIFY_NEW_DEVICE=True, SESSIONKIT_STORE_IP="none")
def test_new_device_email_without_stored_ip(alice: User) -> None:
    sign_in(Client(), user_agent="garbage")
    [message] = mail.outbox
    assert "127.0.0.1" not in message.body
    assert "not stored" in message.body
    assert "an unrecognised browser" in message.body


# User agents whose sender chose what the parser reports: the first is the
# issue's; ua-parser copies the text before "Bot" into the browser family,
# and an Android model name into the device family.
CRAFTED = [
    "Mozilla/5.0 (Windows NT 10.0) This sign-in was our security team "
    "- no action needed/1.0",
    "Mozilla/5.0 (Windows NT 10.0) This sign-in was our security team "
    "- no action needed Bot/1.0",
    "Mozilla/5.0 (compatible; Our-security-team-no-action-needed-bot/1.0)",
    "Mozilla/5.0 (Linux; U; Android 4.0; This sign-in was our security team "
    "- no action needed Build/X) AppleWebKit/534.30 (KHTML, like Gecko) "
    "Version/4.0 Mobile Safari/534.30",
]


@override_settings(SESSIONKIT_NOTIFY_NEW_DEVICE=True)
@pytest.mark.parametrize("user_agent", CRAFTED, ids=["issue", "bot", "bot2", "model"])
def test_new_device_email_crafted_user_agent_repeats_none_of_it(
    alice: User, user_agent: str
) -> None:
    sign_in(Client(), user_agent=user_agent)
    [message] = mail.outbox
    text = f"{message.subject}\n{message.body}".lower()
    for alternative in getattr(message, "alternatives", []):
        text += str(alternative[0]).lower()
    assert "security" not in text
    assert "action" not in text
    assert "new device" in text


@override_settings(SESSIONKIT_NOTIFY_NEW_DEVICE=True)
def test_new_device_email_unrecognised_browser_says_so(alice: User) -> None:
    sign_in(Client(), user_agent=CRAFTED[1])
    [message] = mail.outbox
    assert "an unrecognised browser on Windows 10." in message.body
    # What the device row holds is the parser's, shown on the sessions page.
    assert "security team" in Device.objects.get().browser


EDGE = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.0.0"
)
MAC_SAFARI = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.1 Safari/605.1.15"
)
SAMSUNG = (
    "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like "
    "Gecko) SamsungBrowser/23.0 Chrome/115.0.0.0 Mobile Safari/537.36"
)


@override_settings(SESSIONKIT_NOTIFY_NEW_DEVICE=True)
@pytest.mark.parametrize(
    ("user_agent", "expected"),
    [
        (CHROME, "Chrome 120.0.0 on Windows 10"),
        (FIREFOX, "Firefox 121.0 on Linux"),
        (IPHONE, "Mobile Safari 17.1 on iOS 17.1"),
        (IPAD, "Mobile Safari 16.0 on iOS 16.0"),
        (EDGE, "Edge 120.0.0 on Windows 10"),
        (MAC_SAFARI, "Safari 17.1 on Mac OS X 10.15.7"),
        (SAMSUNG, "Samsung Internet 23.0 on Android 14"),
        ("garbage", "an unrecognised browser on an unrecognised operating system"),
    ],
    ids=["chrome", "firefox", "iphone", "ipad", "edge", "safari", "samsung", "none"],
)
def test_new_device_email_names_recognised_browsers(
    alice: User, user_agent: str, expected: str
) -> None:
    sign_in(Client(), user_agent=user_agent)
    [message] = mail.outbox
    assert f"from a new device: {expected}." in message.body


@override_settings(SESSIONKIT_NOTIFY_NEW_DEVICE=True)
def test_new_device_email_user_without_address_sends_nothing() -> None:
    User.objects.create_user("carol", "", PASSWORD)
    sign_in(Client(), "carol")
    assert Device.objects.count() == 1
    assert mail.outbox == []


def test_new_device_email_failure_does_not_stop_sign_in(
    alice: User, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # An SMTP server that refuses connections: nothing listens on the port.
    # Django 6.1 reads MAILERS; Django 5.2 reads the EMAIL_* settings.
    settings.SESSIONKIT_NOTIFY_NEW_DEVICE = True
    port = free_port()
    smtp = "django.core.mail.backends.smtp.EmailBackend"
    if django.VERSION >= (6, 1):
        settings.MAILERS = {
            "default": {
                "BACKEND": smtp,
                "OPTIONS": {"host": "127.0.0.1", "port": port, "timeout": 1},
            }
        }
    else:
        settings.EMAIL_BACKEND = smtp
        settings.EMAIL_HOST = "127.0.0.1"
        settings.EMAIL_PORT = port
        settings.EMAIL_TIMEOUT = 1
    client = Client()
    sign_in(client)
    assert mail.outbox == []
    assert user_of(client.get("/peek/")) == "alice"
    assert "Could not send the new-device email" in caplog.text


# -- Revoking a device -------------------------------------------------------------


@pytest.mark.parametrize("revoke", REVOKE_DEVICE, ids=TWINS)
def test_revoke_device_ends_its_sessions_and_forgets_token(
    alice: User, engine: str, revoke: Callable[..., int]
) -> None:
    laptop, laptop_again, phone = Client(), Client(), Client()
    sign_in(laptop)
    laptop_again.cookies[DEVICE_COOKIE] = device_token(laptop)
    sign_in(laptop_again)
    sign_in(phone, user_agent=IPHONE)
    for client in (laptop, laptop_again, phone):
        assert user_of(client.get("/peek/")) == "alice"  # cached, if cached_db
    device = Device.objects.get(token_hash=sha256(device_token(laptop)))
    assert revoke(device, reason="user", by=alice) == 2
    assert user_of(laptop.get("/peek/")) == ""
    assert user_of(laptop_again.get("/peek/")) == ""
    assert user_of(phone.get("/peek/")) == "alice"
    device.refresh_from_db()
    assert device.token_hash is None
    revoked = events(Kind.REVOKE)
    assert [(e.device_id, e.reason, e.actor) for e in revoked] == [
        (device.pk, "user", alice)
    ] * 2
    # Its cookie recognises nothing now: the next sign-in is a new device.
    sign_in(laptop)
    assert Device.objects.count() == 3
    new = Device.objects.get(token_hash=sha256(device_token(laptop)))
    assert new.pk != device.pk
    assert new.sessions.count() == 1
    assert not device.sessions.exists()


@pytest.mark.parametrize("revoke", REVOKE_DEVICE, ids=TWINS)
def test_revoke_device_by_id_without_sessions(
    alice: User, revoke: Callable[..., int]
) -> None:
    client = Client()
    sign_in(client)
    device = Device.objects.get()
    client.post("/logout/")
    assert revoke(device.pk, reason="user") == 0
    device.refresh_from_db()
    assert device.token_hash is None
    assert events(Kind.REVOKE) == []


async def test_arevoke_device_from_async_stack(alice: User, engine: str) -> None:
    client = AsyncClient()
    response = await client.post(
        "/alogin/", {"username": "alice", "password": PASSWORD}
    )
    assert response.status_code == 200
    assert user_of(await client.get("/peek/")) == "alice"
    device = await Device.objects.aget()
    assert await arevoke_device(device, reason="user") == 1
    assert device.token_hash is None
    assert user_of(await client.get("/peek/")) == ""
    assert not await Session.objects.aexists()
    assert (await Device.objects.aget()).token_hash is None


def test_device_str_and_kind_labels_translated(alice: User) -> None:
    device = Device(user=alice, pk=7)
    assert str(device) == "Device 7"
    device.name = "Work laptop"
    assert str(device) == "Work laptop"
    assert Device.Kind.MOBILE.label == "mobile"
    assert devices.is_well_formed(new_token())
    assert not devices.is_well_formed(None)


def test_cached_entry_carries_device(alice: User, cached_engine: str) -> None:
    client = Client()
    sign_in(client)
    key = client.cookies[settings.SESSION_COOKIE_NAME].value
    entry = cache_access.session_cache().get(cache_entry.entry_key(hash_key(key)))
    unpacked = cache_entry.unpack(entry, "default")
    assert unpacked is not None
    assert unpacked[0].device_id == Device.objects.get().pk
