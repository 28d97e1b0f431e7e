"""Typed access to the ``SESSIONKIT_*`` settings.

Every property reads ``django.conf.settings`` on each access, so
``override_settings`` works and nothing is cached at import time. Invalid
values are reported by the system checks in :mod:`django_sessionkit.checks`.
"""

from __future__ import annotations

from typing import Any, Literal

from django.conf import settings

StoreIP = Literal["full", "truncated", "none"]
STORE_IP_CHOICES: tuple[str, ...] = ("full", "truncated", "none")


class Settings:
    """One property per setting, with its default inline."""

    @staticmethod
    def _get(name: str, default: Any) -> Any:
        return getattr(settings, f"SESSIONKIT_{name}", default)

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


conf = Settings()
