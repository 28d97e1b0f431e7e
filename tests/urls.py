from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import aauthenticate, alogin, authenticate, login, logout
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt


@csrf_exempt
def sync_login(request: HttpRequest) -> HttpResponse:
    user = authenticate(
        request,
        username=request.POST.get("username"),
        password=request.POST.get("password"),
    )
    if user is None:
        return HttpResponse("denied", status=403)
    login(request, user)
    return HttpResponse("ok")


@csrf_exempt
async def async_login(request: HttpRequest) -> HttpResponse:
    user = await aauthenticate(
        request,
        username=request.POST.get("username"),
        password=request.POST.get("password"),
    )
    if user is None:
        return HttpResponse("denied", status=403)
    await alogin(request, user)
    return HttpResponse("ok")


@csrf_exempt
def sync_logout(request: HttpRequest) -> HttpResponse:
    logout(request)
    return HttpResponse("bye")


def put(request: HttpRequest) -> HttpResponse:
    for name, value in request.GET.items():
        request.session[name] = value
    return HttpResponse("stored")


def peek(request: HttpRequest) -> HttpResponse:
    return JsonResponse(
        {"user": request.user.get_username(), "data": dict(request.session.items())}
    )


def nothing(request: HttpRequest) -> HttpResponse:
    return HttpResponse("nothing")


urlpatterns = [
    path("admin/", admin.site.urls),
    path("sessions/", include("django_sessionkit.urls")),
    path("login/", sync_login),
    path("alogin/", async_login),
    path("logout/", sync_logout),
    path("put/", put),
    path("peek/", peek),
    path("nothing/", nothing),
]
