"""Typed access to the ``SESSIONKIT_*`` settings.

Every property reads ``django.conf.settings``; the value is remembered until a
``SESSIONKIT_*`` setting changes (``override_settings``, ``setting_changed``),
so tests can change settings and nothing is read at import time. Invalid
values are reported by the system checks in :mod:`django_sessionkit.checks`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any, Literal

from django.conf import settings
from django.core.signals import setting_changed

StoreIP = Literal["full", "truncated", "none"]
STORE_IP_CHOICES: tuple[str, ...] = ("full", "truncated", "none")
OnStaleKey = Literal["revoke", "log"]
ON_STALE_KEY_CHOICES: tuple[str, ...] = ("revoke", "log")
MaxSessionsPolicy = Literal["evict_oldest", "deny"]
MAX_SESSIONS_POLICY_CHOICES: tuple[str, ...] = ("evict_oldest", "deny")

#: Settings that hold a duration: ``timedelta``, seconds, or ``None`` (off).
DURATION_SETTINGS: tuple[str, ...] = (
    "IDLE_TIMEOUT",
    "ABSOLUTE_TIMEOUT",
    "REMEMBER_ME_IDLE_TIMEOUT",
    "REMEMBER_ME_ABSOLUTE_TIMEOUT",
    "ACTIVITY_RESOLUTION",
    "ROTATE_INTERVAL",
    "ROTATE_GRACE",
    "EVENT_RETENTION",
    "IDLE_WARNING",
    "CACHE_MAX_AGE",
    "CACHE_SWEEP_INTERVAL",
    "CACHE_WAIT_TIMEOUT",
    "REAUTH_MAX_AGE",
    "DEVICE_COOKIE_AGE",
    "REAUTH_FAILURE_WINDOW",
    "DEVICE_RETENTION",
    "CONSENT_MAX_AGE",
    "CONSENT_RETENTION",
)


def to_timedelta(value: Any) -> Any:
    """Return ``value`` as a ``timedelta`` when it is a number of seconds.

    Anything else is returned as it is; the system checks report values that
    are neither a ``timedelta``, a number of seconds nor ``None``.
    """
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    return value


class Settings:
    """One property per setting, with its default inline.

    Values are remembered after their first read and forgotten whenever a
    ``SESSIONKIT_*`` setting changes (``override_settings``, the
    ``setting_changed`` signal, or settings configured anew): reading an
    unset Django setting raises and catches an ``AttributeError`` inside
    Django, which every request would otherwise pay for several times.
    """

    def __init__(self) -> None:
        self._values: dict[str, Any] = {}
        self._source: object = None

    def _check_source(self) -> None:
        # override_settings swaps the object behind django.conf.settings.
        source = getattr(settings, "_wrapped", None)
        if source is not self._source:
            self._values.clear()
            self._source = source

    def _get(self, name: str, default: Any) -> Any:
        self._check_source()
        try:
            return self._values[name]
        except KeyError:
            value = getattr(settings, f"SESSIONKIT_{name}", default)
            self._values[name] = value
            return value

    def derived(self, name: str, make: Callable[[], Any]) -> Any:
        """A value computed from settings, remembered like the settings are."""
        self._check_source()
        key = f"derived:{name}"
        try:
            return self._values[key]
        except KeyError:
            value = self._values[key] = make()
            return value

    def reload(self) -> None:
        """Forget the remembered values: read the settings again."""
        self._values.clear()

    def _duration(self, name: str, default: timedelta | None) -> timedelta | None:
        value: timedelta | None = to_timedelta(self._get(name, default))
        return value

    @property
    def TRUSTED_PROXY_COUNT(self) -> int:
        """How many reverse proxies in front of Django append to the IP header."""
        value: int = self._get("TRUSTED_PROXY_COUNT", 0)
        return value

    @property
    def CLIENT_IP_HEADER(self) -> str:
        """The HTTP header the trusted proxies append the client address to."""
        value: str = self._get("CLIENT_IP_HEADER", "X-Forwarded-For")
        return value

    @property
    def STORE_IP(self) -> StoreIP:
        """How much of the client IP address is stored with a session."""
        value: StoreIP = self._get("STORE_IP", "full")
        return value

    @property
    def STORE_USER_AGENT(self) -> bool:
        """Whether the browser's User-Agent string is stored with a session."""
        value: bool = self._get("STORE_USER_AGENT", True)
        return value

    @property
    def CLEANUP_BATCH_SIZE(self) -> int:
        """How many expired sessions one DELETE statement removes."""
        value: int = self._get("CLEANUP_BATCH_SIZE", 1000)
        return value

    # -- Policy: timeouts, activity, rotation --------------------------------

    @property
    def IDLE_TIMEOUT(self) -> timedelta | None:
        """How long a signed-in session may stay unused."""
        return self._duration("IDLE_TIMEOUT", timedelta(minutes=30))

    @property
    def ABSOLUTE_TIMEOUT(self) -> timedelta | None:
        """How long a signed-in session may last from its sign-in, at most."""
        return self._duration("ABSOLUTE_TIMEOUT", timedelta(hours=12))

    @property
    def REMEMBER_ME_IDLE_TIMEOUT(self) -> timedelta | None:
        """The idle timeout of sessions marked with ``remember_me()``."""
        return self._duration("REMEMBER_ME_IDLE_TIMEOUT", timedelta(days=14))

    @property
    def REMEMBER_ME_ABSOLUTE_TIMEOUT(self) -> timedelta | None:
        """The absolute timeout of sessions marked with ``remember_me()``."""
        return self._duration("REMEMBER_ME_ABSOLUTE_TIMEOUT", timedelta(days=30))

    @property
    def POLICY(self) -> str | None:
        """Dotted path to a ``(request, user) -> Policy`` callable."""
        value: str | None = self._get("POLICY", None)
        return value

    @property
    def ACTIVITY_RESOLUTION(self) -> timedelta | None:
        """How often, at most, activity is written for one session."""
        return self._duration("ACTIVITY_RESOLUTION", timedelta(seconds=60))

    @property
    def PASSIVE_URLS(self) -> Sequence[str]:
        """Regexes of paths whose requests never extend the idle deadline."""
        value: Sequence[str] = self._get("PASSIVE_URLS", ())
        return value

    @property
    def ROTATE_INTERVAL(self) -> timedelta | None:
        """How often a signed-in session's key is rotated while it is used."""
        return self._duration("ROTATE_INTERVAL", timedelta(minutes=15))

    @property
    def ROTATE_GRACE(self) -> timedelta | None:
        """How long the previous key stays valid after a periodic rotation."""
        return self._duration("ROTATE_GRACE", timedelta(seconds=60))

    @property
    def ON_STALE_KEY(self) -> OnStaleKey:
        """What a previous key presented after its grace window does."""
        value: OnStaleKey = self._get("ON_STALE_KEY", "revoke")
        return value

    # -- Revocation, limits, hygiene, events ----------------------------------

    @property
    def REVOKE_OTHERS_ON_PASSWORD_CHANGE(self) -> bool:
        """Whether a password change signs the user out everywhere else."""
        value: bool = self._get("REVOKE_OTHERS_ON_PASSWORD_CHANGE", True)
        return value

    @property
    def MAX_SESSIONS_PER_USER(self) -> int | None:
        """How many live sessions one user may have, or ``None``."""
        value: int | None = self._get("MAX_SESSIONS_PER_USER", None)
        return value

    @property
    def MAX_SESSIONS_POLICY(self) -> MaxSessionsPolicy:
        """What a sign-in beyond ``MAX_SESSIONS_PER_USER`` does."""
        value: MaxSessionsPolicy = self._get("MAX_SESSIONS_POLICY", "evict_oldest")
        return value

    @property
    def CLEAR_SITE_DATA_ON_LOGOUT(self) -> bool:
        """Whether sign-out responses carry ``Clear-Site-Data``."""
        value: bool = self._get("CLEAR_SITE_DATA_ON_LOGOUT", False)
        return value

    @property
    def EVENT_RETENTION(self) -> timedelta | None:
        """How long ``SessionEvent`` rows are kept by cleanup."""
        return self._duration("EVENT_RETENTION", timedelta(days=90))

    # -- The cached_db store ---------------------------------------------------

    @property
    def CACHE_MAX_AGE(self) -> timedelta | None:
        """How long a cached session entry is trusted without the database."""
        return self._duration("CACHE_MAX_AGE", timedelta(minutes=5))

    @property
    def CACHE_SWEEP_INTERVAL(self) -> timedelta | None:
        """How often each process writes tombstones others could not write."""
        return self._duration("CACHE_SWEEP_INTERVAL", timedelta(seconds=5))

    @property
    def CACHE_WAIT_REPLICAS(self) -> int:
        """How many Redis replicas must keep a tombstone before it counts."""
        value: int = self._get("CACHE_WAIT_REPLICAS", 0)
        return value

    @property
    def CACHE_WAIT_TIMEOUT(self) -> timedelta | None:
        """How long a tombstone write waits for those replicas."""
        return self._duration("CACHE_WAIT_TIMEOUT", timedelta(milliseconds=100))

    @property
    def IDLE_WARNING(self) -> timedelta | None:
        """How long before idle expiry the browser warns."""
        return self._duration("IDLE_WARNING", timedelta(minutes=2))

    @property
    def REAUTH_MAX_AGE(self) -> timedelta | None:
        """How long an authentication counts as recent for sudo mode."""
        return self._duration("REAUTH_MAX_AGE", timedelta(minutes=10))

    @property
    def REAUTH_FAILURE_LIMIT(self) -> int | None:
        """How many wrong re-authentication passwords lock a user out."""
        value: int | None = self._get("REAUTH_FAILURE_LIMIT", 5)
        return value

    @property
    def REAUTH_FAILURE_WINDOW(self) -> timedelta | None:
        """How long a wrong re-authentication password counts for the limit."""
        return self._duration("REAUTH_FAILURE_WINDOW", timedelta(minutes=15))

    @property
    def REAUTH_REVOKE_AFTER(self) -> int | None:
        """How many wrong re-authentication passwords revoke the session."""
        value: int | None = self._get("REAUTH_REVOKE_AFTER", 20)
        return value

    # -- Devices -------------------------------------------------------------

    @property
    def DEVICE_COOKIE_NAME(self) -> str:
        """The name of the long-lived cookie that recognises a device."""
        value: str = self._get("DEVICE_COOKIE_NAME", "sessionkit_device")
        return value

    @property
    def DEVICE_COOKIE_AGE(self) -> timedelta | None:
        """How long the device cookie lasts (``None``: until the browser closes)."""
        return self._duration("DEVICE_COOKIE_AGE", timedelta(days=365))

    @property
    def DEVICE_RETENTION(self) -> timedelta | None:
        """How long a device without sessions is kept after it was last seen."""
        return self._duration("DEVICE_RETENTION", timedelta(days=90))

    @property
    def NOTIFY_NEW_DEVICE(self) -> bool:
        """Whether a sign-in from a new device sends the user an email."""
        value: bool = self._get("NOTIFY_NEW_DEVICE", False)
        return value

    # -- Consent ---------------------------------------------------------------

    @property
    def CONSENT_CATEGORIES(self) -> Any:
        """The consent categories (a list of dicts), or ``None`` for the
        default ones (``consent.categories.DEFAULT_CATEGORIES``)."""
        return self._get("CONSENT_CATEGORIES", None)

    @property
    def CONSENT_REVISION(self) -> int:
        """The revision of the consent text; raising it asks everyone again."""
        value: int = self._get("CONSENT_REVISION", 1)
        return value

    @property
    def CONSENT_MAX_AGE(self) -> timedelta | None:
        """How long a visitor's decision lasts before they are asked again."""
        return self._duration("CONSENT_MAX_AGE", timedelta(days=182))

    @property
    def CONSENT_COOKIE_NAME(self) -> str:
        """The name of the cookie that holds the visitor's decision."""
        value: str = self._get("CONSENT_COOKIE_NAME", "sessionkit_consent")
        return value

    @property
    def CONSENT_RETENTION(self) -> timedelta | None:
        """How long ``ConsentRecord`` rows (the proof) are kept by cleanup."""
        return self._duration("CONSENT_RETENTION", timedelta(days=3 * 365))

    @property
    def LOCATION_RESOLVER(self) -> str | None:
        """Dotted path to an ``(ip) -> str | None`` callable naming a place."""
        value: str | None = self._get("LOCATION_RESOLVER", None)
        return value


conf = Settings()


def _setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting.startswith("SESSIONKIT_"):
        conf.reload()


setting_changed.connect(_setting_changed, dispatch_uid="django_sessionkit.conf")
