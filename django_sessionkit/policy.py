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
    """The limits of one session; ``None`` switches a limit off.

    Frozen: make variants with ``dataclasses.replace()``.
    """

    #: How long the session may go without activity.
    idle_timeout: timedelta | None
    #: How long the session may last from its sign-in.
    absolute_timeout: timedelta | None
    #: How often the session's key rotates while it is used.
    rotate_interval: timedelta | None


@dataclass(frozen=True)
class Deadlines:
    """When a session ends: on idleness, and at the latest.

    Each is an aware ``datetime``, or ``None`` when the matching timeout is
    off; the idle deadline is never later than the absolute one.
    """

    #: When the session ends if it sees no activity before then.
    idle: datetime | None
    #: When the session ends whatever its activity.
    absolute: datetime | None

    @property
    def earliest(self) -> datetime | None:
        """The deadline that comes first, or ``None`` when neither applies."""
        present = [d for d in (self.idle, self.absolute) if d is not None]
        return min(present) if present else None

    def passed(self, now: datetime) -> str | None:
        """Return ``"idle"`` or ``"absolute"``, the deadline that passed first
        by ``now``; ``None`` while neither has passed."""
        idle_passed = self.idle is not None and self.idle <= now
        absolute_passed = self.absolute is not None and self.absolute <= now
        if idle_passed and (
            not absolute_passed or self.idle < self.absolute  # type: ignore[operator]
        ):
            return "idle"
        return "absolute" if absolute_passed else None


def default_policy(request: HttpRequest, user: Any) -> Policy:
    """Return the policy of the ``SESSIONKIT_*`` settings.

    A session marked with :func:`~django_sessionkit.lifecycle.remember_me`
    gets the ``SESSIONKIT_REMEMBER_ME_*`` timeouts, any other the ordinary
    ones; both rotate every ``SESSIONKIT_ROTATE_INTERVAL``. Call it as the
    starting point of a ``SESSIONKIT_POLICY`` of your own.
    """
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
    """Return the policy for ``user``'s session in ``request``: what the
    ``SESSIONKIT_POLICY`` callable returns, or :func:`default_policy`'s."""
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
    """Return ``"absolute"`` or ``"idle"`` when the session is over at
    ``now``, else ``None``.

    A timestamp that is missing, or more than :data:`CLOCK_SKEW` ahead of
    ``now``, fails closed: a bad ``authenticated_at`` gives ``"absolute"``,
    a bad ``active_at`` ``"idle"``.
    """
    if authenticated_at is None or authenticated_at > now + CLOCK_SKEW:
        return "absolute"
    if active_at is None or active_at > now + CLOCK_SKEW:
        return "idle"
    limits = deadlines(policy, authenticated_at=authenticated_at, active_at=active_at)
    return limits.passed(now)
