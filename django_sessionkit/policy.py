"""Session policy: the limits that apply to one signed-in session.

``SESSIONKIT_POLICY`` names a callable ``(request, user) -> Policy``; the
default, :func:`default_policy`, reads the settings. A site can return a
stricter policy for staff, say:

.. code-block:: python

    def policy(request, user):
        base = default_policy(request, user)
        if user.is_staff:
            return replace(base, idle_timeout=timedelta(minutes=10))
        return base
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.http import HttpRequest
from django.utils.module_loading import import_string

from django_sessionkit.conf import conf

#: How far a stored timestamp may lie in the future (clocks of several app
#: servers differ a little) before it is taken as corrupt.
CLOCK_SKEW = timedelta(minutes=5)


@dataclass(frozen=True)
class Policy:
    """The limits of one session; ``None`` switches a limit off."""

    idle_timeout: timedelta | None
    absolute_timeout: timedelta | None
    rotate_interval: timedelta | None


@dataclass(frozen=True)
class Deadlines:
    """When a session ends: on idleness, and at the latest."""

    idle: datetime | None
    absolute: datetime | None

    @property
    def earliest(self) -> datetime | None:
        """The deadline that comes first, or ``None`` when neither applies."""
        present = [d for d in (self.idle, self.absolute) if d is not None]
        return min(present) if present else None

    def passed(self, now: datetime) -> str | None:
        """``"idle"`` or ``"absolute"``: the deadline that passed first by ``now``."""
        idle_passed = self.idle is not None and self.idle <= now
        absolute_passed = self.absolute is not None and self.absolute <= now
        if idle_passed and (
            not absolute_passed or self.idle < self.absolute  # type: ignore[operator]
        ):
            return "idle"
        return "absolute" if absolute_passed else None


def default_policy(request: HttpRequest, user: Any) -> Policy:
    """The policy of the ``SESSIONKIT_*`` settings, with "remember me"."""
    if getattr(request.session, "remember_me", False):
        return conf.derived("remember_me_policy", _remember_me_policy)  # type: ignore[no-any-return]
    return conf.derived("policy", _policy)  # type: ignore[no-any-return]


def _policy() -> Policy:
    return Policy(
        idle_timeout=conf.IDLE_TIMEOUT,
        absolute_timeout=conf.ABSOLUTE_TIMEOUT,
        rotate_interval=conf.ROTATE_INTERVAL,
    )


def _remember_me_policy() -> Policy:
    return Policy(
        idle_timeout=conf.REMEMBER_ME_IDLE_TIMEOUT,
        absolute_timeout=conf.REMEMBER_ME_ABSOLUTE_TIMEOUT,
        rotate_interval=conf.ROTATE_INTERVAL,
    )


def get_policy_callable() -> Callable[[HttpRequest, Any], Policy]:
    """Return the configured policy callable."""
    if conf.POLICY:
        func: Callable[[HttpRequest, Any], Policy] = import_string(conf.POLICY)
        return func
    return default_policy


def resolve(request: HttpRequest, user: Any) -> Policy:
    """Return the policy for ``user``'s session in ``request``."""
    return get_policy_callable()(request, user)


def deadlines(
    policy: Policy, *, authenticated_at: datetime, active_at: datetime
) -> Deadlines:
    """The deadlines of a session signed in and last active at these times."""
    absolute = (
        authenticated_at + policy.absolute_timeout
        if policy.absolute_timeout is not None
        else None
    )
    idle = active_at + policy.idle_timeout if policy.idle_timeout is not None else None
    if idle is not None and absolute is not None:
        idle = min(idle, absolute)
    return Deadlines(idle=idle, absolute=absolute)


def expiry_reason(
    policy: Policy,
    *,
    authenticated_at: datetime | None,
    active_at: datetime | None,
    now: datetime,
) -> str | None:
    """Return ``"absolute"`` or ``"idle"`` when the session is over, else ``None``.

    Timestamps that are missing or lie in the future fail closed.
    """
    if authenticated_at is None or authenticated_at > now + CLOCK_SKEW:
        return "absolute"
    if active_at is None or active_at > now + CLOCK_SKEW:
        return "idle"
    limits = deadlines(policy, authenticated_at=authenticated_at, active_at=active_at)
    return limits.passed(now)
