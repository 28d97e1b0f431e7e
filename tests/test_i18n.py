"""Translations: the app's pages, email and admin speak the user's language.

Each page is rendered in English and in another language through the real
middleware stack. Every msgid of the app's catalogue that shows in a page's
visible text (text, ``aria-label``, ``title``, ``placeholder``) in English must
be gone from the translated page, except the few words spelled the same in
both languages (listed per language below).
"""

from __future__ import annotations

import gettext
import re
from collections.abc import Iterator
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.test import Client
from django.utils import formats, timezone, translation
from django.utils.text import capfirst

import django_sessionkit
from django_sessionkit.devices import notify_new_device
from django_sessionkit.events import REASONS, reason_label
from django_sessionkit.models import CachePurge, Device, Session, SessionEvent
from tests.helpers import CHROME, FIREFOX, PASSWORD

pytestmark = [
    pytest.mark.django_db,
    # See tests/test_devices.py: Django 6.1's warning about MAILERS.
    pytest.mark.filterwarnings("ignore:Django 2028 will not have a default mailer"),
]

LOCALE = Path(django_sessionkit.__file__).parent / "locale"
LANGUAGES = ("de", "fr", "es")

#: The consent words spelled the same in every language: loanwords and a name.
_CONSENT_SAME = {"Cookies", "Marketing", "API", "Global Privacy Control"}

#: The app's words spelled the same in a language as in English.
SAME: dict[str, set[str]] = {
    "de": {"Browser", "browser", "Name", "Bot", "Tablet"} | _CONSENT_SAME,
    "fr": {"Actions", "session", "sessions", "Session", "Sessions", "mobile"}
    | {"type", "Type", "Session %(id)s", "%(kind)s (session %(id)s)"}
    | {"%(num)d minute"}
    | _CONSENT_SAME,
    "es": {"bot", "Error: %(title)s"} | _CONSENT_SAME,
}

_PLACEHOLDER = re.compile(r"%\(\w+\)[sd]")
_TAG = re.compile(r"<[^>]+>")


def po_entries(language: str) -> list[dict[str, str]]:
    """The entries of a language's ``django.po``: msgctxt, msgid, msgid_plural."""
    text = (LOCALE / language / "LC_MESSAGES" / "django.po").read_text("utf-8")
    entries = []
    for block in text.split("\n\n"):
        entry = {}
        for key in ("msgctxt", "msgid", "msgid_plural"):
            match = re.search(rf'^{key} ((?:".*"\n?)+)', block + "\n", re.MULTILINE)
            if match:
                parts = re.findall(r'"(.*)"', match.group(1))
                entry[key] = "".join(parts).replace('\\"', '"').replace("\\n", "\n")
        if entry.get("msgid"):
            entries.append(entry)
    return entries


def po_msgids(language: str) -> set[str]:
    """The msgids (and msgid_plurals) of a language's ``django.po``."""
    return {
        entry[key]
        for entry in po_entries(language)
        for key in ("msgid", "msgid_plural")
        if key in entry
    }


def fragments(msgid: str) -> Iterator[str]:
    """The runs of words of ``msgid`` between its placeholders and markup."""
    for part in _PLACEHOLDER.split(_TAG.sub(" ", msgid)):
        words = " ".join(part.split()).strip(" .,:;()")
        if len(words) >= 2:
            yield words


class VisibleText(HTMLParser):
    """The text a person sees or hears: text nodes and a few attributes."""

    ATTRIBUTES = ("aria-label", "title", "placeholder", "alt")

    def __init__(self, html: str) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        for name, value in attrs:
            if name in self.ATTRIBUTES and value:
                self.parts.append(value)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)

    @property
    def text(self) -> str:
        return " | ".join(" ".join(part.split()) for part in self.parts)


def english_in(text: str) -> set[str]:
    """The app's English words (from the German catalogue's msgids) in ``text``."""
    shown = set()
    for msgid in po_msgids("de"):
        for words in fragments(msgid):
            for variant in {words, capfirst(words)}:
                if re.search(rf"(?<!\w){re.escape(variant)}(?!\w)", text):
                    shown.add(variant)
    return shown


def assert_translated(english: str, translated: str, language: str) -> None:
    in_english = english_in(english)
    assert len(in_english) >= 3, f"the check sees too little: {in_english}"
    left = english_in(translated) - SAME[language]
    assert not left, f"English left in the {language} page: {sorted(left)}"


def text_of(client: Client, url: str, language: str) -> str:
    with translation.override(language):
        response = client.get(url, headers={"accept-language": language})
    assert response.status_code == 200, response.content
    html: str = response.content.decode()
    assert f'lang="{language}' in html or "<html" not in html
    return VisibleText(html).text


# -- Fixtures and helpers -----------------------------------------------------------


def browser(username: str = "alice", user_agent: str = CHROME) -> Client:
    client = Client()
    response = client.post(
        "/login/",
        {"username": username, "password": PASSWORD},
        headers={"user-agent": user_agent},
    )
    assert response.status_code == 200, response.content
    return client


@pytest.fixture
def devices(alice: User) -> Client:
    """Alice on Chrome (this browser, one device renamed) and on Firefox,
    last active two days ago; returns the Chrome browser."""
    here = browser(user_agent=CHROME)
    browser(user_agent=FIREFOX)
    firefox = Device.objects.get(browser__startswith="Firefox")
    Session.objects.filter(device=firefox).update(
        last_seen_at=timezone.now() - timedelta(days=2, minutes=5)
    )
    return here


# -- The catalogues -----------------------------------------------------------------


@pytest.mark.parametrize("language", LANGUAGES)
def test_catalogue_translates_every_msgid(language: str) -> None:
    path = LOCALE / language / "LC_MESSAGES" / "django.mo"
    with path.open("rb") as mo:
        catalogue = gettext.GNUTranslations(mo)
    entries = po_entries(language)
    assert len(entries) > 100
    for entry in entries:
        msgid = entry["msgid"]
        if "msgid_plural" in entry:
            forms = {
                catalogue.npgettext(
                    entry.get("msgctxt", ""), msgid, entry["msgid_plural"], n
                )
                if "msgctxt" in entry
                else catalogue.ngettext(msgid, entry["msgid_plural"], n)
                for n in (1, 2, 5)
            }
            same = msgid in SAME[language]
            assert same or forms.isdisjoint({msgid, entry["msgid_plural"]}), entry
        else:
            translated = catalogue.gettext(msgid)
            assert translated != msgid or msgid in SAME[language], entry


@pytest.mark.parametrize("language", LANGUAGES)
def test_catalogue_header_marks_review(language: str) -> None:
    text = (LOCALE / language / "LC_MESSAGES" / "django.po").read_text("utf-8")
    assert "native speaker" in text
    assert "Language-Team: LANGUAGE" not in text
    assert f'"Language: {language}\\n"' in text


# -- Pages --------------------------------------------------------------------------


@pytest.mark.parametrize("language", LANGUAGES)
def test_sessions_page_translated(devices: Client, language: str) -> None:
    english = text_of(devices, "/sessions/", "en")
    translated = text_of(devices, "/sessions/", language)
    assert_translated(english, translated, language)


@pytest.mark.parametrize(
    ("language", "ago"),
    [("en", "2 days ago"), ("de", "vor 2 Tagen"), ("fr", "il y a 2"), ("es", "hace 2")],
)
def test_sessions_page_time_ago_word_order(
    devices: Client, language: str, ago: str
) -> None:
    assert ago in text_of(devices, "/sessions/", language)


def test_reauthenticate_page_translated(alice: User) -> None:
    client = browser()
    english = text_of(client, "/sessions/reauthenticate/", "en")
    assert_translated(english, text_of(client, "/sessions/reauthenticate/", "de"), "de")


def test_idle_warning_translated(settings: Any, alice: User) -> None:
    settings.ROOT_URLCONF = "tests.urls_browser"
    settings.STATIC_URL = "/static/"
    settings.SESSIONKIT_IDLE_TIMEOUT = timedelta(minutes=30)
    settings.SESSIONKIT_ABSOLUTE_TIMEOUT = timedelta(hours=8)
    client = browser()
    english = text_of(client, "/tag/", "en")
    assert "Are you still there?" in english
    assert_translated(english, text_of(client, "/tag/", "de"), "de")


@pytest.mark.parametrize("changelist", ["session", "device", "sessionevent"])
def test_admin_changelists_translated(
    devices: Client, root: User, changelist: str
) -> None:
    devices.post("/sessions/sign-out-others/")
    admin = Client()
    admin.login(username="root", password=PASSWORD)
    url = f"/admin/sessionkit/{changelist}/"
    english = text_of(admin, url, "en")
    translated = text_of(admin, url, "de")
    left = english_in(translated) - SAME["de"]
    assert not left, f"English left in the German admin: {sorted(left)}"
    if changelist == "sessionevent":
        assert "user_signed_out_others" not in english
        assert "signed out everywhere else by the user" in english
        assert "vom Benutzer überall sonst abgemeldet" in translated


# -- Words built in Python ----------------------------------------------------------


def test_model_labels_translated_with_their_word_order(alice: User) -> None:
    device = Device.objects.create(user=alice, token_hash="1" * 64)
    with translation.override("de"):
        assert str(device) == f"Gerät {device.pk}"
    with translation.override("fr"):
        assert str(device) == f"Appareil {device.pk}"
    purge = CachePurge.objects.create(key_hash="2" * 64)
    with translation.override("es"):
        assert str(purge) == f"Purga de caché pendiente {purge.pk}"


def test_every_reason_code_has_a_label() -> None:
    for code, label in REASONS.items():
        assert str(label) and str(label) != code
    with translation.override("de"):
        assert reason_label("password_change") == "Passwort geändert"
    # A reason of the site's own (sessionkit_revoke --reason) is shown as is.
    assert reason_label("migration-2026") == "migration-2026"


def test_event_admin_detail_shows_reason_as_words(alice: User, root: User) -> None:
    event = SessionEvent.objects.create(
        kind=SessionEvent.Kind.REVOKE, user=alice, reason="password_change"
    )
    admin = Client()
    admin.login(username="root", password=PASSWORD)
    text = text_of(admin, f"/admin/sessionkit/sessionevent/{event.pk}/change/", "de")
    assert "password_change" not in text
    assert "Passwort geändert" in text


# -- The new-device email -----------------------------------------------------------


@pytest.mark.parametrize("language", ["en", *LANGUAGES])
def test_new_device_email_translated_with_local_date(
    settings: Any, alice: User, language: str
) -> None:
    settings.SESSIONKIT_NOTIFY_NEW_DEVICE = True
    device = Device.objects.create(
        user=alice, token_hash="3" * 64, browser="Firefox 121", os="Linux"
    )
    with translation.override(language):
        assert notify_new_device(device, alice)
        when = formats.date_format(
            timezone.localtime(device.created_at), "DATETIME_FORMAT"
        )
    (message,) = mail.outbox
    assert when in message.body
    if language == "en":
        assert "Hello alice" in message.body
    else:
        text = f"{message.subject}\n{message.body}"
        left = english_in(text) - SAME[language] - {"Firefox", "Linux"}
        assert not left, f"English left in the {language} email: {sorted(left)}"


# -- Consent -------------------------------------------------------------------------


@pytest.mark.parametrize("language", LANGUAGES)
def test_consent_preferences_page_translated(language: str) -> None:
    # The page holds the category toggles the banner shows too.
    client = Client()
    url = "/sessions/consent/preferences/"
    english = text_of(client, url, "en")
    assert "Accept all" in english
    assert_translated(english, text_of(client, url, language), language)


def test_consent_record_admin_translated(root: User) -> None:
    Client().post("/sessions/consent/", {"action": "reject_all"})
    admin = Client()
    admin.login(username="root", password=PASSWORD)
    url = "/admin/sessionkit/consentrecord/"
    english = text_of(admin, url, "en")
    assert "1 consent record" in english
    # German says "Banner" too (the source of the record).
    left = english_in(text_of(admin, url, "de")) - SAME["de"] - {"Banner"}
    assert not left, f"English left in the German admin: {sorted(left)}"
