"""The limits on wrong re-authentication passwords (E027-E030)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from django.apps import AppConfig
from django.core.checks import CheckMessage, Error, register

from django_sessionkit.checks.base import TAG, is_int
from django_sessionkit.conf import conf


def _count_error(name: str, value: Any, check_id: str, hint: str) -> Error:
    return Error(
        f"SESSIONKIT_{name} must be a whole number >= 1 or None, not {value!r}.",
        hint=hint,
        id=check_id,
    )


@register(TAG)
def check_reauth_settings(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """The limits on wrong re-authentication passwords (E027-E030); the
    window's type and sign are E007's."""
    errors: list[CheckMessage] = []
    limit = conf.REAUTH_FAILURE_LIMIT
    if limit is not None and (not is_int(limit) or limit < 1):
        errors.append(
            _count_error(
                "REAUTH_FAILURE_LIMIT",
                limit,
                "sessionkit.E027",
                "Set how many wrong passwords within "
                "SESSIONKIT_REAUTH_FAILURE_WINDOW lock re-authentication "
                "(5 by default), or None for no lock.",
            )
        )
    window = conf.REAUTH_FAILURE_WINDOW
    if window is None and limit is not None:
        errors.append(
            Error(
                "SESSIONKIT_REAUTH_FAILURE_WINDOW must be a duration while "
                f"SESSIONKIT_REAUTH_FAILURE_LIMIT is set, not {window!r}.",
                hint="For example SESSIONKIT_REAUTH_FAILURE_WINDOW = "
                "timedelta(minutes=15), or set SESSIONKIT_REAUTH_FAILURE_LIMIT "
                "= None for no lock.",
                id="sessionkit.E028",
            )
        )
    retention = conf.EVENT_RETENTION
    if (
        limit is not None
        and isinstance(window, timedelta)
        and isinstance(retention, timedelta)
        and retention < window
    ):
        # The failures are counted from their events: clearsessions must
        # not delete them before they leave the window.
        errors.append(
            Error(
                "SESSIONKIT_EVENT_RETENTION is shorter than "
                "SESSIONKIT_REAUTH_FAILURE_WINDOW: clearsessions would delete "
                "the recorded re-authentication failures before they leave the "
                "window, and cut a lock short.",
                hint="Keep events at least as long as the window (the defaults "
                "are 90 days and 15 minutes).",
                id="sessionkit.E030",
            )
        )
    after = conf.REAUTH_REVOKE_AFTER
    if after is not None and (not is_int(after) or after < 1):
        errors.append(
            _count_error(
                "REAUTH_REVOKE_AFTER",
                after,
                "sessionkit.E029",
                "Set how many wrong passwords revoke a session (20 by "
                "default), or None never to revoke it for them.",
            )
        )
    return errors
