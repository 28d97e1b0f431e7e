"""The user's own "Sessions and devices" page, its actions, its JSON and export.

The views are thin: the page reads the signed-in user's own rows, and each
action checks that the session or device it names belongs to the requesting
user (404 otherwise) and calls the revocation API of
:mod:`django_sessionkit.revocation`, so its effect and audit trail are those
of every other door. Sessions and devices are addressed by ``id`` only: no
key, key hash or device token is ever read here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.db import router
from django.db.models import Case, Count, Q, QuerySet, Value, When
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    HttpResponseRedirect,
    JsonResponse,
)
from django.shortcuts import resolve_url
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.http import content_disposition_header
from django.utils.timesince import timesince
from django.utils.translation import gettext as _
from django.utils.translation import ngettext, npgettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST, require_safe
from django.views.decorators.vary import vary_on_headers

from django_sessionkit.forms import DeviceNameForm
from django_sessionkit.http import current_record, sign_in_response, utc_iso, wants_json
from django_sessionkit.json_errors import json_errors
from django_sessionkit.lifecycle import sign_out_revoked
from django_sessionkit.models import (
    UNKNOWN,
    Device,
    Session,
    SessionEvent,
    SessionQuerySet,
)
from django_sessionkit.reauth import (
    recent_auth_required,
)
from django_sessionkit.revocation import (
    revoke_device,
    revoke_session,
    revoke_user_sessions,
)

#: The template of :func:`sessions`.
TEMPLATE_NAME = "django_sessionkit/sessions.html"
#: How many sessions one page of :func:`sessions` (and its JSON) shows.
PAGE_SIZE = 50

#: The ``reason`` of the ``revoke`` events each action writes.
REASON_SESSION = "user_signed_out"
REASON_DEVICE = "user_signed_out_device"
REASON_OTHERS = "user_signed_out_others"

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
#: What the export leaves out: credentials (as hashes), the session's data,
#: and the user (who is the person downloading). An event's ``actor`` is
#: exported as ``"self"``, ``"other"`` or ``null``, never as another user,
#: and the IP address of an event someone else caused is left out.
EXPORT_EXCLUDED: dict[type[Any], frozenset[str]] = {
    Device: frozenset({"user_id", "token_hash"}),
    Session: frozenset({"user_id", "key_hash", "previous_key_hash", "session_data"}),
    SessionEvent: frozenset({"user_id", "actor_id"}),
}

# Never loaded for the page: credentials and the session's data.
_SESSION_SECRETS = ("key_hash", "previous_key_hash", "session_data")
_JUST_NOW = timedelta(minutes=1)


# -- Rows of the requesting user --------------------------------------------------


def _sessions_of(user: Any) -> SessionQuerySet:
    # The primary: a session revoked a moment ago must not be listed again,
    # and ownership is decided where revocation writes.
    rows = Session.objects.using(router.db_for_write(Session))
    return rows.of_user(user).defer(*_SESSION_SECRETS)


def _devices_of(user: Any) -> QuerySet[Device]:
    devices = Device.objects.using(router.db_for_write(Device))
    return devices.filter(user_id=user.pk).defer("token_hash")


class _Locations:
    """Location hook calls, one per distinct IP address per page."""

    def __init__(self) -> None:
        self._known: dict[str, str | None] = {}

    def __call__(self, ip: str | None) -> str | None:
        if not ip:
            return None
        if ip not in self._known:
            # Imported here: the resolver is configured by a setting and may
            # load a GeoIP database; most requests never need it.
            from django_sessionkit.location import resolve

            self._known[ip] = resolve(ip)
        return self._known[ip]


# -- What the page shows ----------------------------------------------------------


def automatic_label(device: Device) -> str:
    """The name of a device that has none of its own: browser and OS."""
    return _("%(browser)s on %(os)s") % {
        "browser": device.browser_label,
        "os": device.os_label,
    }


def device_label(device: Device | None) -> str:
    """The name the page shows for ``device``: its own, else browser and OS."""
    if device is None:
        return _("Unknown device")
    return device.name or automatic_label(device)


#: The units of "N ... ago": translated apart from Django's own (which name a
#: duration) because some languages inflect them after "ago" ("vor 2 Tagen").
AGO_UNITS: dict[str, Any] = {
    "year": npgettext_lazy("time ago", "%(num)d year", "%(num)d years", "num"),
    "month": npgettext_lazy("time ago", "%(num)d month", "%(num)d months", "num"),
    "week": npgettext_lazy("time ago", "%(num)d week", "%(num)d weeks", "num"),
    "day": npgettext_lazy("time ago", "%(num)d day", "%(num)d days", "num"),
    "hour": npgettext_lazy("time ago", "%(num)d hour", "%(num)d hours", "num"),
    "minute": npgettext_lazy("time ago", "%(num)d minute", "%(num)d minutes", "num"),
}


def time_ago(value: datetime, now: datetime | None = None) -> str:
    """How long ago ``value`` was, in the active language ("2 days ago")."""
    since = timesince(value, now, time_strings=AGO_UNITS)
    return _("%(since)s ago") % {"since": since}


@dataclass
class SessionEntry:
    """One live session on the page."""

    session: Session
    current: bool
    location: str | None

    @property
    def signed_in_at(self) -> datetime:
        return self.session.authenticated_at or self.session.created_at

    @property
    def just_now(self) -> bool:
        """Whether the last activity is too recent for "N minutes ago"."""
        return timezone.now() - self.session.last_seen_at < _JUST_NOW

    @property
    def last_seen_ago(self) -> str:
        """How long ago the last activity was ("2 days ago")."""
        return time_ago(self.session.last_seen_at)

    def as_json(self) -> dict[str, Any]:
        record = self.session
        return {
            "id": record.pk,
            "device_id": record.device_id,
            "created_at": utc_iso(record.created_at),
            "authenticated_at": utc_iso(record.authenticated_at),
            "last_seen_at": utc_iso(record.last_seen_at),
            "expire_date": utc_iso(record.expire_date),
            "absolute_expire_date": utc_iso(record.absolute_expire_date),
            "ip": record.ip,
            "location": self.location,
            "current": self.current,
        }


def device_json(
    device: Device, *, current: bool, location: str | None
) -> dict[str, Any]:
    """A device as the JSON of the page describes it (without its sessions)."""
    return {
        "id": device.pk,
        "name": device.name,
        "label": device_label(device),
        "browser": device.browser or None,
        "os": device.os or None,
        "device_family": device.device_family or None,
        "kind": device.kind,
        "ip": device.ip,
        "location": location,
        "created_at": utc_iso(device.created_at),
        "last_seen_at": utc_iso(device.last_seen_at),
        "current": current,
    }


@dataclass
class DeviceEntry:
    """A device on the page with its live sessions; ``device`` is ``None`` for
    the group of sessions linked to no device."""

    device: Device | None
    sessions: list[SessionEntry]
    location: str | None = None
    form: DeviceNameForm | None = None
    label: str = field(init=False)

    def __post_init__(self) -> None:
        self.label = device_label(self.device)
        self.sessions.sort(
            key=lambda e: (not e.current, -e.session.last_seen_at.timestamp())
        )

    @property
    def current(self) -> bool:
        return any(entry.current for entry in self.sessions)

    @property
    def last_active_at(self) -> datetime:
        return max(entry.session.last_seen_at for entry in self.sessions)

    @property
    def automatic_label(self) -> str:
        """The name the device has without one of its own."""
        if self.device is None:
            return self.label
        return automatic_label(self.device)

    @property
    def browser_label(self) -> str:
        return self.device.browser_label if self.device is not None else str(UNKNOWN)

    @property
    def os_label(self) -> str:
        return self.device.os_label if self.device is not None else str(UNKNOWN)

    @property
    def kind(self) -> str:
        return self.device.kind if self.device is not None else Device.Kind.OTHER

    @property
    def kind_label(self) -> str:
        if self.device is None:
            return _("unknown")
        return str(self.device.get_kind_display())

    def as_json(self) -> dict[str, Any]:
        assert self.device is not None
        data = device_json(self.device, current=self.current, location=self.location)
        data["sessions"] = [entry.as_json() for entry in self.sessions]
        return data


@dataclass
class Overview:
    """One page of the signed-in user's devices and live sessions, in the
    page's order: the current device (or group) first, then by last
    activity. At most :data:`PAGE_SIZE` sessions; ``page`` of ``pages``
    (from 1) says which, ``count`` how many live sessions there are in all,
    ``others_count`` how many of them are not the current one."""

    groups: list[DeviceEntry]
    page: int = 1
    pages: int = 1
    count: int = 0
    others_count: int = 0

    @property
    def devices(self) -> list[DeviceEntry]:
        return [group for group in self.groups if group.device is not None]

    @property
    def unlinked(self) -> list[SessionEntry]:
        """The sessions linked to no device."""
        return [
            entry
            for group in self.groups
            if group.device is None
            for entry in group.sessions
        ]

    @property
    def previous_page(self) -> int | None:
        return self.page - 1 if self.page > 1 else None

    @property
    def next_page(self) -> int | None:
        return self.page + 1 if self.page < self.pages else None

    def as_json(self) -> dict[str, Any]:
        url = reverse("sessionkit:sessions")

        def link(number: int | None) -> str | None:
            return None if number is None else f"{url}?page={number}"

        return {
            "devices": [group.as_json() for group in self.devices],
            "sessions": [entry.as_json() for entry in self.unlinked],
            "page": self.page,
            "pages": self.pages,
            "count": self.count,
            "previous": link(self.previous_page),
            "next": link(self.next_page),
        }


def _page_number(page: object, pages: int) -> int:
    """The page asked for, within 1..``pages``; anything else is the first."""
    try:
        number = int(str(page))
    except ValueError:
        return 1
    return min(max(number, 1), pages)


def overview(
    request: HttpRequest,
    *,
    forms: dict[int, DeviceNameForm] | None = None,
    page: object = None,
) -> Overview:
    """One page of what the page of ``request``'s user shows; ``page`` is
    its number (from 1; anything else is the first, beyond the last is the
    last); ``forms`` are rename forms (with their errors) to show instead of
    fresh ones, by device id."""
    forms = forms or {}
    current = current_record(request)
    current_pk = current.pk if current is not None else None
    locate = _Locations()
    live = _sessions_of(request.user).live()
    # One query for both counts; the page itself is a bounded slice, so
    # thousands of sessions and devices cost what fifty do.
    counts = live.aggregate(
        total=Count("pk"), current=Count("pk", filter=Q(pk=current_pk))
    )
    total: int = counts["total"]
    pages = max(1, math.ceil(total / PAGE_SIZE))
    number = _page_number(page, pages)
    order: list[Any] = ["-last_seen_at", "-pk"]
    if current_pk is not None:
        order.insert(0, Case(When(pk=current_pk, then=Value(0)), default=Value(1)))
    rows = live.select_related("device").defer("device__token_hash").order_by(*order)
    by_device: dict[int | None, list[SessionEntry]] = {}
    devices: dict[int, Device] = {}
    start = (number - 1) * PAGE_SIZE
    for record in rows[start : start + PAGE_SIZE]:
        entry = SessionEntry(record, record.pk == current_pk, locate(record.ip))
        by_device.setdefault(record.device_id, []).append(entry)
        if record.device is not None:
            devices[record.device.pk] = record.device
    groups = []
    for pk, entries in by_device.items():
        device = devices.get(pk) if pk is not None else None
        group = DeviceEntry(device, entries)
        if device is not None:
            group.location = locate(device.ip)
            group.form = forms.get(device.pk) or DeviceNameForm(
                initial={"name": device.name},
                auto_id=f"sessionkit-device-{device.pk}-%s",
            )
        groups.append(group)
    groups.sort(key=lambda g: (not g.current, -g.last_active_at.timestamp()))
    return Overview(
        groups,
        page=number,
        pages=pages,
        count=total,
        others_count=total - counts["current"],
    )


def _page(
    request: HttpRequest, data: Overview, *, status: int = 200
) -> TemplateResponse:
    context = {
        "groups": data.groups,
        "others_count": data.others_count,
        "page": data.page,
        "pages": data.pages,
        "previous_page": data.previous_page,
        "next_page": data.next_page,
        "user": request.user,
        "messages": messages.get_messages(request),
        "invalid": [
            group
            for group in data.groups
            if group.form is not None and group.form.errors
        ],
    }
    return TemplateResponse(request, TEMPLATE_NAME, context, status=status)


@never_cache
@vary_on_headers("Accept", "X-Requested-With")
@require_safe
def sessions(request: HttpRequest) -> HttpResponseBase:
    """The signed-in user's devices and live sessions, as a page or as JSON,
    :data:`PAGE_SIZE` sessions at a time (``?page=2``; the JSON links the
    ``previous`` and ``next`` pages).

    An anonymous visitor is sent to ``LOGIN_URL`` (a JSON client gets 401).
    """
    if not request.user.is_authenticated:
        return sign_in_response(request)
    data = overview(request, page=request.GET.get("page"))
    if wants_json(request):
        return JsonResponse(data.as_json())
    return _page(request, data)


# -- Actions ----------------------------------------------------------------------


def _owned_session(request: HttpRequest, pk: int) -> int:
    found: int | None = (
        _sessions_of(request.user).filter(pk=pk).values_list("pk", flat=True).first()
    )
    if found is None:
        raise Http404("No such session.")
    return found


def _owned_device(request: HttpRequest, pk: int) -> Device:
    device: Device | None = _devices_of(request.user).filter(pk=pk).first()
    if device is None:
        raise Http404("No such device.")
    return device


def _done(request: HttpRequest, payload: dict[str, Any], message: str) -> HttpResponse:
    """Back to the page with ``message``, or ``payload`` for a JSON client."""
    if wants_json(request):
        return JsonResponse(payload)
    messages.success(request, message, fail_silently=True)
    return HttpResponseRedirect(reverse("sessionkit:sessions"))


def _signed_out_here(request: HttpRequest, revoked: int) -> HttpResponse:
    """The request's own session was revoked: finish signing it out."""
    sign_out_revoked(request)
    login_url = resolve_url(settings.LOGIN_URL)
    if wants_json(request):
        return JsonResponse(
            {"revoked": revoked, "signed_out": True, "login_url": login_url}
        )
    # No message: storing one could give the signed-out browser a new session.
    return HttpResponseRedirect(login_url)


@never_cache
@require_POST
@json_errors()
@recent_auth_required()
def sign_out_session(request: HttpRequest, pk: int) -> HttpResponse:
    """Revoke one session of the user; signing out the current one signs the
    user out here."""
    session_pk = _owned_session(request, pk)
    current = current_record(request)
    revoked = int(revoke_session(session_pk, reason=REASON_SESSION, by=request.user))
    if current is not None and current.pk == session_pk:
        return _signed_out_here(request, revoked)
    return _done(request, {"revoked": revoked}, _("The session was signed out."))


@never_cache
@require_POST
@json_errors()
@recent_auth_required()
def sign_out_device(request: HttpRequest, pk: int) -> HttpResponse:
    """Revoke every session of one of the user's devices and forget its token."""
    device = _owned_device(request, pk)
    current = current_record(request)
    label = device_label(device)
    revoked = revoke_device(device, reason=REASON_DEVICE, by=request.user)
    if current is not None and current.device_id == device.pk:
        return _signed_out_here(request, revoked)
    message = ngettext(
        "Signed out %(device)s (%(count)s session).",
        "Signed out %(device)s (%(count)s sessions).",
        revoked,
    ) % {"device": label, "count": revoked}
    return _done(request, {"revoked": revoked}, message)


@never_cache
@require_POST
@json_errors()
@recent_auth_required()
def sign_out_others(request: HttpRequest) -> HttpResponse:
    """Revoke every session of the user except the current one."""
    revoked = revoke_user_sessions(
        request.user,
        except_session=current_record(request),
        reason=REASON_OTHERS,
        by=request.user,
    )
    message = ngettext(
        "Signed out %(count)s other session.",
        "Signed out %(count)s other sessions.",
        revoked,
    ) % {"count": revoked}
    return _done(request, {"revoked": revoked}, message)


@never_cache
@require_POST
@json_errors()
@recent_auth_required()
def rename_device(request: HttpRequest, pk: int) -> HttpResponse:
    """Name one of the user's devices; an empty name restores the automatic one."""
    device = _owned_device(request, pk)
    form = DeviceNameForm(request.POST, auto_id=f"sessionkit-device-{pk}-%s")
    if not form.is_valid():
        if wants_json(request):
            return JsonResponse(
                {"error": "invalid_name", "errors": form.errors.get_json_data()},
                status=400,
            )
        return _page(request, overview(request, forms={device.pk: form}), status=400)
    device.name = form.cleaned_data["name"]
    device.save(update_fields=["name"])
    current = current_record(request)
    is_current = current is not None and current.device_id == device.pk
    payload = {
        "device": device_json(
            device, current=is_current, location=_Locations()(device.ip)
        )
    }
    message = (
        _("The device was renamed.")
        if device.name
        else _("The device's automatic name was restored.")
    )
    return _done(request, payload, message)


# -- Export -----------------------------------------------------------------------


def _value(value: Any) -> Any:
    return utc_iso(value) if isinstance(value, datetime) else value


def _rows(objects: Iterable[Any], fields: tuple[str, ...]) -> list[dict[str, Any]]:
    return [{name: _value(getattr(obj, name)) for name in fields} for obj in objects]


def _actor(event: SessionEvent, user: Any) -> str | None:
    if event.actor_id is None:
        return None
    return "self" if event.actor_id == user.pk else "other"


def export_data(user: Any, *, current: Session | None = None) -> dict[str, Any]:
    """Everything stored about ``user``'s devices, sessions and events, as a
    JSON-ready dict (see the docs for its format); never a key, a key hash, a
    device token's hash or a session's data."""
    now = timezone.now()
    sessions = list(_sessions_of(user).order_by("created_at", "pk"))
    live = set(_sessions_of(user).live(now).values_list("pk", flat=True))
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
            _devices_of(user).order_by("created_at", "pk"), EXPORT_DEVICE_FIELDS
        ),
        "sessions": session_rows,
        "events": event_rows,
    }


@never_cache
@require_safe
@recent_auth_required()
def export(request: HttpRequest) -> HttpResponseBase:
    """Download everything stored about the user's devices and sessions (JSON).

    It holds every address and user agent: like the actions, it needs a
    recent authentication.
    """
    data = export_data(request.user, current=current_record(request))
    response = JsonResponse(data, json_dumps_params={"indent": 2})
    filename = f"sessionkit-{timezone.localdate().isoformat()}.json"
    response["Content-Disposition"] = content_disposition_header(True, filename)
    return response
