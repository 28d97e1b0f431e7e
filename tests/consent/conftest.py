"""Every consent test runs with ``ConsentMiddleware`` and the consent pages."""

from __future__ import annotations

from typing import Any

import pytest

from tests.consent.helpers import MIDDLEWARE


@pytest.fixture(autouse=True)
def consent_site(settings: Any) -> None:
    settings.MIDDLEWARE = MIDDLEWARE
    settings.ROOT_URLCONF = "tests.consent.urls"
