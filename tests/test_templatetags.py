"""``{% sessionkit_idle_warning %}`` and ``{% sessionkit_deadlines %}``: thin
tags over ``idle_warning.py`` (whose tests, in ``tests/test_idle_warning.py``,
render the warning through the tag) and ``http.session_deadlines``.

The tags are rendered by views of ``tests.urls_browser`` for requests that went
through the whole middleware stack, so the deadlines are the real ones.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ImproperlyConfigured
from django.template import Context, Template
from django.test import Client

from django_sessionkit.models import Session
from tests.helpers import PASSWORD

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _urls(settings: Any) -> None:
    settings.ROOT_URLCONF = "tests.urls_browser"
    settings.STATIC_URL = "/static/"
    settings.LOGIN_URL = "/signin/"


def sign_in(client: Client) -> Session:
    """Sign ``client`` in as alice (of ``tests/conftest.py``)."""
    response = client.post("/login/", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 200
    return Session.objects.get()


# -- {% sessionkit_idle_warning %} ----------------------------------------------------


def test_idle_warning_without_request_in_context_fails_clearly() -> None:
    template = Template("{% load sessionkit %}{% sessionkit_idle_warning %}")
    with pytest.raises(ImproperlyConfigured, match=r"context_processors\.request"):
        template.render(Context({}))


# -- {% sessionkit_deadlines %} -------------------------------------------------------


def test_deadlines_tag_anonymous_is_none(client: Client) -> None:
    assert client.get("/deadlines/").content == b"|"


def test_deadlines_tag_signed_in(client: Client, alice: User) -> None:
    sign_in(client)
    idle, absolute = client.get("/deadlines/").content.decode().split("|")
    record = Session.objects.get()
    assert datetime.fromisoformat(idle) == record.expire_date
    assert datetime.fromisoformat(absolute) == record.absolute_expire_date
