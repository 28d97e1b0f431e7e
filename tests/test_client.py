from __future__ import annotations

import ipaddress
from datetime import datetime
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, User
from django.http import HttpRequest, HttpResponse
from django.test import AsyncClient, Client, RequestFactory, override_settings
from django.utils import timezone

from django_sessionkit.client import (
    client_ip,
    header_meta_key,
    ip_for_storage,
    user_agent_for_storage,
)
from django_sessionkit.keys import hash_key
from django_sessionkit.models import USER_AGENT_MAX_LENGTH, Session
from tests.helpers import PASSWORD

CLIENT = "203.0.113.9"
PROXY = "10.0.0.1"
SPOOFED = "192.0.2.66"
BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0"


def ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(value)


def request_from(remote_addr: str = CLIENT, **meta: Any) -> HttpRequest:
    return RequestFactory().get("/", REMOTE_ADDR=remote_addr, **meta)


# -- client_ip -------------------------------------------------------------------


def test_header_meta_key_http_prefixed_upper_snake() -> None:
    assert header_meta_key("X-Forwarded-For") == "HTTP_X_FORWARDED_FOR"
    assert header_meta_key(" x-real-ip ") == "HTTP_X_REAL_IP"


def test_client_ip_remote_addr_by_default() -> None:
    assert client_ip(request_from(CLIENT)) == ip(CLIENT)


def test_client_ip_remote_addr_ipv6() -> None:
    assert client_ip(request_from("2001:db8::7")) == ip("2001:db8::7")


def test_client_ip_forwarded_header_ignored_without_trusted_proxies() -> None:
    request = request_from(CLIENT, HTTP_X_FORWARDED_FOR=SPOOFED, HTTP_X_REAL_IP=SPOOFED)
    assert client_ip(request) == ip(CLIENT)


@override_settings(SESSIONKIT_TRUSTED_PROXY_COUNT=1)
def test_client_ip_one_proxy_rightmost_entry() -> None:
    request = request_from(PROXY, HTTP_X_FORWARDED_FOR=f"{SPOOFED}, {CLIENT}")
    assert client_ip(request) == ip(CLIENT)


@override_settings(SESSIONKIT_TRUSTED_PROXY_COUNT=2)
def test_client_ip_two_proxies_second_from_right() -> None:
    request = request_from(PROXY, HTTP_X_FORWARDED_FOR=f"{SPOOFED}, {CLIENT}, 10.0.0.2")
    assert client_ip(request) == ip(CLIENT)


@override_settings(SESSIONKIT_TRUSTED_PROXY_COUNT=2)
def test_client_ip_two_proxies_exact_length_header() -> None:
    request = request_from(PROXY, HTTP_X_FORWARDED_FOR=f"{CLIENT},10.0.0.2")
    assert client_ip(request) == ip(CLIENT)


@override_settings(SESSIONKIT_TRUSTED_PROXY_COUNT=2)
def test_client_ip_header_shorter_than_proxy_count_uses_remote_addr() -> None:
    request = request_from(PROXY, HTTP_X_FORWARDED_FOR=CLIENT)
    assert client_ip(request) == ip(PROXY)


@override_settings(SESSIONKIT_TRUSTED_PROXY_COUNT=1)
def test_client_ip_header_missing_uses_remote_addr() -> None:
    assert client_ip(request_from(PROXY)) == ip(PROXY)


@override_settings(SESSIONKIT_TRUSTED_PROXY_COUNT=1)
def test_client_ip_header_blank_entries_not_counted() -> None:
    request = request_from(PROXY, HTTP_X_FORWARDED_FOR=f"{CLIENT}, , ")
    assert client_ip(request) == ip(CLIENT)


@pytest.mark.parametrize("header", ["X-Real-IP", "x-real-ip"])
def test_client_ip_custom_header(header: str) -> None:
    request = request_from(PROXY, HTTP_X_REAL_IP=CLIENT, HTTP_X_FORWARDED_FOR=SPOOFED)
    with override_settings(
        SESSIONKIT_TRUSTED_PROXY_COUNT=1, SESSIONKIT_CLIENT_IP_HEADER=header
    ):
        assert client_ip(request) == ip(CLIENT)


@override_settings(
    SESSIONKIT_TRUSTED_PROXY_COUNT=1, SESSIONKIT_CLIENT_IP_HEADER="X-Real-IP"
)
def test_client_ip_custom_header_missing_ignores_x_forwarded_for() -> None:
    request = request_from(PROXY, HTTP_X_FORWARDED_FOR=SPOOFED)
    assert client_ip(request) == ip(PROXY)


@pytest.mark.parametrize(
    "value", ["", "unknown", "1.2.3", "256.1.1.1", "01.2.3.4", "not an ip", "::g"]
)
def test_client_ip_garbage_remote_addr_none(value: str) -> None:
    assert client_ip(request_from(value)) is None


def test_client_ip_remote_addr_missing_none() -> None:
    request = request_from()
    del request.META["REMOTE_ADDR"]
    assert client_ip(request) is None


@override_settings(SESSIONKIT_TRUSTED_PROXY_COUNT=1)
@pytest.mark.parametrize("value", ["unknown", "_hidden", "1.2.3"])
def test_client_ip_garbage_trusted_entry_none(value: str) -> None:
    request = request_from(PROXY, HTTP_X_FORWARDED_FOR=f"{CLIENT}, {value}")
    assert client_ip(request) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("203.0.113.9:1234", "203.0.113.9"),
        ("fe80::1%eth0", "fe80::1"),
        ("[fe80::1%eth0]:8443", "fe80::1"),
        ("::ffff:203.0.113.9", "203.0.113.9"),
        ("[::ffff:203.0.113.9]:80", "203.0.113.9"),
        (" 203.0.113.9 ", "203.0.113.9"),
    ],
)
def test_client_ip_proxy_formats_parsed(value: str, expected: str) -> None:
    request = request_from(PROXY, HTTP_X_FORWARDED_FOR=f"{SPOOFED},{value}")
    with override_settings(SESSIONKIT_TRUSTED_PROXY_COUNT=1):
        found = client_ip(request)
    assert found == ip(expected)
    assert str(found) == expected


def test_client_ip_ipv4_mapped_remote_addr_is_ipv4() -> None:
    found = client_ip(request_from("::ffff:203.0.113.9"))
    assert isinstance(found, ipaddress.IPv4Address)
    assert found == ip(CLIENT)


# -- ip_for_storage --------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "address", "stored"),
    [
        ("full", "203.0.113.9", "203.0.113.9"),
        ("full", "2001:db8:abcd:1234:5678::1", "2001:db8:abcd:1234:5678::1"),
        ("truncated", "203.0.113.9", "203.0.113.0"),
        ("truncated", "198.51.100.255", "198.51.100.0"),
        ("truncated", "2001:db8:abcd:1234:5678::1", "2001:db8:abcd::"),
        ("truncated", "2001:db8:ab:ffff::1", "2001:db8:ab::"),
        ("none", "203.0.113.9", None),
        ("none", "2001:db8:abcd:1234:5678::1", None),
    ],
)
def test_ip_for_storage_per_mode(mode: str, address: str, stored: str | None) -> None:
    with override_settings(SESSIONKIT_STORE_IP=mode):
        assert ip_for_storage(ip(address)) == stored


def test_ip_for_storage_full_by_default() -> None:
    assert ip_for_storage(ip("2001:db8::7")) == "2001:db8::7"


@pytest.mark.parametrize("mode", ["full", "truncated", "none"])
def test_ip_for_storage_no_address_none(mode: str) -> None:
    with override_settings(SESSIONKIT_STORE_IP=mode):
        assert ip_for_storage(None) is None


# -- user_agent_for_storage ------------------------------------------------------


def test_user_agent_for_storage_kept_by_default() -> None:
    assert user_agent_for_storage(request_from(HTTP_USER_AGENT=BROWSER)) == BROWSER


@override_settings(SESSIONKIT_STORE_USER_AGENT=False)
def test_user_agent_for_storage_disabled_empty() -> None:
    assert user_agent_for_storage(request_from(HTTP_USER_AGENT=BROWSER)) == ""


def test_user_agent_for_storage_missing_empty() -> None:
    assert user_agent_for_storage(request_from()) == ""


def test_user_agent_for_storage_long_truncated() -> None:
    agent = ("Mozilla/5.0 " * 1000)[:10_240]
    stored = user_agent_for_storage(request_from(HTTP_USER_AGENT=agent))
    assert USER_AGENT_MAX_LENGTH == 512
    assert stored == agent[:512]


def test_user_agent_for_storage_control_characters_removed() -> None:
    agent = "Mozilla/5.0\x00 (X11;\r\n\tLinux)\x1b[31m\x7f\x1f end"
    stored = user_agent_for_storage(request_from(HTTP_USER_AGENT=agent))
    assert stored == "Mozilla/5.0 (X11;Linux)[31m end"


def test_user_agent_for_storage_c1_control_characters_removed() -> None:
    # WSGI decodes header bytes as Latin-1, so raw bytes 0x80-0x9f arrive as
    # the C1 controls, e.g. NEL (a line break) and CSI (a terminal escape).
    agent = "Mozilla/5.0\x85forged line\x9b31m\x80\x9f end"
    stored = user_agent_for_storage(request_from(HTTP_USER_AGENT=agent))
    assert stored == "Mozilla/5.0forged line31m end"


def test_user_agent_for_storage_truncated_after_cleaning() -> None:
    agent = "\x00" * 100 + "A" * 600
    stored = user_agent_for_storage(request_from(HTTP_USER_AGENT=agent))
    assert stored == "A" * 512


def test_user_agent_for_storage_non_ascii_kept() -> None:
    agent = "Mozilla/5.0 (Ünïcødé; 浏览器) ✓"
    assert user_agent_for_storage(request_from(HTTP_USER_AGENT=agent)) == agent


# -- Sign-in through the real store ----------------------------------------------


def login_data(user: AbstractBaseUser) -> dict[str, str]:
    return {"username": user.get_username(), "password": PASSWORD}


def sign_in(client: Client, user: AbstractBaseUser, **meta: Any) -> HttpResponse:
    response = client.post("/login/", login_data(user), **meta)
    assert response.status_code == 200, response.content
    return response


async def asign_in(
    client: AsyncClient, user: AbstractBaseUser, headers: dict[str, str]
) -> HttpResponse:
    response = await client.post("/alogin/", login_data(user), headers=headers)
    assert response.status_code == 200, response.content
    return response


def session_row(client: Client) -> Session:
    key = client.cookies[settings.SESSION_COOKIE_NAME].value
    assert Session.objects.count() == 1
    return Session.objects.get(key_hash=hash_key(key))


async def asession_row(client: AsyncClient) -> Session:
    key = client.cookies[settings.SESSION_COOKIE_NAME].value
    assert await Session.objects.acount() == 1
    return await Session.objects.aget(key_hash=hash_key(key))


def assert_signed_in(row: Session, user: AbstractBaseUser, before: datetime) -> None:
    assert row.user_id == user.pk
    assert row.authenticated_at is not None
    assert before <= row.authenticated_at <= timezone.now()


@pytest.mark.django_db
def test_sign_in_stores_full_ip_and_user_agent(client: Client, alice: User) -> None:
    before = timezone.now()
    sign_in(client, alice, REMOTE_ADDR=CLIENT, HTTP_USER_AGENT=BROWSER)
    row = session_row(client)
    assert_signed_in(row, alice, before)
    assert row.ip == CLIENT
    assert row.user_agent == BROWSER


@pytest.mark.django_db
def test_sign_in_stores_full_ipv6(client: Client, alice: User) -> None:
    sign_in(client, alice, REMOTE_ADDR="2001:db8:abcd:1234::9", HTTP_USER_AGENT=BROWSER)
    assert session_row(client).ip == "2001:db8:abcd:1234::9"


@pytest.mark.django_db
def test_sign_in_ipv4_mapped_stored_as_ipv4(client: Client, alice: User) -> None:
    sign_in(client, alice, REMOTE_ADDR="::ffff:203.0.113.9", HTTP_USER_AGENT=BROWSER)
    assert session_row(client).ip == CLIENT


@pytest.mark.django_db
@override_settings(SESSIONKIT_STORE_IP="truncated")
@pytest.mark.parametrize(
    ("address", "stored"),
    [("203.0.113.9", "203.0.113.0"), ("2001:db8:abcd:1234::9", "2001:db8:abcd::")],
)
def test_sign_in_truncated_ip(
    client: Client, address: str, stored: str, alice: User
) -> None:
    before = timezone.now()
    sign_in(client, alice, REMOTE_ADDR=address, HTTP_USER_AGENT=BROWSER)
    row = session_row(client)
    assert_signed_in(row, alice, before)
    assert row.ip == stored
    assert row.user_agent == BROWSER


@pytest.mark.django_db
@override_settings(SESSIONKIT_STORE_IP="none")
def test_sign_in_ip_not_stored(client: Client, alice: User) -> None:
    before = timezone.now()
    sign_in(client, alice, REMOTE_ADDR=CLIENT, HTTP_USER_AGENT=BROWSER)
    row = session_row(client)
    assert_signed_in(row, alice, before)
    assert row.ip is None
    assert row.user_agent == BROWSER


@pytest.mark.django_db
@override_settings(SESSIONKIT_STORE_USER_AGENT=False)
def test_sign_in_user_agent_not_stored(client: Client, alice: User) -> None:
    before = timezone.now()
    sign_in(client, alice, REMOTE_ADDR=CLIENT, HTTP_USER_AGENT=BROWSER)
    row = session_row(client)
    assert_signed_in(row, alice, before)
    assert row.ip == CLIENT
    assert row.user_agent == ""


@pytest.mark.django_db
def test_sign_in_spoofed_forwarded_for_ignored_by_default(
    client: Client, alice: User
) -> None:
    sign_in(
        client,
        alice,
        REMOTE_ADDR=CLIENT,
        HTTP_X_FORWARDED_FOR=SPOOFED,
        HTTP_USER_AGENT=BROWSER,
    )
    assert session_row(client).ip == CLIENT


@pytest.mark.django_db
@override_settings(SESSIONKIT_TRUSTED_PROXY_COUNT=1)
def test_sign_in_trusted_proxy_honoured(client: Client, alice: User) -> None:
    sign_in(
        client,
        alice,
        REMOTE_ADDR=PROXY,
        HTTP_X_FORWARDED_FOR=f"{SPOOFED}, {CLIENT}",
        HTTP_USER_AGENT=BROWSER,
    )
    assert session_row(client).ip == CLIENT


@pytest.mark.django_db
def test_sign_in_user_agent_with_nul_stored_clean(client: Client, alice: User) -> None:
    sign_in(
        client,
        alice,
        REMOTE_ADDR=CLIENT,
        HTTP_USER_AGENT="Mozilla/5.0\x00 evil\r\nX-Injected: 1",
    )
    assert session_row(client).user_agent == "Mozilla/5.0 evilX-Injected: 1"


@pytest.mark.django_db
def test_sign_in_long_user_agent_stored_truncated(client: Client, alice: User) -> None:
    agent = "Mozilla/5.0 " + "é" * 10_240
    sign_in(client, alice, REMOTE_ADDR=CLIENT, HTTP_USER_AGENT=agent)
    row = session_row(client)
    assert row.user_agent == agent[:USER_AGENT_MAX_LENGTH]
    assert len(row.user_agent) == USER_AGENT_MAX_LENGTH


@pytest.mark.django_db
def test_sign_in_values_kept_by_later_saves(client: Client, alice: User) -> None:
    sign_in(client, alice, REMOTE_ADDR=CLIENT, HTTP_USER_AGENT=BROWSER)
    signed_in_at = session_row(client).authenticated_at
    response = client.get(
        "/put/?colour=blue", REMOTE_ADDR="198.51.100.1", HTTP_USER_AGENT="curl/8.0"
    )
    assert response.status_code == 200
    row = session_row(client)
    assert row.get_decoded()["colour"] == "blue"
    assert row.ip == CLIENT
    assert row.user_agent == BROWSER
    assert row.authenticated_at == signed_in_at


# -- Async sign-in (alogin) ------------------------------------------------------


@pytest.mark.django_db
async def test_async_sign_in_stores_remote_addr_and_user_agent(
    async_client: AsyncClient, alice: User
) -> None:
    before = timezone.now()
    await asign_in(
        async_client, alice, {"User-Agent": BROWSER, "X-Forwarded-For": SPOOFED}
    )
    row = await asession_row(async_client)
    assert_signed_in(row, alice, before)
    # AsyncClient connects from 127.0.0.1; the forwarded header is not trusted.
    assert row.ip == "127.0.0.1"
    assert row.user_agent == BROWSER


@pytest.mark.django_db
@override_settings(SESSIONKIT_TRUSTED_PROXY_COUNT=1)
async def test_async_sign_in_trusted_proxy_honoured(
    async_client: AsyncClient, alice: User
) -> None:
    before = timezone.now()
    await asign_in(
        async_client,
        alice,
        {"User-Agent": BROWSER, "X-Forwarded-For": f"{SPOOFED}, {CLIENT}"},
    )
    row = await asession_row(async_client)
    assert_signed_in(row, alice, before)
    assert row.ip == CLIENT


@pytest.mark.django_db
@override_settings(SESSIONKIT_TRUSTED_PROXY_COUNT=1, SESSIONKIT_STORE_IP="truncated")
async def test_async_sign_in_truncated_ip(
    async_client: AsyncClient, alice: User
) -> None:
    await asign_in(
        async_client,
        alice,
        {"User-Agent": BROWSER, "X-Forwarded-For": "2001:db8:abcd:1234::9"},
    )
    assert (await asession_row(async_client)).ip == "2001:db8:abcd::"


@pytest.mark.django_db
@override_settings(SESSIONKIT_STORE_IP="none", SESSIONKIT_STORE_USER_AGENT=False)
async def test_async_sign_in_nothing_stored(
    async_client: AsyncClient, alice: User
) -> None:
    before = timezone.now()
    await asign_in(async_client, alice, {"User-Agent": BROWSER})
    row = await asession_row(async_client)
    assert_signed_in(row, alice, before)
    assert row.ip is None
    assert row.user_agent == ""


@pytest.mark.django_db
async def test_async_sign_in_user_agent_with_nul_stored_clean(
    async_client: AsyncClient, alice: User
) -> None:
    await asign_in(async_client, alice, {"User-Agent": "Mozilla/5.0\x00 evil\x1b"})
    assert (await asession_row(async_client)).user_agent == "Mozilla/5.0 evil"


@pytest.mark.django_db
async def test_async_sign_in_long_user_agent_stored_truncated(
    async_client: AsyncClient, alice: User
) -> None:
    agent = "Mozilla/5.0 " + "x" * 10_240
    await asign_in(async_client, alice, {"User-Agent": agent})
    assert (await asession_row(async_client)).user_agent == agent[
        :USER_AGENT_MAX_LENGTH
    ]
