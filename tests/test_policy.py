"""The policy as plain functions: deadlines, expiry reasons, resolution."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import AnonymousUser, User
from django.http import HttpRequest
from django.test import RequestFactory, override_settings

from django_sessionkit.backends.db import SessionStore
from django_sessionkit.policy import (
    CLOCK_SKEW,
    Deadlines,
    Policy,
    deadlines,
    default_policy,
    expiry_reason,
    resolve,
)
from tests import policies

NOW = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)
IDLE = timedelta(minutes=30)
ABSOLUTE = timedelta(hours=12)
ROTATE = timedelta(minutes=15)
DEFAULT = Policy(idle_timeout=IDLE, absolute_timeout=ABSOLUTE, rotate_interval=ROTATE)
NO_IDLE = Policy(idle_timeout=None, absolute_timeout=ABSOLUTE, rotate_interval=None)
NO_ABSOLUTE = Policy(idle_timeout=IDLE, absolute_timeout=None, rotate_interval=None)
NEITHER = Policy(idle_timeout=None, absolute_timeout=None, rotate_interval=None)

# Offsets from a limit: one second early, exactly on it, one second late.
BOUNDARY = [(-SECOND, False), (timedelta(0), True), (SECOND, True)]
BOUNDARY_IDS = ["one_second_before", "exactly_at", "one_second_after"]


def request_with_store(*, remember: bool = False) -> HttpRequest:
    request = RequestFactory().get("/")
    store = SessionStore()
    if remember:
        store.set_remember_me(True)
    request.session = store
    return request


# -- deadlines() ----------------------------------------------------------------


def test_deadlines_absolute_counts_from_sign_in() -> None:
    signed_in = NOW - timedelta(hours=3)
    result = deadlines(DEFAULT, authenticated_at=signed_in, active_at=NOW)
    assert result.absolute == signed_in + ABSOLUTE


def test_deadlines_idle_counts_from_activity() -> None:
    active = NOW - timedelta(minutes=7)
    result = deadlines(
        DEFAULT, authenticated_at=NOW - timedelta(hours=1), active_at=active
    )
    assert result.idle == active + IDLE


def test_deadlines_idle_never_past_absolute() -> None:
    signed_in = NOW - ABSOLUTE + timedelta(minutes=10)
    result = deadlines(DEFAULT, authenticated_at=signed_in, active_at=NOW)
    assert result.absolute == signed_in + ABSOLUTE
    assert result.idle == result.absolute


def test_deadlines_idle_none_disables_idle() -> None:
    result = deadlines(NO_IDLE, authenticated_at=NOW, active_at=NOW)
    assert result == Deadlines(idle=None, absolute=NOW + ABSOLUTE)


def test_deadlines_absolute_none_leaves_idle_uncapped() -> None:
    signed_in = NOW - timedelta(days=400)
    result = deadlines(NO_ABSOLUTE, authenticated_at=signed_in, active_at=NOW)
    assert result == Deadlines(idle=NOW + IDLE, absolute=None)


def test_deadlines_both_none_is_no_deadline() -> None:
    result = deadlines(NEITHER, authenticated_at=NOW, active_at=NOW)
    assert result == Deadlines(idle=None, absolute=None)
    assert result.earliest is None


@pytest.mark.parametrize(
    ("idle", "absolute", "earliest"),
    [
        (NOW, NOW + SECOND, NOW),
        (NOW + SECOND, NOW, NOW),
        (None, NOW, NOW),
        (NOW, None, NOW),
    ],
    ids=["idle_first", "absolute_first", "only_absolute", "only_idle"],
)
def test_deadlines_earliest_is_the_first_to_come(
    idle: datetime | None, absolute: datetime | None, earliest: datetime
) -> None:
    assert Deadlines(idle=idle, absolute=absolute).earliest == earliest


# -- expiry_reason() --------------------------------------------------------------


@pytest.mark.parametrize(("offset", "expired"), BOUNDARY, ids=BOUNDARY_IDS)
def test_expiry_reason_idle_limit(offset: timedelta, expired: bool) -> None:
    reason = expiry_reason(
        DEFAULT,
        authenticated_at=NOW - timedelta(hours=2),
        active_at=NOW - IDLE - offset,
        now=NOW,
    )
    assert reason == ("idle" if expired else None)


@pytest.mark.parametrize(("offset", "expired"), BOUNDARY, ids=BOUNDARY_IDS)
def test_expiry_reason_absolute_limit(offset: timedelta, expired: bool) -> None:
    reason = expiry_reason(
        DEFAULT,
        authenticated_at=NOW - ABSOLUTE - offset,
        active_at=NOW - timedelta(minutes=1),
        now=NOW,
    )
    assert reason == ("absolute" if expired else None)


def test_expiry_reason_one_microsecond_before_idle_limit_is_alive() -> None:
    active = NOW - IDLE + timedelta(microseconds=1)
    reason = expiry_reason(
        DEFAULT, authenticated_at=NOW - timedelta(hours=1), active_at=active, now=NOW
    )
    assert reason is None


def test_expiry_reason_25_hours_idle_is_idle() -> None:
    # Signed in and left 25 hours ago: the idle deadline ended the session
    # 24.5 hours ago, long before the absolute one; that is the reason.
    gone = NOW - timedelta(hours=25)
    reason = expiry_reason(DEFAULT, authenticated_at=gone, active_at=gone, now=NOW)
    assert reason == "idle"


def test_expiry_reason_active_until_absolute_limit_is_absolute() -> None:
    reason = expiry_reason(
        DEFAULT,
        authenticated_at=NOW - ABSOLUTE - SECOND,
        active_at=NOW - timedelta(minutes=1),
        now=NOW,
    )
    assert reason == "absolute"


def test_expiry_reason_missing_sign_in_time_fails_closed() -> None:
    reason = expiry_reason(DEFAULT, authenticated_at=None, active_at=NOW, now=NOW)
    assert reason is not None


def test_expiry_reason_missing_sign_in_time_fails_closed_without_limits() -> None:
    reason = expiry_reason(NEITHER, authenticated_at=None, active_at=NOW, now=NOW)
    assert reason is not None


def test_expiry_reason_missing_activity_fails_closed() -> None:
    reason = expiry_reason(DEFAULT, authenticated_at=NOW, active_at=None, now=NOW)
    assert reason is not None


@pytest.mark.parametrize(
    "ahead", [CLOCK_SKEW + SECOND, timedelta(days=1), timedelta(days=3650)]
)
@pytest.mark.parametrize("field", ["authenticated_at", "active_at"])
def test_expiry_reason_future_timestamp_fails_closed(
    field: str, ahead: timedelta
) -> None:
    times = {"authenticated_at": NOW - timedelta(minutes=1), "active_at": NOW}
    times[field] = NOW + ahead
    for session_policy in (DEFAULT, NEITHER):
        reason = expiry_reason(session_policy, now=NOW, **times)
        assert reason is not None


@pytest.mark.parametrize("field", ["authenticated_at", "active_at"])
def test_expiry_reason_far_future_timestamp_does_not_overflow(field: str) -> None:
    times = {"authenticated_at": NOW - timedelta(minutes=1), "active_at": NOW}
    times[field] = datetime.max.replace(tzinfo=UTC)
    assert expiry_reason(DEFAULT, now=NOW, **times) is not None


def test_expiry_reason_tolerates_small_clock_difference() -> None:
    # Another app server's clock may run a few seconds ahead.
    ahead = NOW + timedelta(seconds=5)
    reason = expiry_reason(DEFAULT, authenticated_at=ahead, active_at=ahead, now=NOW)
    assert reason is None


@pytest.mark.parametrize(
    ("session_policy", "signed_in", "active"),
    [
        (NO_IDLE, NOW - ABSOLUTE + SECOND, NOW - ABSOLUTE + SECOND),
        (NO_ABSOLUTE, NOW - timedelta(days=400), NOW - IDLE + SECOND),
        (NEITHER, NOW - timedelta(days=36500), NOW - timedelta(days=36500)),
    ],
    ids=["idle_off", "absolute_off", "both_off"],
)
def test_expiry_reason_none_disables_a_limit(
    session_policy: Policy, signed_in: datetime, active: datetime
) -> None:
    reason = expiry_reason(
        session_policy, authenticated_at=signed_in, active_at=active, now=NOW
    )
    assert reason is None


def test_expiry_reason_idle_off_still_ends_at_absolute_limit() -> None:
    reason = expiry_reason(
        NO_IDLE, authenticated_at=NOW - ABSOLUTE, active_at=NOW, now=NOW
    )
    assert reason == "absolute"


def test_expiry_reason_absolute_off_still_ends_when_idle() -> None:
    reason = expiry_reason(
        NO_ABSOLUTE,
        authenticated_at=NOW - timedelta(days=400),
        active_at=NOW - IDLE,
        now=NOW,
    )
    assert reason == "idle"


# -- default_policy(), resolve(), remember_me() -------------------------------------


def test_default_policy_defaults() -> None:
    policy = default_policy(request_with_store(), AnonymousUser())
    assert policy == DEFAULT


@override_settings(
    SESSIONKIT_IDLE_TIMEOUT=600,
    SESSIONKIT_ABSOLUTE_TIMEOUT=7200.0,
    SESSIONKIT_ROTATE_INTERVAL=None,
)
def test_default_policy_reads_settings_in_seconds() -> None:
    policy = default_policy(request_with_store(), AnonymousUser())
    assert policy == Policy(
        idle_timeout=timedelta(minutes=10),
        absolute_timeout=timedelta(hours=2),
        rotate_interval=None,
    )


@override_settings(SESSIONKIT_IDLE_TIMEOUT=None, SESSIONKIT_ABSOLUTE_TIMEOUT=None)
def test_default_policy_none_disables_timeouts() -> None:
    policy = default_policy(request_with_store(), AnonymousUser())
    assert policy.idle_timeout is None
    assert policy.absolute_timeout is None


def test_default_policy_remember_me_defaults() -> None:
    policy = default_policy(request_with_store(remember=True), AnonymousUser())
    assert policy.idle_timeout == timedelta(days=14)
    assert policy.absolute_timeout == timedelta(days=30)


@override_settings(
    SESSIONKIT_REMEMBER_ME_IDLE_TIMEOUT=timedelta(days=2),
    SESSIONKIT_REMEMBER_ME_ABSOLUTE_TIMEOUT=86400 * 5,
)
def test_default_policy_remember_me_reads_settings() -> None:
    policy = default_policy(request_with_store(remember=True), AnonymousUser())
    assert policy.idle_timeout == timedelta(days=2)
    assert policy.absolute_timeout == timedelta(days=5)
    plain = default_policy(request_with_store(), AnonymousUser())
    assert plain == DEFAULT


def test_resolve_default_is_settings_policy() -> None:
    staff = User(username="root", is_staff=True)
    assert resolve(request_with_store(), staff) == DEFAULT


@override_settings(SESSIONKIT_POLICY="tests.policies.strict")
def test_resolve_custom_policy_stricter_for_staff() -> None:
    staff = User(username="root", is_staff=True)
    member = User(username="alice")
    assert resolve(request_with_store(), staff) == Policy(
        idle_timeout=policies.STAFF_IDLE_TIMEOUT,
        absolute_timeout=policies.STAFF_ABSOLUTE_TIMEOUT,
        rotate_interval=ROTATE,
    )
    assert resolve(request_with_store(), member) == DEFAULT


@override_settings(SESSIONKIT_POLICY="tests.policies.other")
def test_resolve_reads_policy_setting_on_each_call() -> None:
    assert resolve(request_with_store(), AnonymousUser()) == policies.OTHER
    with override_settings(SESSIONKIT_POLICY=None):
        assert resolve(request_with_store(), AnonymousUser()) == DEFAULT
