"""Views for the rotation and receiver tests, on top of ``tests.urls``."""

from __future__ import annotations

from django.contrib.auth import aupdate_session_auth_hash, update_session_auth_hash
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from django_sessionkit.decorators import passive
from django_sessionkit.lifecycle import arotate_session, rotate_session
from django_sessionkit.models import Session
from tests import urls


@csrf_exempt
def change_password(request: HttpRequest) -> HttpResponse:
    user = request.user
    user.set_password(request.POST["password"])  # type: ignore[union-attr]
    user.save()  # type: ignore[union-attr]
    update_session_auth_hash(request, user)
    return HttpResponse("changed")


@csrf_exempt
async def achange_password(request: HttpRequest) -> HttpResponse:
    user = await request.auser()
    # Django 5.2's aupdate_session_auth_hash() reads the lazy request.user
    # synchronously; give it the user already loaded.
    request.user = user
    user.set_password(request.POST["password"])  # type: ignore[union-attr]
    await user.asave()  # type: ignore[union-attr]
    await aupdate_session_auth_hash(request, user)
    return HttpResponse("changed")


@csrf_exempt
def change_password_of(request: HttpRequest, username: str) -> HttpResponse:
    # An administrator sets someone else's password.
    user = User.objects.get(username=username)
    user.set_password(request.POST["password"])
    user.save()
    return HttpResponse("changed")


@csrf_exempt
def change_password_after_decoding(request: HttpRequest) -> HttpResponse:
    # A page that shows what other sessions hold decodes them first: the
    # stores made for that are not the request's session.
    for row in Session.objects.exclude(user=None):
        row.get_decoded()
    return change_password(request)


@csrf_exempt
def step_up(request: HttpRequest) -> HttpResponse:
    rotate_session(request)
    return HttpResponse("stepped up")


@csrf_exempt
async def astep_up(request: HttpRequest) -> HttpResponse:
    await arotate_session(request)
    return HttpResponse("stepped up")


@passive
def poll(request: HttpRequest) -> HttpResponse:
    return HttpResponse(request.user.get_username())


urlpatterns = [
    path("password/", change_password),
    path("apassword/", achange_password),
    path("password-of/<str:username>/", change_password_of),
    path("password-after-decoding/", change_password_after_decoding),
    path("step-up/", step_up),
    path("astep-up/", astep_up),
    path("poll/", poll),
    *urls.urlpatterns,
]
