"""What the tests of the sessions page share: signed-in browsers, the page's
URLs, and readers of its HTML and JSON.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from html.parser import HTMLParser
from typing import Any

from django.contrib.auth.models import User
from django.http import HttpResponseBase
from django.test import Client
from django.utils import timezone

from django_sessionkit.events import Kind
from django_sessionkit.keys import hash_key
from django_sessionkit.models import Device, Session, SessionEvent
from tests.helpers import CHROME, COOKIE, FIREFOX, PASSWORD, user_of

DEVICE_COOKIE = "sessionkit_device"
PAGE = "/sessions/"
EXPORT = "/sessions/export/"
OTHERS = "/sessions/sign-out-others/"
REAUTH_URL = "/sessions/reauthenticate/"
LOGIN_URL = "/accounts/login/"
JSON = {"Accept": "application/json"}
STALE = timedelta(minutes=11)

#: The addresses the location resolver of these tests was asked about.
LOOKUPS: list[str] = []


def locate(ip: str) -> str | None:
    """The location resolver of these tests."""
    LOOKUPS.append(ip)
    return "Testville" if ip == "127.0.0.1" else f"Elsewhere {ip}"


def browser(username: str = "alice", user_agent: str = CHROME, **kwargs: Any) -> Client:
    """A new browser, signed in as ``username``."""
    client = Client(**kwargs)
    response = client.post(
        "/login/",
        {"username": username, "password": PASSWORD},
        headers={"user-agent": user_agent},
    )
    assert response.status_code == 200, response.content
    return client


def key_of(client: Client) -> str:
    return str(client.cookies[COOKIE].value)


def row_of(client: Client) -> Session:
    return Session.objects.get(key_hash=hash_key(key_of(client)))


def device_of(client: Client) -> Device:
    device = row_of(client).device
    assert device is not None
    return device


def whoami(client: Client) -> str:
    return user_of(client.get("/peek/"))


def stale(client: Client) -> None:
    """Make the client's sign-in older than ``SESSIONKIT_REAUTH_MAX_AGE``."""
    rows = Session.objects.filter(pk=row_of(client).pk)
    assert rows.update(authenticated_at=timezone.now() - STALE) == 1


def state() -> tuple[Any, ...]:
    """Everything an action could change."""
    return (
        list(Session.objects.order_by("pk").values_list("pk", "key_hash", "user_id")),
        list(Device.objects.order_by("pk").values_list("pk", "name", "token_hash")),
        SessionEvent.objects.filter(kind=Kind.REVOKE).count(),
    )


def listing(client: Client) -> dict[str, Any]:
    response = client.get(PAGE, headers=JSON)
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/json"
    data: dict[str, Any] = response.json()
    return data


def text(response: HttpResponseBase) -> str:
    assert response.status_code == 200, response.content
    return response.content.decode()  # type: ignore[attr-defined]


def session_url(pk: int) -> str:
    return f"/sessions/{pk}/sign-out/"


def device_url(pk: int) -> str:
    return f"/sessions/devices/{pk}/sign-out/"


def rename_url(pk: int) -> str:
    return f"/sessions/devices/{pk}/rename/"


def action_urls(session_pk: int, device_pk: int) -> dict[str, str]:
    return {
        "sign_out_session": session_url(session_pk),
        "sign_out_device": device_url(device_pk),
        "rename_device": rename_url(device_pk),
    }


#: The actions that name a session or a device by its id.
ID_ACTIONS = ["sign_out_session", "sign_out_device", "rename_device"]
ACTIONS = [*ID_ACTIONS, "sign_out_others"]


def url_of(action: str, client: Client) -> str:
    if action == "sign_out_others":
        return OTHERS
    return action_urls(row_of(client).pk, device_of(client).pk)[action]


def parse_iso(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    assert moment.tzinfo is not None
    return moment


class Controls(HTMLParser):
    """The forms, buttons, inputs and labels of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []
        self.buttons: list[dict[str, Any]] = []
        self.inputs: list[dict[str, str | None]] = []
        self.label_for: set[str] = set()
        self._button: dict[str, Any] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "form":
            self.forms.append({"attrs": values, "inputs": []})
        elif tag == "input":
            self.inputs.append(values)
            if self.forms:
                self.forms[-1]["inputs"].append(values)
        elif tag == "label" and values.get("for"):
            self.label_for.add(str(values["for"]))
        elif tag == "button":
            self._button = {"attrs": values, "text": ""}
            self.buttons.append(self._button)

    def handle_endtag(self, tag: str) -> None:
        if tag == "button":
            self._button = None

    def handle_data(self, data: str) -> None:
        if self._button is not None:
            self._button["text"] += data


def controls(html: str) -> Controls:
    parser = Controls()
    parser.feed(html)
    return parser


def many_sessions(user: User, devices: int, unlinked: int = 0) -> set[int]:
    """``devices`` devices of ``user`` with one live session each, and
    ``unlinked`` sessions with no device, in bulk; return the sessions' ids."""
    now = timezone.now()
    made = Device.objects.bulk_create(
        Device(user=user, user_agent=FIREFOX, browser="Firefox 133", os="Linux")
        for _ in range(devices)
    )
    rows = [
        Session(
            key_hash=f"{n:064x}",
            session_data="",
            user=user,
            device=device,
            authenticated_at=now,
            last_seen_at=now - timedelta(seconds=n + 1),
            expire_date=now + timedelta(hours=1),
        )
        for n, device in enumerate([*made, *[None] * unlinked])
    ]
    Session.objects.bulk_create(rows)
    return set(
        Session.objects.filter(key_hash__in=[r.key_hash for r in rows]).values_list(
            "pk", flat=True
        )
    )


def json_sessions(data: dict[str, Any]) -> list[int]:
    ids = [s["id"] for d in data["devices"] for s in d["sessions"]]
    return ids + [s["id"] for s in data["sessions"]]
