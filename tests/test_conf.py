from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.test import override_settings

from django_sessionkit.conf import DURATION_SETTINGS, STORE_IP_CHOICES, Settings, conf

# Each setting, its documented default, and two other values it can be set to.
SETTINGS: list[tuple[str, Any, Any, Any]] = [
    ("TRUSTED_PROXY_COUNT", 0, 1, 2),
    ("CLIENT_IP_HEADER", "X-Forwarded-For", "X-Real-IP", "CF-Connecting-IP"),
    ("STORE_IP", "full", "truncated", "none"),
    ("STORE_USER_AGENT", True, False, True),
    ("CLEANUP_BATCH_SIZE", 1000, 1, 50_000),
    ("IDLE_TIMEOUT", timedelta(minutes=30), timedelta(minutes=5), None),
    ("ABSOLUTE_TIMEOUT", timedelta(hours=12), timedelta(hours=1), None),
    ("REMEMBER_ME_IDLE_TIMEOUT", timedelta(days=14), timedelta(days=1), None),
    ("REMEMBER_ME_ABSOLUTE_TIMEOUT", timedelta(days=30), timedelta(days=2), None),
    ("POLICY", None, "tests.policies.strict", "tests.policies.other"),
    ("ACTIVITY_RESOLUTION", timedelta(seconds=60), timedelta(0), timedelta(seconds=5)),
    ("PASSIVE_URLS", (), [r"^/poll/"], (r"^/api/status",)),
    ("ROTATE_INTERVAL", timedelta(minutes=15), timedelta(minutes=1), None),
    ("ROTATE_GRACE", timedelta(seconds=60), timedelta(seconds=5), None),
    ("ON_STALE_KEY", "revoke", "log", "revoke"),
    ("REVOKE_OTHERS_ON_PASSWORD_CHANGE", True, False, True),
    ("MAX_SESSIONS_PER_USER", None, 3, 1),
    ("MAX_SESSIONS_POLICY", "evict_oldest", "deny", "evict_oldest"),
    ("CLEAR_SITE_DATA_ON_LOGOUT", False, True, False),
    ("EVENT_RETENTION", timedelta(days=90), timedelta(days=7), None),
    ("IDLE_WARNING", timedelta(minutes=2), timedelta(seconds=30), None),
    ("CACHE_MAX_AGE", timedelta(minutes=5), timedelta(seconds=90), None),
    ("CACHE_SWEEP_INTERVAL", timedelta(seconds=5), timedelta(seconds=1), None),
    ("CACHE_WAIT_REPLICAS", 0, 1, 2),
    ("CACHE_WAIT_TIMEOUT", timedelta(milliseconds=100), timedelta(seconds=1), None),
    ("REAUTH_MAX_AGE", timedelta(minutes=10), timedelta(minutes=5), None),
    ("REAUTH_FAILURE_LIMIT", 5, 3, None),
    (
        "REAUTH_FAILURE_WINDOW",
        timedelta(minutes=15),
        timedelta(hours=1),
        timedelta(seconds=90),
    ),
    ("REAUTH_REVOKE_AFTER", 20, 10, None),
    ("DEVICE_COOKIE_NAME", "sessionkit_device", "device", "__Host-device"),
    ("DEVICE_COOKIE_AGE", timedelta(days=365), timedelta(days=30), None),
    ("DEVICE_RETENTION", timedelta(days=90), timedelta(days=30), None),
    ("NOTIFY_NEW_DEVICE", False, True, False),
    (
        "LOCATION_RESOLVER",
        None,
        "django_sessionkit.location.geoip2",
        "tests.test_location.echo",
    ),
    ("CONSENT_CATEGORIES", None, [{"key": "necessary", "required": True}], []),
    ("CONSENT_REVISION", 1, 2, 10),
    ("CONSENT_MAX_AGE", timedelta(days=182), timedelta(days=30), None),
    ("CONSENT_COOKIE_NAME", "sessionkit_consent", "consent", "__Host-consent"),
    ("CONSENT_RETENTION", timedelta(days=3 * 365), timedelta(days=365), None),
]
NAMES = [name for name, *_ in SETTINGS]


def setting_properties() -> set[str]:
    return {
        name for name, value in vars(Settings).items() if isinstance(value, property)
    }


def test_settings_every_property_is_covered_here() -> None:
    # A new setting must get its default and override tests in this file.
    assert setting_properties() == set(NAMES)


@pytest.mark.parametrize(("name", "default", "first", "second"), SETTINGS, ids=NAMES)
def test_setting_default_when_unset(
    name: str, default: Any, first: Any, second: Any
) -> None:
    assert not hasattr(django_settings, f"SESSIONKIT_{name}")
    value = getattr(conf, name)
    assert value == default
    assert type(value) is type(default)


@pytest.mark.parametrize(("name", "default", "first", "second"), SETTINGS, ids=NAMES)
def test_setting_reflects_override_on_every_access(
    name: str, default: Any, first: Any, second: Any
) -> None:
    assert getattr(conf, name) == default
    with override_settings(**{f"SESSIONKIT_{name}": first}):
        assert getattr(conf, name) == first
        with override_settings(**{f"SESSIONKIT_{name}": second}):
            assert getattr(conf, name) == second
        assert getattr(conf, name) == first
    assert getattr(conf, name) == default


@pytest.mark.parametrize(("name", "default", "first", "second"), SETTINGS, ids=NAMES)
def test_setting_reflects_settings_fixture_changes(
    settings: Any, name: str, default: Any, first: Any, second: Any
) -> None:
    setattr(settings, f"SESSIONKIT_{name}", first)
    assert getattr(conf, name) == first
    setattr(settings, f"SESSIONKIT_{name}", second)
    assert getattr(conf, name) == second
    delattr(settings, f"SESSIONKIT_{name}")
    assert getattr(conf, name) == default


@pytest.mark.parametrize("name", NAMES)
def test_setting_default_not_written_to_django_settings(name: str) -> None:
    getattr(conf, name)
    assert not hasattr(django_settings, f"SESSIONKIT_{name}")


def test_setting_invalid_value_passed_through_for_the_checks() -> None:
    # conf does not validate: the system checks report bad values by name.
    with override_settings(SESSIONKIT_STORE_IP="partial"):
        assert conf.STORE_IP == "partial"
    with override_settings(SESSIONKIT_TRUSTED_PROXY_COUNT="1"):
        assert conf.TRUSTED_PROXY_COUNT == "1"


def test_store_ip_choices_documented() -> None:
    assert STORE_IP_CHOICES == ("full", "truncated", "none")


@pytest.mark.parametrize("name", DURATION_SETTINGS)
def test_duration_setting_accepts_seconds(name: str) -> None:
    with override_settings(**{f"SESSIONKIT_{name}": 90}):
        assert getattr(conf, name) == timedelta(seconds=90)
    with override_settings(**{f"SESSIONKIT_{name}": 1.5}):
        assert getattr(conf, name) == timedelta(seconds=1.5)
    with override_settings(**{f"SESSIONKIT_{name}": None}):
        assert getattr(conf, name) is None
