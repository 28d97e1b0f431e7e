"""Views for the sudo mode tests, on top of ``tests.urls``."""

from __future__ import annotations

import json
from datetime import timedelta

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from django_sessionkit.http import utc_iso
from django_sessionkit.reauth import (
    REAUTH_KEY,
    alast_authenticated_at,
    amark_reauthenticated,
    last_authenticated_at,
    mark_reauthenticated,
    recent_auth_required,
)
from tests import urls


@recent_auth_required
def sensitive(request: HttpRequest) -> JsonResponse:
    """Protected under ``SESSIONKIT_REAUTH_MAX_AGE``."""
    return JsonResponse({"user": request.user.get_username(), "view": "sensitive"})


@recent_auth_required(max_age=timedelta(minutes=5))
def sensitive_five(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"user": request.user.get_username(), "view": "five"})


@recent_auth_required
async def asensitive(request: HttpRequest) -> JsonResponse:
    user = await request.auser()
    return JsonResponse({"user": user.get_username(), "view": "asensitive"})


@recent_auth_required(max_age=300)
async def asensitive_five(request: HttpRequest) -> JsonResponse:
    user = await request.auser()
    return JsonResponse({"user": user.get_username(), "view": "afive"})


@recent_auth_required()
def sensitive_called(request: HttpRequest) -> HttpResponse:
    """The decorator called without arguments."""
    return HttpResponse("called")


@csrf_exempt
@require_POST
@recent_auth_required
def action(request: HttpRequest) -> HttpResponse:
    """A form POST that needs a recent authentication."""
    return HttpResponse("done")


def last(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"at": utc_iso(last_authenticated_at(request))})


async def alast(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"at": utc_iso(await alast_authenticated_at(request))})


@csrf_exempt
def reauth_now(request: HttpRequest) -> JsonResponse:
    """Re-authenticated by some other means (a second factor, say)."""
    return JsonResponse({"at": utc_iso(mark_reauthenticated(request))})


@csrf_exempt
async def areauth_now(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"at": utc_iso(await amark_reauthenticated(request))})


@csrf_exempt
def put_reauth(request: HttpRequest) -> HttpResponse:
    """Store any JSON value as the re-authentication time."""
    request.session[REAUTH_KEY] = json.loads(request.body)
    return HttpResponse("stored")


urlpatterns = [
    path("sensitive/", sensitive),
    path("sensitive-five/", sensitive_five),
    path("asensitive/", asensitive),
    path("asensitive-five/", asensitive_five),
    path("sensitive-called/", sensitive_called),
    path("action/", action),
    path("last/", last),
    path("alast/", alast),
    path("reauth-now/", reauth_now),
    path("areauth-now/", areauth_now),
    path("put-reauth/", put_reauth),
    *urls.urlpatterns,
]
