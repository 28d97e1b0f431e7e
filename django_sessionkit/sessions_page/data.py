"""What the sessions page shows: the requesting user's rows, their labels,
and one page of them (:func:`overview`) for the HTML page and its JSON.

Only the signed-in user's own rows are read, from the primary database, and
never a key, a key hash, a device token's hash or a session's data. The views
(:mod:`django_sessionkit.sessions_page.views`) and the export
(:mod:`django_sessionkit.sessions_page.export`) read the rows through
:func:`sessions_of` and :func:`devices_of` too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import router
from django.db.models import Case, Count, Q, QuerySet, Value, When
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.timesince import timesince
from django.utils.translation import gettext as _
from django.utils.translation import npgettext_lazy

from django_sessionkit.forms import DeviceNameForm
from django_sessionkit.http import current_record, utc_iso
from django_sessionkit.models import UNKNOWN, Device, Session, SessionQuerySet

#: How many sessions one page of the sessions page (and its JSON) shows.
PAGE_SIZE = 50

# Never loaded for the page: credentials and the session's data.
_SESSION_SECRETS = ("key_hash", "previous_key_hash", "session_data")
_JUST_NOW = timedelta(minutes=1)


# -- Rows of the requesting user --------------------------------------------------


def sessions_of(user: Any) -> SessionQuerySet:
    """Read ``user``'s sessions, live or not, from the primary database.

    The primary: a session revoked a moment ago must not be listed again, and
    ownership is decided where revocation writes. Credentials and the
    session's data are never loaded.
    """
    rows = Session.objects.using(router.db_for_write(Session))
    return rows.of_user(user).defer(*_SESSION_SECRETS)


def devices_of(user: Any) -> QuerySet[Device]:
    """Read ``user``'s devices from the primary database, as
    :func:`sessions_of` does, without their tokens' hashes."""
    devices = Device.objects.using(router.db_for_write(Device))
    return devices.filter(user_id=user.pk).defer("token_hash")


class Locations:
    """Resolve locations through the location hook, once per distinct IP
    address: a page lists many sessions from few addresses, and a lookup may
    be slow."""

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
    locate = Locations()
    live = sessions_of(request.user).live()
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
