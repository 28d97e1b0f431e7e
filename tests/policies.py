"""Policy callables for the tests, named by ``SESSIONKIT_POLICY``."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

from django.http import HttpRequest

from django_sessionkit.policy import Policy, default_policy

STAFF_IDLE_TIMEOUT = timedelta(minutes=5)
STAFF_ABSOLUTE_TIMEOUT = timedelta(hours=1)

OTHER = Policy(
    idle_timeout=timedelta(minutes=10),
    absolute_timeout=timedelta(hours=2),
    rotate_interval=None,
)


def strict(request: HttpRequest, user: Any) -> Policy:
    """Staff get shorter limits; everyone else the settings' policy."""
    base = default_policy(request, user)
    if getattr(user, "is_staff", False):
        return replace(
            base,
            idle_timeout=STAFF_IDLE_TIMEOUT,
            absolute_timeout=STAFF_ABSOLUTE_TIMEOUT,
        )
    return base


def other(request: HttpRequest, user: Any) -> Policy:
    """The same limits for everyone, whatever the settings say."""
    return OTHER
