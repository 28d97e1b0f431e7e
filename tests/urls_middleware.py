"""Views for the policy middleware tests, on top of ``tests.urls``."""

from __future__ import annotations

from django.contrib.auth import aauthenticate, alogin, alogout, authenticate, login
from django.contrib.messages import get_messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import get_token
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from django_sessionkit.decorators import passive
from django_sessionkit.policy import remember_me
from tests import urls


@csrf_exempt
def login_remembered(request: HttpRequest) -> HttpResponse:
    """Sign in with "remember me" ticked."""
    user = authenticate(
        request,
        username=request.POST.get("username"),
        password=request.POST.get("password"),
    )
    if user is None:
        return HttpResponse("denied", status=403)
    login(request, user)
    remember_me(request)
    return HttpResponse("ok")


@csrf_exempt
async def alogin_remembered(request: HttpRequest) -> HttpResponse:
    user = await aauthenticate(
        request,
        username=request.POST.get("username"),
        password=request.POST.get("password"),
    )
    if user is None:
        return HttpResponse("denied", status=403)
    await alogin(request, user)
    remember_me(request)
    return HttpResponse("ok")


@csrf_exempt
async def async_logout(request: HttpRequest) -> HttpResponse:
    await alogout(request)
    return HttpResponse("bye")


async def async_nothing(request: HttpRequest) -> HttpResponse:
    return HttpResponse("nothing")


@passive
def passive_sync(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"user": request.user.get_username()})


@passive
async def passive_async(request: HttpRequest) -> JsonResponse:
    user = await request.auser()
    return JsonResponse({"user": user.get_username()})


@passive
def passive_put(request: HttpRequest) -> HttpResponse:
    for name, value in request.GET.items():
        request.session[name] = value
    return HttpResponse("stored")


def poll(request: HttpRequest) -> JsonResponse:
    """Not decorated: passive through ``SESSIONKIT_PASSIVE_URLS`` only."""
    return JsonResponse({"user": request.user.get_username()})


def csrf_token(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"token": get_token(request)})


def read_messages(request: HttpRequest) -> JsonResponse:
    return JsonResponse(
        {
            "messages": [
                {"level": message.level_tag, "text": str(message)}
                for message in get_messages(request)
            ]
        }
    )


urlpatterns = [
    path("login-remember/", login_remembered),
    path("alogin-remember/", alogin_remembered),
    path("alogout/", async_logout),
    path("anothing/", async_nothing),
    path("passive/", passive_sync),
    path("apassive/", passive_async),
    path("passive/put/", passive_put),
    path("poll/updates/", poll),
    path("csrf/", csrf_token),
    path("messages/", read_messages),
    *urls.urlpatterns,
]
