"""The recipes of "Testing your project" (docs/howto/testing.rst): ``force_login``
signs a test client in through this app's store and middleware; a session
built by hand with ``SessionStore()`` is not a sign-in."""

from __future__ import annotations

from importlib import import_module

import pytest
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth.models import User
from django.shortcuts import resolve_url
from django.test import AsyncClient, Client

from django_sessionkit.models import Session
from tests.helpers import COOKIE, carrying, user_of

pytestmark = pytest.mark.django_db

BACKEND = "django.contrib.auth.backends.ModelBackend"


def test_force_login_then_request_signed_in(alice: User, engine: str) -> None:
    client = Client()
    client.force_login(alice)
    assert user_of(client.get("/peek/")) == "alice"
    session = Session.objects.get(user=alice)
    assert session.authenticated_at is not None
    # A browser test copies the cookie into its browser.
    assert user_of(carrying(client.cookies[COOKIE].value).get("/peek/")) == "alice"


async def test_aforce_login_then_request_signed_in(alice: User, engine: str) -> None:
    client = AsyncClient()
    await client.aforce_login(alice)
    assert user_of(await client.get("/peek/")) == "alice"


def test_hand_built_session_store_not_signed_in(alice: User, engine: str) -> None:
    # The pattern of some browser-test helpers: no sign-in happened, so the
    # session has no sign-in time and the middleware ends it as expired.
    store = import_module(settings.SESSION_ENGINE).SessionStore()
    store[SESSION_KEY] = str(alice.pk)
    store[BACKEND_SESSION_KEY] = BACKEND
    store[HASH_SESSION_KEY] = alice.get_session_auth_hash()
    store.save()
    client = carrying(store.session_key)
    response = client.get("/peek/")
    assert response.status_code == 302
    assert response["Location"].startswith(resolve_url(settings.LOGIN_URL))
    assert user_of(client.get("/peek/")) == ""
    assert not Session.objects.filter(user=alice).exists()
