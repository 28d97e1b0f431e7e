"""The policy settings (E007-E013): durations, the policy callable, passive
URLs, stale keys, session limits and the switches."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from django.apps import AppConfig
from django.core.checks import CheckMessage, Error, register

from django_sessionkit.checks.base import TAG, imported, is_int
from django_sessionkit.conf import (
    DURATION_SETTINGS,
    MAX_SESSIONS_POLICY_CHOICES,
    ON_STALE_KEY_CHOICES,
    conf,
)

# Durations that may be zero (the others must be positive when set).
_ZERO_ALLOWED = {"ACTIVITY_RESOLUTION", "ROTATE_GRACE", "IDLE_WARNING"}
_BOOLEANS = (
    "REVOKE_OTHERS_ON_PASSWORD_CHANGE",
    "CLEAR_SITE_DATA_ON_LOGOUT",
    "NOTIFY_NEW_DEVICE",
)


def _duration_errors() -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    for name in DURATION_SETTINGS:
        value = getattr(conf, name)
        if value is None:
            continue
        floor = "zero or more" if name in _ZERO_ALLOWED else "more than zero"
        if not isinstance(value, timedelta) or (
            value < timedelta(0) if name in _ZERO_ALLOWED else value <= timedelta(0)
        ):
            errors.append(
                Error(
                    f"SESSIONKIT_{name} must be a timedelta or a number of "
                    f"seconds, {floor}, or None; not {value!r}.",
                    hint=f"For example SESSIONKIT_{name} = timedelta(minutes=30), "
                    "or None to switch it off.",
                    id="sessionkit.E007",
                )
            )
    return errors


def _choice_error(name: str, value: Any, choices: Sequence[str], id: str) -> Error:
    return Error(
        f"SESSIONKIT_{name} must be one of {', '.join(map(repr, choices))}, "
        f"not {value!r}.",
        id=id,
    )


@register(TAG)
def check_policy_settings(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """Refuse invalid policy settings (E007-E013) at start-up rather than on
    the first request that reads them."""
    errors = _duration_errors()
    if conf.POLICY is not None and not callable(imported(str(conf.POLICY))):
        errors.append(
            Error(
                f"SESSIONKIT_POLICY must be the dotted path of a callable "
                f"(request, user) -> Policy; {conf.POLICY!r} cannot be imported "
                "or is not callable.",
                hint="Check the module and name, or remove the setting for "
                "the default policy.",
                id="sessionkit.E008",
            )
        )
    errors.extend(_passive_url_errors())
    if conf.ON_STALE_KEY not in ON_STALE_KEY_CHOICES:
        errors.append(
            _choice_error(
                "ON_STALE_KEY",
                conf.ON_STALE_KEY,
                ON_STALE_KEY_CHOICES,
                "sessionkit.E010",
            )
        )
    limit = conf.MAX_SESSIONS_PER_USER
    if limit is not None and (not is_int(limit) or limit < 1):
        errors.append(
            Error(
                f"SESSIONKIT_MAX_SESSIONS_PER_USER must be a whole number >= 1 or "
                f"None, not {limit!r}.",
                id="sessionkit.E011",
            )
        )
    if conf.MAX_SESSIONS_POLICY not in MAX_SESSIONS_POLICY_CHOICES:
        errors.append(
            _choice_error(
                "MAX_SESSIONS_POLICY",
                conf.MAX_SESSIONS_POLICY,
                MAX_SESSIONS_POLICY_CHOICES,
                "sessionkit.E012",
            )
        )
    for name in _BOOLEANS:
        value = getattr(conf, name)
        if not isinstance(value, bool):
            errors.append(
                Error(
                    f"SESSIONKIT_{name} must be True or False, not {value!r}.",
                    id="sessionkit.E013",
                )
            )
    return errors


def _passive_url_errors() -> list[CheckMessage]:
    patterns = conf.PASSIVE_URLS
    problem = None
    if isinstance(patterns, str) or not isinstance(patterns, list | tuple):
        problem = f"must be a list of regular expressions, not {patterns!r}"
    else:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except (re.error, TypeError) as exc:
                problem = (
                    f"holds {pattern!r}, which is not a regular expression ({exc})"
                )
                break
    if problem is None:
        return []
    return [
        Error(
            f"SESSIONKIT_PASSIVE_URLS {problem}.",
            hint='For example SESSIONKIT_PASSIVE_URLS = [r"^/api/poll/"].',
            id="sessionkit.E009",
        )
    ]
