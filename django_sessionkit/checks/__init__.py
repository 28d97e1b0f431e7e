"""System checks: a misconfiguration fails at start-up, not on a request.

Ids are stable and never reused: ``E0xx`` for invalid ``SESSIONKIT_*``
values, ``W0xx`` for set-up warnings, ``W1xx`` for ``check --deploy``. One
module per concern; importing this package registers every check (the app's
``ready()`` does).
"""

from __future__ import annotations

from django_sessionkit.checks import (
    cache,
    consent,
    cookies,
    general,
    installation,
    location,
    policy,
    reauth,
)

__all__ = [
    "cache",
    "consent",
    "cookies",
    "general",
    "installation",
    "location",
    "policy",
    "reauth",
]
