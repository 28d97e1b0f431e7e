"""Helpers of the consent tests: decisions as a browser would carry them."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime

import django
import pytest
from django.conf import settings
from django.core import signing
from django.http import HttpResponseBase
from django.test import Client, RequestFactory

from django_sessionkit.conf import conf
from django_sessionkit.consent import state
from django_sessionkit.consent.state import Consent

#: The consent middleware first: it sees every Set-Cookie on the way out.
MIDDLEWARE = [
    "django_sessionkit.middleware.ConsentMiddleware",
    *settings.MIDDLEWARE,
]
CONSENT = "/sessions/consent/"
PREFERENCES = "/sessions/consent/preferences/"
JSON = {"Accept": "application/json"}


def decision(granted: Iterable[str] = (), *, gpc: bool = False) -> Consent:
    """A decision granting ``granted``, made explicitly (``save``)."""
    headers = {"Sec-GPC": "1"} if gpc else {}
    request = RequestFactory().post("/", headers=headers)
    return state.decide(request, granted, explicit=True)


def browser(granted: Iterable[str] | None = None, **cookies: str) -> Client:
    """A browser carrying a decision granting ``granted`` (none when
    ``None``) and the other ``cookies``."""
    client = Client()
    if granted is not None:
        client.cookies[conf.CONSENT_COOKIE_NAME] = state.cookie_value(decision(granted))
    for name, value in cookies.items():
        client.cookies[name] = value
    return client


def signed_at(payload: object, when: datetime) -> str:
    """A consent cookie value signed at ``when`` (an old decision)."""

    class Then(signing.TimestampSigner):
        def timestamp(self) -> str:
            return signing.b62_encode(int(when.timestamp()))

    return Then(salt=state.SALT).sign_object(payload)


def payload(consent: Consent) -> dict[str, object]:
    """The cookie payload of ``consent``."""
    return dict(signing.loads(state.cookie_value(consent), salt=state.SALT))


def set_cookies(response: HttpResponseBase) -> dict[str, str]:
    """The cookies ``response`` sets: name -> value ("" for a deletion)."""
    return {
        name: "" if str(morsel["max-age"]) == "0" else morsel.value
        for name, morsel in response.cookies.items()
    }


def consent_id(response: HttpResponseBase) -> uuid.UUID:
    """The consent id of the cookie ``response`` sets."""
    value = response.cookies[conf.CONSENT_COOKIE_NAME].value
    return uuid.UUID(hex=str(signing.loads(value, salt=state.SALT)["i"]))


#: Django's own CSP middleware and nonce arrived in Django 6.0.
djangos_csp = pytest.mark.skipif(
    django.VERSION < (6, 0), reason="Django's CSP middleware is new in 6.0"
)
