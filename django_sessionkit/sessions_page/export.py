"""The sessions page's export: everything stored about the user's devices,
sessions, events and consent decisions, as a JSON download (:func:`export`) or a dict
(:func:`export_data`).

Never a key, a key hash, a device token's hash or a session's data; an
event someone else caused names no one and has no address.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.http import HttpRequest, HttpResponseBase, JsonResponse
from django.utils import timezone
from django.utils.http import content_disposition_header
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from django_sessionkit.http import current_record, utc_iso
from django_sessionkit.models import ConsentRecord, Device, Session, SessionEvent
from django_sessionkit.reauth import recent_auth_required
from django_sessionkit.sessions_page.data import devices_of, sessions_of

#: The ``version`` of the export's format.
EXPORT_VERSION = 1
#: The fields of each row in the export, by model; ``*_id`` is the foreign key.
EXPORT_DEVICE_FIELDS: tuple[str, ...] = (
    "id",
    "name",
    "created_at",
    "last_seen_at",
    "user_agent",
    "browser",
    "os",
    "device_family",
    "kind",
    "ip",
)
EXPORT_SESSION_FIELDS: tuple[str, ...] = (
    "id",
    "device_id",
    "created_at",
    "authenticated_at",
    "last_seen_at",
    "expire_date",
    "absolute_expire_date",
    "ip",
    "user_agent",
    "remember_me",
    "rotated_at",
    "rotate_due",
    "signed_in_by_import",
)
EXPORT_EVENT_FIELDS: tuple[str, ...] = (
    "id",
    "kind",
    "session_id",
    "device_id",
    "ip",
    "created_at",
    "reason",
    "detail",
)
EXPORT_CONSENT_FIELDS: tuple[str, ...] = (
    "id",
    "consent_id",
    "created_at",
    "revision",
    "source",
    "action",
    "choices",
    "gpc",
    "ip",
)
#: What the export leaves out: credentials (as hashes), the session's data,
#: and the user (who is the person downloading). An event's ``actor`` is
#: exported as ``"self"``, ``"other"`` or ``null``, never as another user,
#: and the IP address of an event someone else caused is left out.
EXPORT_EXCLUDED: dict[type[Any], frozenset[str]] = {
    Device: frozenset({"user_id", "token_hash"}),
    Session: frozenset({"user_id", "key_hash", "previous_key_hash", "session_data"}),
    SessionEvent: frozenset({"user_id", "actor_id"}),
    ConsentRecord: frozenset({"user_id"}),
}


def _value(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    return utc_iso(value) if isinstance(value, datetime) else value


def _rows(objects: Iterable[Any], fields: tuple[str, ...]) -> list[dict[str, Any]]:
    return [{name: _value(getattr(obj, name)) for name in fields} for obj in objects]


def _actor(event: SessionEvent, user: Any) -> str | None:
    if event.actor_id is None:
        return None
    return "self" if event.actor_id == user.pk else "other"


def export_data(user: Any, *, current: Session | None = None) -> dict[str, Any]:
    """Everything stored about ``user``'s devices, sessions, events and
    consent decisions (made while signed in), as a JSON-ready dict (see the
    docs for its format); never a key, a key hash, a device token's hash or
    a session's data."""
    now = timezone.now()
    sessions = list(sessions_of(user).order_by("created_at", "pk"))
    live = set(sessions_of(user).live(now).values_list("pk", flat=True))
    session_rows = _rows(sessions, EXPORT_SESSION_FIELDS)
    for record, row in zip(sessions, session_rows, strict=True):
        row["live"] = record.pk in live
        row["current"] = current is not None and record.pk == current.pk
    events = list(
        SessionEvent.objects.filter(user_id=user.pk).order_by("created_at", "pk")
    )
    event_rows = _rows(events, EXPORT_EVENT_FIELDS)
    for event, row in zip(events, event_rows, strict=True):
        row["actor"] = _actor(event, user)
        if row["actor"] == "other":
            # The address is the other person's (staff signing the user
            # out, say): theirs, not the user's, to download.
            row["ip"] = None
    return {
        "format": "django-sessionkit-export",
        "version": EXPORT_VERSION,
        "exported_at": utc_iso(now),
        "user": {"id": user.pk, "username": user.get_username()},
        "devices": _rows(
            devices_of(user).order_by("created_at", "pk"), EXPORT_DEVICE_FIELDS
        ),
        "sessions": session_rows,
        "events": event_rows,
        "consents": _rows(
            ConsentRecord.objects.filter(user_id=user.pk).order_by("created_at", "pk"),
            EXPORT_CONSENT_FIELDS,
        ),
    }


@never_cache
@require_safe
@recent_auth_required()
def export(request: HttpRequest) -> HttpResponseBase:
    """Download everything stored about the user's devices, sessions and
    consent decisions (JSON).

    It holds every address and user agent: like the actions, it needs a
    recent authentication.
    """
    data = export_data(request.user, current=current_record(request))
    response = JsonResponse(data, json_dumps_params={"indent": 2})
    filename = f"sessionkit-{timezone.localdate().isoformat()}.json"
    response["Content-Disposition"] = content_disposition_header(True, filename)
    return response
