"""The views of the sessions page: the page itself and its actions (sign out
a session, a device or every other session; rename a device).

The views are thin: the page shows
:func:`~django_sessionkit.sessions_page.data.overview`, and each action
checks that the session or device it names belongs to the requesting user
(404 otherwise) and calls the revocation API of
:mod:`django_sessionkit.revocation`, so its effect and audit trail are those
of every other door. Sessions and devices are addressed by ``id`` only: no
key, key hash or device token is ever read here.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
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
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST, require_safe
from django.views.decorators.vary import vary_on_headers

from django_sessionkit.forms import DeviceNameForm
from django_sessionkit.http import current_record, sign_in_response, wants_json
from django_sessionkit.json_errors import json_errors
from django_sessionkit.lifecycle import sign_out_revoked
from django_sessionkit.models import Device
from django_sessionkit.reauth import recent_auth_required
from django_sessionkit.revocation import (
    revoke_device,
    revoke_session,
    revoke_user_sessions,
)
from django_sessionkit.sessions_page.data import (
    Locations,
    Overview,
    device_json,
    device_label,
    devices_of,
    overview,
    sessions_of,
)

#: The template of :func:`sessions`.
TEMPLATE_NAME = "django_sessionkit/sessions.html"

#: The ``reason`` of the ``revoke`` events each action writes.
REASON_SESSION = "user_signed_out"
REASON_DEVICE = "user_signed_out_device"
REASON_OTHERS = "user_signed_out_others"


# -- The page ---------------------------------------------------------------------


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
    :data:`~django_sessionkit.sessions_page.data.PAGE_SIZE` sessions at a
    time (``?page=2``; the JSON links the ``previous`` and ``next`` pages).

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
        sessions_of(request.user).filter(pk=pk).values_list("pk", flat=True).first()
    )
    if found is None:
        raise Http404("No such session.")
    return found


def _owned_device(request: HttpRequest, pk: int) -> Device:
    device: Device | None = devices_of(request.user).filter(pk=pk).first()
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
            device, current=is_current, location=Locations()(device.ip)
        )
    }
    message = (
        _("The device was renamed.")
        if device.name
        else _("The device's automatic name was restored.")
    )
    return _done(request, payload, message)
