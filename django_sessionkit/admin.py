"""Admin pages: sessions are shown by id and metadata, never by key."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.exceptions import FieldDoesNotExist
from django.db.models import Field, ForeignObjectRel, Model, QuerySet
from django.db.models.constants import LOOKUP_SEP
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from django_sessionkit.events import reason_label
from django_sessionkit.models import (
    CachePurge,
    ConsentRecord,
    Device,
    Session,
    SessionEvent,
)
from django_sessionkit.revocation import revoke_device, revoke_session, revoke_sessions

if TYPE_CHECKING:
    _ModelAdmin = admin.ModelAdmin[Any]
else:
    _ModelAdmin = admin.ModelAdmin


#: The columns no admin page shows, lists, searches or filters on: the hashes
#: that find a session or a device, and the encoded session data. A list
#: filter in the query string (``?key_hash__startswith=ab``) would otherwise
#: let a view-only staff user recover them a character at a time.
HIDDEN_FIELDS: frozenset[Field[Any, Any] | ForeignObjectRel] = frozenset(
    model._meta.get_field(name)
    for model, name in (
        (Session, "key_hash"),
        (Session, "previous_key_hash"),
        (Session, "session_data"),
        (Device, "token_hash"),
        (CachePurge, "key_hash"),
    )
)


def reaches_hidden_field(model: type[Model], lookup: str) -> bool:
    """Whether ``lookup`` (``device__token_hash__startswith``), followed from
    ``model`` across any relations, names one of :data:`HIDDEN_FIELDS`."""
    for part in lookup.split(LOOKUP_SEP):
        try:
            field = model._meta.get_field(part)
        except FieldDoesNotExist:
            # A transform or lookup ("startswith"): the path ends here.
            return False
        if field in HIDDEN_FIELDS:
            return True
        if field.related_model is None or not field.is_relation:
            return False
        model = field.related_model
    return False


class ReadOnlyAdmin(_ModelAdmin):
    """Rows are written by the app itself; staff only read or remove them."""

    extra_search_fields: tuple[str, ...] = ()

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest) -> bool:
        # Refused lookups make Django answer 400 (DisallowedModelAdminLookup),
        # whatever list_filter a subclass declares.
        if reaches_hidden_field(self.model, lookup):
            return False
        return super().lookup_allowed(lookup, value, request)

    def get_search_fields(self, request: HttpRequest) -> tuple[str, ...]:
        # Whatever the user model calls its username field.
        username = f"user__{get_user_model().USERNAME_FIELD}"
        return (username, *self.extra_search_fields)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def signed_out(self, request: HttpRequest, count: int) -> None:
        """Tell the staff user how many sessions an action signed out."""
        self.message_user(
            request,
            ngettext(
                "%(count)s session was signed out.",
                "%(count)s sessions were signed out.",
                count,
            )
            % {"count": count},
            messages.SUCCESS,
        )

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Session)
class SessionAdmin(ReadOnlyAdmin):
    """Signing out or deleting sessions here revokes them through the
    revocation API: the same effect and audit trail as every other door."""

    actions = ("revoke_selected",)

    list_select_related = ("user",)
    extra_search_fields = ("ip",)
    date_hierarchy = "created_at"
    ordering = ("-last_seen_at",)

    def get_list_display(self, request: HttpRequest) -> tuple[str, ...]:
        return (
            "id",
            "user",
            "authenticated_at",
            "last_seen_at",
            "expire_date",
            "absolute_expire_date",
            "ip",
        )

    def get_list_filter(self, request: HttpRequest) -> tuple[str, ...]:
        return ("authenticated_at", "expire_date")

    def get_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        # Neither the key hash nor the encoded data is shown.
        return (
            "id",
            "user",
            "device",
            "created_at",
            "authenticated_at",
            "last_seen_at",
            "expire_date",
            "absolute_expire_date",
            "ip",
            "user_agent",
        )

    @admin.action(
        description=_("Sign out the selected sessions"), permissions=["delete"]
    )
    def revoke_selected(
        self, request: HttpRequest, queryset: QuerySet[Session]
    ) -> None:
        count = revoke_sessions(queryset, reason="admin", by=request.user)
        self.signed_out(request, count)

    def delete_model(self, request: HttpRequest, obj: Session) -> None:
        revoke_session(obj, reason="admin", by=request.user, request=request)

    def delete_queryset(
        self, request: HttpRequest, queryset: QuerySet[Session]
    ) -> None:
        revoke_sessions(queryset, reason="admin", by=request.user)

    def get_readonly_fields(
        self, request: HttpRequest, obj: Any = None
    ) -> tuple[str, ...]:
        return self.get_fields(request, obj)


@admin.register(Device)
class DeviceAdmin(ReadOnlyAdmin):
    """Signing out or deleting devices here revokes their sessions through
    the revocation API first (events, signals, cache purge), as the user's
    own "sign out this device" does."""

    actions = ("revoke_selected",)

    list_select_related = ("user",)
    extra_search_fields = ("ip", "user_agent", "name")
    ordering = ("-last_seen_at",)

    def get_list_display(self, request: HttpRequest) -> tuple[str, ...]:
        return ("id", "user", "name", "browser", "os", "kind", "last_seen_at", "ip")

    def get_list_filter(self, request: HttpRequest) -> tuple[str, ...]:
        return ("kind", "last_seen_at")

    def get_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        # The token's hash is not shown, like a session's key hash.
        return (
            "id",
            "user",
            "name",
            "browser",
            "os",
            "device_family",
            "kind",
            "created_at",
            "last_seen_at",
            "ip",
            "user_agent",
        )

    def get_readonly_fields(
        self, request: HttpRequest, obj: Any = None
    ) -> tuple[str, ...]:
        return self.get_fields(request, obj)

    def _revoke(self, request: HttpRequest, devices: QuerySet[Device]) -> int:
        return sum(
            revoke_device(device, reason="admin", by=request.user) for device in devices
        )

    @admin.action(
        description=_("Sign out the selected devices"), permissions=["delete"]
    )
    def revoke_selected(self, request: HttpRequest, queryset: QuerySet[Device]) -> None:
        count = self._revoke(request, queryset)
        self.signed_out(request, count)

    def delete_model(self, request: HttpRequest, obj: Device) -> None:
        # Its sessions end through the revocation API, not by cascade.
        revoke_device(obj, reason="admin", by=request.user)
        super().delete_model(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Device]) -> None:
        self._revoke(request, queryset)
        super().delete_queryset(request, queryset)


@admin.register(SessionEvent)
class SessionEventAdmin(ReadOnlyAdmin):
    list_select_related = ("user", "actor")
    extra_search_fields = ("ip", "reason")
    date_hierarchy = "created_at"

    def get_list_display(self, request: HttpRequest) -> tuple[str, ...]:
        return (
            "created_at",
            "kind",
            "session_id",
            "user",
            "actor",
            "reason_words",
            "ip",
        )

    def get_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        return (
            "created_at",
            "kind",
            "session_id",
            "user",
            "actor",
            "device",
            "ip",
            "reason_words",
            "detail",
        )

    def get_readonly_fields(
        self, request: HttpRequest, obj: Any = None
    ) -> tuple[str, ...]:
        return self.get_fields(request, obj)

    @admin.display(description=_("reason"), ordering="reason")
    def reason_words(self, obj: SessionEvent) -> str:
        # The stored code (searchable) is shown as translated words.
        return reason_label(obj.reason)

    def get_list_filter(self, request: HttpRequest) -> tuple[str, ...]:
        return ("kind", "created_at")

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # The audit trail is pruned by retention, not by hand.
        return False


@admin.register(ConsentRecord)
class ConsentRecordAdmin(ReadOnlyAdmin):
    """The proof of consent: read only, pruned by retention, never edited."""

    list_select_related = ("user",)
    extra_search_fields = ("consent_id",)
    date_hierarchy = "created_at"

    def get_list_display(self, request: HttpRequest) -> tuple[str, ...]:
        return ("created_at", "consent_id", "revision", "source", "action", "user")

    def get_list_filter(self, request: HttpRequest) -> tuple[str, ...]:
        return ("revision", "source", "action", "created_at")

    def get_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        return (
            "created_at",
            "consent_id",
            "revision",
            "source",
            "action",
            "choices",
            "gpc",
            "user",
            "ip",
        )

    def get_readonly_fields(
        self, request: HttpRequest, obj: Any = None
    ) -> tuple[str, ...]:
        return self.get_fields(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Proof is kept for SESSIONKIT_CONSENT_RETENTION, not removed by hand.
        return False
