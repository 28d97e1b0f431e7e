"""Views for the policy middleware tests, on top of ``tests.urls``."""

from __future__ import annotations

from django.contrib.auth import aauthenticate, alogin, alogout, authenticate, login
from django.contrib.messages import get_messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.middleware.csrf import get_token
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from django_sessionkit.decorators import passive
from django_sessionkit.lifecycle import remember_me
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


def shown_messages(request: HttpRequest) -> list[dict[str, str]]:
    return [
        {"level": message.level_tag, "text": str(message)}
        for message in get_messages(request)
    ]


def read_messages(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"messages": shown_messages(request)})


@csrf_exempt
def sign_in_page(request: HttpRequest) -> HttpResponse:
    """The tests' ``LOGIN_URL``: a form that signs in, else who the page
    shows as signed in and the messages it shows."""
    if request.method == "POST":
        user = authenticate(
            request,
            username=request.POST.get("username"),
            password=request.POST.get("password"),
        )
        if user is not None:
            login(request, user)
            return HttpResponseRedirect("/peek/")
    return JsonResponse(
        {"user": request.user.get_username(), "messages": shown_messages(request)}
    )


#: The paths ``public`` and ``apublic`` ran for: the page cache tests count
#: how often the cache let a request through to the view.
public_runs: list[str] = []


def public(request: HttpRequest) -> HttpResponse:
    """A page that uses neither the session nor the user."""
    public_runs.append(request.path)
    return HttpResponse("public")


async def apublic(request: HttpRequest) -> HttpResponse:
    public_runs.append(request.path)
    return HttpResponse("public")


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
    path("accounts/login/", sign_in_page, name="sign-in"),
    path("public/", public),
    path("apublic/", apublic),
    *urls.urlpatterns,
]
