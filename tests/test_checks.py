from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core import checks
from django.core.management import call_command
from django.test import override_settings

from django_sessionkit.backends import db
from django_sessionkit.checks.cookies import check_session_cookie
from django_sessionkit.checks.general import check_settings
from django_sessionkit.checks.installation import check_middleware, check_session_engine
from django_sessionkit.checks.location import check_location_resolver
from django_sessionkit.checks.policy import check_policy_settings
from django_sessionkit.checks.reauth import check_reauth_settings
from django_sessionkit.conf import DURATION_SETTINGS
from django_sessionkit.middleware import SessionKitMiddleware


class SessionStore(db.SessionStore):
    """A project's own store built on ours: ``SESSION_ENGINE = "tests.test_checks"``."""


class ProjectMiddleware(SessionKitMiddleware):
    """A project's own subclass of the policy middleware."""


def ids(messages: Sequence[checks.CheckMessage]) -> list[str]:
    return [str(message.id) for message in messages]


def our_ids(messages: Sequence[checks.CheckMessage]) -> list[str]:
    return sorted(i for i in ids(messages) if i.startswith("sessionkit."))


def only(messages: Sequence[checks.CheckMessage], check_id: str) -> checks.CheckMessage:
    assert ids(messages) == [check_id]
    return messages[0]


# -- W001: SESSION_ENGINE ---------------------------------------------------


@pytest.mark.parametrize(
    "engine",
    [
        "django.contrib.sessions.backends.db",
        "django.contrib.sessions.backends.cached_db",
        "django.contrib.sessions.backends.signed_cookies",
        "django.contrib.sessions.backends",  # imports, but has no SessionStore
        "django_sessionkit.backends.nope",
        "no_such_package.sessions",
    ],
)
def test_session_engine_not_sessionkit_warns(engine: str) -> None:
    with override_settings(SESSION_ENGINE=engine):
        warning = only(check_session_engine(), "sessionkit.W001")
    assert warning.level == checks.WARNING
    assert "SESSION_ENGINE" in warning.msg
    assert repr(engine) in warning.msg
    assert warning.hint == 'Set SESSION_ENGINE = "django_sessionkit.backends.db".'


@pytest.mark.parametrize("engine", ["", ".db", "..backends.db"])
def test_session_engine_malformed_path_warns(engine: str) -> None:
    # An engine path that cannot even be resolved is one more unusable
    # engine: the check must report it, not crash the check framework.
    with override_settings(SESSION_ENGINE=engine):
        warning = only(check_session_engine(), "sessionkit.W001")
    assert repr(engine) in warning.msg


def test_session_engine_sessionkit_db_ok() -> None:
    with override_settings(SESSION_ENGINE="django_sessionkit.backends.db"):
        assert check_session_engine() == []


def test_session_engine_subclass_of_sessionkit_store_ok() -> None:
    with override_settings(SESSION_ENGINE=__name__):
        assert check_session_engine() == []


# -- E001: SESSIONKIT_TRUSTED_PROXY_COUNT -----------------------------------


@pytest.mark.parametrize("value", [-1, "1", 1.5, True, None])
def test_trusted_proxy_count_invalid_errors(value: Any) -> None:
    with override_settings(SESSIONKIT_TRUSTED_PROXY_COUNT=value):
        error = only(check_settings(), "sessionkit.E001")
    assert error.level == checks.ERROR
    assert "SESSIONKIT_TRUSTED_PROXY_COUNT" in error.msg
    assert repr(value) in error.msg
    assert error.hint


@pytest.mark.parametrize("value", [0, 1, 2])
def test_trusted_proxy_count_valid_ok(value: int) -> None:
    with override_settings(SESSIONKIT_TRUSTED_PROXY_COUNT=value):
        assert check_settings() == []


# -- E002: SESSIONKIT_CLIENT_IP_HEADER --------------------------------------


@pytest.mark.parametrize(
    "value", ["", "   ", "X Forwarded", "X-Forwarded-For:", 5, None]
)
def test_client_ip_header_invalid_errors(value: Any) -> None:
    with override_settings(SESSIONKIT_CLIENT_IP_HEADER=value):
        error = only(check_settings(), "sessionkit.E002")
    assert error.level == checks.ERROR
    assert "SESSIONKIT_CLIENT_IP_HEADER" in error.msg
    assert repr(value) in error.msg


@pytest.mark.parametrize("value", ["X-Réal-IP", "X-Forwarded-For²", "X-Client-IP٣"])
def test_client_ip_header_non_ascii_errors(value: str) -> None:
    # Header names are ASCII tokens (RFC 9110); such a name never arrives, so
    # with trusted proxies every client would silently get the proxy's address.
    with override_settings(SESSIONKIT_CLIENT_IP_HEADER=value):
        error = only(check_settings(), "sessionkit.E002")
    assert "SESSIONKIT_CLIENT_IP_HEADER" in error.msg
    assert repr(value) in error.msg


@pytest.mark.parametrize("value", ["X-Real-IP", "X-Forwarded-For", "CF-Connecting-IP"])
def test_client_ip_header_valid_ok(value: str) -> None:
    with override_settings(SESSIONKIT_CLIENT_IP_HEADER=value):
        assert check_settings() == []


# -- E003: SESSIONKIT_STORE_IP ----------------------------------------------


@pytest.mark.parametrize("value", ["partial", "Full", "", None, True])
def test_store_ip_invalid_errors(value: Any) -> None:
    with override_settings(SESSIONKIT_STORE_IP=value):
        error = only(check_settings(), "sessionkit.E003")
    assert error.level == checks.ERROR
    assert "SESSIONKIT_STORE_IP" in error.msg
    assert repr(value) in error.msg
    for choice in ("'full'", "'truncated'", "'none'"):
        assert choice in error.msg


@pytest.mark.parametrize("value", ["full", "truncated", "none"])
def test_store_ip_valid_ok(value: str) -> None:
    with override_settings(SESSIONKIT_STORE_IP=value):
        assert check_settings() == []


# -- E004: SESSIONKIT_STORE_USER_AGENT --------------------------------------


@pytest.mark.parametrize("value", ["yes", 1, 0, None, "False"])
def test_store_user_agent_invalid_errors(value: Any) -> None:
    with override_settings(SESSIONKIT_STORE_USER_AGENT=value):
        error = only(check_settings(), "sessionkit.E004")
    assert error.level == checks.ERROR
    assert "SESSIONKIT_STORE_USER_AGENT" in error.msg
    assert repr(value) in error.msg


@pytest.mark.parametrize("value", [True, False])
def test_store_user_agent_valid_ok(value: bool) -> None:
    with override_settings(SESSIONKIT_STORE_USER_AGENT=value):
        assert check_settings() == []


# -- E005: SESSIONKIT_CLEANUP_BATCH_SIZE ------------------------------------


@pytest.mark.parametrize("value", [0, -5, "100", True, 10.0, None])
def test_cleanup_batch_size_invalid_errors(value: Any) -> None:
    with override_settings(SESSIONKIT_CLEANUP_BATCH_SIZE=value):
        error = only(check_settings(), "sessionkit.E005")
    assert error.level == checks.ERROR
    assert "SESSIONKIT_CLEANUP_BATCH_SIZE" in error.msg
    assert repr(value) in error.msg


@pytest.mark.parametrize("value", [1, 1000])
def test_cleanup_batch_size_valid_ok(value: int) -> None:
    with override_settings(SESSIONKIT_CLEANUP_BATCH_SIZE=value):
        assert check_settings() == []


# -- E006: SESSION_COOKIE_SAMESITE ------------------------------------------


@pytest.mark.parametrize("value", ["Sometimes", "Laxx", 1, True])
def test_session_cookie_samesite_invalid_errors(value: Any) -> None:
    with override_settings(SESSION_COOKIE_SAMESITE=value):
        error = only(check_settings(), "sessionkit.E006")
    assert error.level == checks.ERROR
    assert "SESSION_COOKIE_SAMESITE" in error.msg
    assert repr(value) in error.msg


@pytest.mark.parametrize("value", ["Lax", "strict", "None", "none", None, False, ""])
def test_session_cookie_samesite_valid_no_e006(value: Any) -> None:
    with override_settings(SESSION_COOKIE_SAMESITE=value):
        assert check_settings() == []


def test_settings_all_invalid_reports_each_id() -> None:
    with override_settings(
        SESSIONKIT_TRUSTED_PROXY_COUNT=-1,
        SESSIONKIT_CLIENT_IP_HEADER="X Forwarded",
        SESSIONKIT_STORE_IP="partial",
        SESSIONKIT_STORE_USER_AGENT="yes",
        SESSIONKIT_CLEANUP_BATCH_SIZE=0,
        SESSION_COOKIE_SAMESITE="Sometimes",
    ):
        assert ids(check_settings()) == [
            "sessionkit.E001",
            "sessionkit.E002",
            "sessionkit.E003",
            "sessionkit.E004",
            "sessionkit.E005",
            "sessionkit.E006",
        ]


# -- W101-W103: check --deploy ----------------------------------------------


@pytest.mark.parametrize("value", [None, False, ""])
def test_session_cookie_samesite_unset_warns_on_deploy(value: Any) -> None:
    with override_settings(SESSION_COOKIE_SAMESITE=value):
        warning = only(check_session_cookie(), "sessionkit.W101")
    assert warning.level == checks.WARNING
    assert "SESSION_COOKIE_SAMESITE" in warning.msg


@pytest.mark.parametrize("value", ["None", "none"])
def test_session_cookie_samesite_none_without_secure_warns_on_deploy(
    value: str,
) -> None:
    with override_settings(SESSION_COOKIE_SAMESITE=value, SESSION_COOKIE_SECURE=False):
        warning = only(check_session_cookie(), "sessionkit.W102")
    assert warning.level == checks.WARNING
    assert "SESSION_COOKIE_SAMESITE" in warning.msg
    assert "SESSION_COOKIE_SECURE" in warning.msg


def test_session_cookie_samesite_none_with_secure_ok() -> None:
    with override_settings(
        SESSION_COOKIE_SAMESITE="None",
        SESSION_COOKIE_SECURE=True,
        SESSION_COOKIE_NAME="__Host-sessionid",
    ):
        assert check_session_cookie() == []


@pytest.mark.parametrize("value", ["Lax", "Strict"])
def test_session_cookie_samesite_set_ok(value: str) -> None:
    with override_settings(SESSION_COOKIE_SAMESITE=value, SESSION_COOKIE_SECURE=False):
        assert check_session_cookie() == []


def test_session_cookie_domain_set_warns_on_deploy() -> None:
    with override_settings(SESSION_COOKIE_DOMAIN=".example.com"):
        warning = only(check_session_cookie(), "sessionkit.W103")
    assert warning.level == checks.WARNING
    assert "SESSION_COOKIE_DOMAIN" in warning.msg
    assert "'.example.com'" in warning.msg


def test_session_cookie_several_problems_each_reported() -> None:
    with override_settings(
        SESSION_COOKIE_SAMESITE=None, SESSION_COOKIE_DOMAIN="example.com"
    ):
        assert ids(check_session_cookie()) == ["sessionkit.W101", "sessionkit.W103"]


# The model checks read database features.
@pytest.mark.django_db
@override_settings(
    SESSION_COOKIE_SAMESITE="None",
    SESSION_COOKIE_SECURE=False,
    SESSION_COOKIE_DOMAIN=".example.com",
)
def test_deploy_checks_run_only_with_deploy() -> None:
    assert our_ids(checks.run_checks(include_deployment_checks=False)) == []
    assert our_ids(checks.run_checks(include_deployment_checks=True)) == [
        "sessionkit.W102",
        "sessionkit.W103",
    ]


@pytest.mark.django_db
@override_settings(SESSION_COOKIE_DOMAIN=".example.com")
def test_deploy_checks_through_check_command() -> None:
    out = StringIO()
    call_command("check", stdout=out, stderr=out)
    assert "sessionkit.W103" not in out.getvalue()
    out = StringIO()
    call_command("check", "--deploy", stdout=out, stderr=out)
    assert "sessionkit.W103" in out.getvalue()


# -- Registration --------------------------------------------------------------


@override_settings(
    SESSION_ENGINE="django.contrib.sessions.backends.db",
    SESSIONKIT_STORE_IP="partial",
    SESSIONKIT_CLEANUP_BATCH_SIZE="100",
)
def test_run_checks_sessionkit_tag_reports_engine_and_settings() -> None:
    assert our_ids(checks.run_checks(tags=["sessionkit"])) == [
        "sessionkit.E003",
        "sessionkit.E005",
        "sessionkit.W001",
    ]


@override_settings(SESSION_COOKIE_DOMAIN=".example.com")
def test_run_checks_sessionkit_tag_includes_deploy_checks() -> None:
    assert our_ids(checks.run_checks(tags=["sessionkit"])) == []
    deploy = checks.run_checks(tags=["sessionkit"], include_deployment_checks=True)
    assert our_ids(deploy) == ["sessionkit.W103"]


def test_run_checks_sessionkit_tag_registered() -> None:
    assert "sessionkit" in checks.registry.registry.tags_available()


@pytest.mark.django_db
def test_run_checks_test_settings_clean() -> None:
    assert our_ids(checks.run_checks()) == []
    assert our_ids(checks.run_checks(include_deployment_checks=True)) == []


# -- E007-E013: policy settings --------------------------------------------------

ZERO_ALLOWED = {"ACTIVITY_RESOLUTION", "ROTATE_GRACE", "IDLE_WARNING"}


@pytest.mark.parametrize("name", DURATION_SETTINGS)
@pytest.mark.parametrize("value", ["30", timedelta(seconds=-1), -5, True, [60]])
def test_duration_setting_invalid_errors(name: str, value: Any) -> None:
    with override_settings(**{f"SESSIONKIT_{name}": value}):
        error = only(check_policy_settings(), "sessionkit.E007")
    assert f"SESSIONKIT_{name}" in error.msg
    assert error.hint


@pytest.mark.parametrize("name", DURATION_SETTINGS)
def test_duration_setting_zero(name: str) -> None:
    with override_settings(**{f"SESSIONKIT_{name}": 0}):
        found = ids(check_policy_settings())
    assert found == ([] if name in ZERO_ALLOWED else ["sessionkit.E007"])


@pytest.mark.parametrize("name", DURATION_SETTINGS)
@pytest.mark.parametrize("value", [None, 90, 2.5, timedelta(hours=1)])
def test_duration_setting_valid(name: str, value: Any) -> None:
    with override_settings(**{f"SESSIONKIT_{name}": value}):
        assert check_policy_settings() == []


@pytest.mark.parametrize(
    "value", ["tests.nowhere.policy", "tests.settings.SECRET_KEY", "", "nodots"]
)
def test_policy_setting_not_callable_errors(value: str) -> None:
    with override_settings(SESSIONKIT_POLICY=value):
        error = only(check_policy_settings(), "sessionkit.E008")
    assert "SESSIONKIT_POLICY" in error.msg


def test_policy_setting_callable_ok() -> None:
    with override_settings(SESSIONKIT_POLICY="django_sessionkit.policy.default_policy"):
        assert check_policy_settings() == []


@pytest.mark.parametrize("value", [["("], [5], "^/poll/", None, {"^/poll/"}])
def test_passive_urls_invalid_errors(value: Any) -> None:
    with override_settings(SESSIONKIT_PASSIVE_URLS=value):
        error = only(check_policy_settings(), "sessionkit.E009")
    assert "SESSIONKIT_PASSIVE_URLS" in error.msg


@pytest.mark.parametrize("value", [[], (), [r"^/poll/", r"/status$"]])
def test_passive_urls_valid(value: Any) -> None:
    with override_settings(SESSIONKIT_PASSIVE_URLS=value):
        assert check_policy_settings() == []


@pytest.mark.parametrize(
    ("name", "value", "check_id"),
    [
        ("ON_STALE_KEY", "ignore", "sessionkit.E010"),
        ("MAX_SESSIONS_PER_USER", 0, "sessionkit.E011"),
        ("MAX_SESSIONS_PER_USER", "3", "sessionkit.E011"),
        ("MAX_SESSIONS_PER_USER", True, "sessionkit.E011"),
        ("MAX_SESSIONS_POLICY", "evict_newest", "sessionkit.E012"),
        ("REVOKE_OTHERS_ON_PASSWORD_CHANGE", "yes", "sessionkit.E013"),
        ("CLEAR_SITE_DATA_ON_LOGOUT", 1, "sessionkit.E013"),
        ("NOTIFY_NEW_DEVICE", "yes", "sessionkit.E013"),
    ],
)
def test_policy_setting_invalid_errors(name: str, value: Any, check_id: str) -> None:
    with override_settings(**{f"SESSIONKIT_{name}": value}):
        error = only(check_policy_settings(), check_id)
    assert f"SESSIONKIT_{name}" in error.msg
    assert repr(value) in error.msg


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ON_STALE_KEY", "log"),
        ("MAX_SESSIONS_PER_USER", 1),
        ("MAX_SESSIONS_POLICY", "deny"),
        ("REVOKE_OTHERS_ON_PASSWORD_CHANGE", False),
        ("CLEAR_SITE_DATA_ON_LOGOUT", True),
    ],
)
def test_policy_setting_valid(name: str, value: Any) -> None:
    with override_settings(**{f"SESSIONKIT_{name}": value}):
        assert check_policy_settings() == []


# -- E020: the middleware ---------------------------------------------------------

OURS = "django_sessionkit.middleware.SessionKitMiddleware"
SESSIONS = "django.contrib.sessions.middleware.SessionMiddleware"
AUTH = "django.contrib.auth.middleware.AuthenticationMiddleware"


@pytest.mark.parametrize(
    "middleware", [[SESSIONS, AUTH], [SESSIONS, OURS, AUTH], [OURS, SESSIONS, AUTH]]
)
def test_middleware_missing_or_early_errors(middleware: list[str]) -> None:
    with override_settings(MIDDLEWARE=middleware):
        error = only(check_middleware(), "sessionkit.E020")
    assert OURS in error.msg
    assert AUTH in (error.hint or "")


def test_middleware_after_auth_ok() -> None:
    with override_settings(MIDDLEWARE=[SESSIONS, AUTH, OURS]):
        assert check_middleware() == []


def test_middleware_subclass_ok() -> None:
    with override_settings(
        MIDDLEWARE=[SESSIONS, AUTH, "tests.test_checks.ProjectMiddleware"]
    ):
        assert check_middleware() == []


def test_middleware_not_required_with_other_engine() -> None:
    with override_settings(
        SESSION_ENGINE="django.contrib.sessions.backends.db",
        MIDDLEWARE=[SESSIONS, AUTH],
    ):
        assert check_middleware() == []


# -- W104, W105: the __Host- prefix ------------------------------------------------


def test_host_prefix_suggested_when_possible() -> None:
    with override_settings(SESSION_COOKIE_SECURE=True):
        warning = only(check_session_cookie(), "sessionkit.W104")
    assert "__Host-" in warning.msg
    assert "__Host-sessionid" in (warning.hint or "")


def test_host_prefix_not_suggested_without_secure() -> None:
    with override_settings(SESSION_COOKIE_SECURE=False):
        assert check_session_cookie() == []


@pytest.mark.parametrize(
    "extra",
    [
        {"SESSION_COOKIE_SECURE": False},
        {"SESSION_COOKIE_SECURE": True, "SESSION_COOKIE_PATH": "/app/"},
        {"SESSION_COOKIE_SECURE": True, "SESSION_COOKIE_DOMAIN": "example.com"},
    ],
)
def test_host_prefix_that_browsers_reject_warns(extra: dict[str, Any]) -> None:
    with override_settings(SESSION_COOKIE_NAME="__Host-sessionid", **extra):
        found = ids(check_session_cookie())
    assert "sessionkit.W105" in found
    assert "sessionkit.W104" not in found


@pytest.mark.parametrize(
    "extra",
    [
        {"SESSION_COOKIE_SECURE": False},
        {"SESSION_COOKIE_SECURE": True, "SESSION_COOKIE_PATH": "/app/"},
        {"SESSION_COOKIE_SECURE": True, "SESSION_COOKIE_DOMAIN": "example.com"},
    ],
    ids=["not_secure", "path", "domain"],
)
def test_host_prefix_device_cookie_that_browsers_reject_warns(
    extra: dict[str, Any],
) -> None:
    # The device cookie takes Secure, Domain and Path from the session
    # cookie's settings (devices.set_device_cookie).
    with override_settings(SESSIONKIT_DEVICE_COOKIE_NAME="__Host-device", **extra):
        found = check_session_cookie()
    [warning] = [m for m in found if m.id == "sessionkit.W106"]
    assert warning.level == checks.WARNING
    assert "'__Host-device'" in warning.msg
    assert "SESSIONKIT_DEVICE_COOKIE_NAME" in warning.msg
    assert "SESSION_COOKIE_SECURE" in (warning.hint or "")
    assert "sessionkit.W105" not in ids(found)


def test_host_prefix_device_cookie_with_secure_ok() -> None:
    with override_settings(
        SESSIONKIT_DEVICE_COOKIE_NAME="__Host-device",
        SESSION_COOKIE_NAME="__Host-sessionid",
        SESSION_COOKIE_SECURE=True,
    ):
        assert check_session_cookie() == []


@pytest.mark.django_db
@override_settings(
    SESSIONKIT_DEVICE_COOKIE_NAME="__Host-device", SESSION_COOKIE_SECURE=False
)
def test_host_prefix_device_cookie_checked_only_with_deploy() -> None:
    assert "sessionkit.W106" not in ids(checks.run_checks())
    assert "sessionkit.W106" in ids(checks.run_checks(include_deployment_checks=True))


@pytest.mark.django_db
@override_settings(SESSION_COOKIE_SECURE=False, SESSION_COOKIE_HTTPONLY=False)
def test_weak_secure_and_httponly_reported_by_django_deploy_checks() -> None:
    # Django's own deploy checks cover these two; ours do not repeat them.
    found = ids(checks.run_checks(include_deployment_checks=True))
    assert "security.W012" in found
    assert "security.W015" in found


# -- E021: the device cookie's name ------------------------------------------------


@pytest.mark.parametrize(
    "value", ["", "two words", "semi;colon", None, 7, "sessionid", "csrftoken"]
)
def test_device_cookie_name_invalid_errors(value: Any) -> None:
    with override_settings(SESSIONKIT_DEVICE_COOKIE_NAME=value):
        error = only(check_settings(), "sessionkit.E021")
    assert "SESSIONKIT_DEVICE_COOKIE_NAME" in error.msg
    assert repr(value) in error.msg


@pytest.mark.parametrize("value", ["sessionkit_device", "__Host-device", "dev.id"])
def test_device_cookie_name_valid(value: Any) -> None:
    with override_settings(SESSIONKIT_DEVICE_COOKIE_NAME=value):
        assert "sessionkit.E021" not in {m.id for m in check_settings()}


# -- E022: the location resolver ---------------------------------------------------

GEOIP2_RESOLVER = "django_sessionkit.location.geoip2"


def test_location_resolver_unset_ok() -> None:
    assert check_location_resolver() == []


@pytest.mark.parametrize(
    "value",
    [
        "tests.nowhere.resolve",
        "tests.settings.SECRET_KEY",
        "django_sessionkit.location.nothing",
        "",
        "nodots",
        5,
    ],
)
def test_location_resolver_not_callable_errors(value: Any) -> None:
    with override_settings(SESSIONKIT_LOCATION_RESOLVER=value):
        error = only(check_location_resolver(), "sessionkit.E022")
    assert error.level == checks.ERROR
    assert "SESSIONKIT_LOCATION_RESOLVER" in error.msg
    assert repr(value) in error.msg
    assert error.hint is not None
    assert GEOIP2_RESOLVER in error.hint


def test_location_resolver_callable_ok() -> None:
    with override_settings(SESSIONKIT_LOCATION_RESOLVER="tests.test_location.echo"):
        assert check_location_resolver() == []


def test_location_resolver_geoip2_without_geoip_path_errors() -> None:
    with override_settings(SESSIONKIT_LOCATION_RESOLVER=GEOIP2_RESOLVER):
        error = only(check_location_resolver(), "sessionkit.E022")
    assert "SESSIONKIT_LOCATION_RESOLVER" in error.msg
    assert "GEOIP_PATH is not set" in error.msg
    assert error.hint is not None
    assert "GEOIP_PATH" in error.hint


def test_location_resolver_geoip2_without_package_errors(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # What Python does for a package that is not installed.
    monkeypatch.setitem(sys.modules, "geoip2", None)
    monkeypatch.setitem(sys.modules, "geoip2.database", None)
    with override_settings(
        SESSIONKIT_LOCATION_RESOLVER=GEOIP2_RESOLVER, GEOIP_PATH=str(tmp_path)
    ):
        error = only(check_location_resolver(), "sessionkit.E022")
    assert "geoip2 package is not installed" in error.msg
    assert error.hint is not None
    assert "pip install geoip2" in error.hint


def test_location_resolver_geoip2_configured_ok(tmp_path: Path) -> None:
    with override_settings(
        SESSIONKIT_LOCATION_RESOLVER=GEOIP2_RESOLVER, GEOIP_PATH=str(tmp_path)
    ):
        assert check_location_resolver() == []


def test_location_resolver_checked_by_sessionkit_tag() -> None:
    with override_settings(SESSIONKIT_LOCATION_RESOLVER="nodots"):
        messages = checks.run_checks(tags=["sessionkit"])
    assert "sessionkit.E022" in our_ids(messages)


# -- E027-E029: limits on wrong re-authentication passwords -------------------------


@pytest.mark.parametrize(
    ("name", "value", "check_id"),
    [
        ("REAUTH_FAILURE_LIMIT", 0, "sessionkit.E027"),
        ("REAUTH_FAILURE_LIMIT", "5", "sessionkit.E027"),
        ("REAUTH_FAILURE_LIMIT", True, "sessionkit.E027"),
        ("REAUTH_FAILURE_LIMIT", 2.5, "sessionkit.E027"),
        ("REAUTH_FAILURE_WINDOW", None, "sessionkit.E028"),
        ("REAUTH_REVOKE_AFTER", 0, "sessionkit.E029"),
        ("REAUTH_REVOKE_AFTER", "20", "sessionkit.E029"),
        ("REAUTH_REVOKE_AFTER", False, "sessionkit.E029"),
    ],
)
def test_reauth_setting_invalid_errors(name: str, value: Any, check_id: str) -> None:
    with override_settings(**{f"SESSIONKIT_{name}": value}):
        error = only(check_reauth_settings(), check_id)
    assert f"SESSIONKIT_{name}" in error.msg
    assert repr(value) in error.msg
    assert error.hint


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("REAUTH_FAILURE_LIMIT", 1),
        ("REAUTH_FAILURE_LIMIT", None),
        ("REAUTH_FAILURE_WINDOW", 60),
        ("REAUTH_FAILURE_WINDOW", timedelta(hours=1)),
        ("REAUTH_REVOKE_AFTER", 1),
        ("REAUTH_REVOKE_AFTER", None),
    ],
)
def test_reauth_setting_valid(name: str, value: Any) -> None:
    with override_settings(**{f"SESSIONKIT_{name}": value}):
        assert check_reauth_settings() == []


def test_reauth_setting_window_none_without_limit_valid() -> None:
    with override_settings(
        SESSIONKIT_REAUTH_FAILURE_LIMIT=None, SESSIONKIT_REAUTH_FAILURE_WINDOW=None
    ):
        assert check_reauth_settings() == []


def test_reauth_setting_defaults_valid() -> None:
    assert check_reauth_settings() == []


def test_event_retention_shorter_than_reauth_window_errors() -> None:
    with override_settings(
        SESSIONKIT_EVENT_RETENTION=timedelta(minutes=10),
        SESSIONKIT_REAUTH_FAILURE_WINDOW=timedelta(minutes=15),
    ):
        error = only(check_reauth_settings(), "sessionkit.E030")
    assert "SESSIONKIT_EVENT_RETENTION" in error.msg
    assert error.hint


@pytest.mark.parametrize(
    "settings_",
    [
        {"SESSIONKIT_EVENT_RETENTION": timedelta(minutes=15)},
        {"SESSIONKIT_EVENT_RETENTION": None},
        {
            "SESSIONKIT_EVENT_RETENTION": timedelta(minutes=1),
            "SESSIONKIT_REAUTH_FAILURE_LIMIT": None,
        },
    ],
)
def test_event_retention_not_shorter_than_reauth_window_valid(
    settings_: dict[str, Any],
) -> None:
    with override_settings(**settings_):
        assert check_reauth_settings() == []
