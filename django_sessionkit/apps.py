from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SessionKitConfig(AppConfig):
    name = "django_sessionkit"
    label = "sessionkit"
    verbose_name = _("Sessions and devices")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django_sessionkit import checks, receivers  # noqa: F401

        receivers.connect_user_proxies()
        receivers.connect_privilege_tables()
