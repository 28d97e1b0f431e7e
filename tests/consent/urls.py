"""Pages for the consent tests: views that set cookies of each category."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.urls import include, path

from django_sessionkit.consent import gating, state, views

#: Cookies of each kind: declared (analytics, with a wildcard; marketing),
#: required (the language cookie is the necessary category's), undeclared.
COOKIES = ("_ga", "_ga_ABC123", "_fbp", "django_language", "site_theme")


def _set(response: HttpResponseBase) -> HttpResponseBase:
    for name in COOKIES:
        response.set_cookie(name, "1")
    return response


def cookies(request: HttpRequest) -> HttpResponseBase:
    return _set(HttpResponse("cookies"))


async def acookies(request: HttpRequest) -> HttpResponseBase:
    return _set(HttpResponse("cookies"))


def delete_ga(request: HttpRequest) -> HttpResponse:
    response = HttpResponse("deleted")
    response.delete_cookie("_ga")
    return response


def _consent(request: HttpRequest) -> JsonResponse:
    consent = request.consent  # type: ignore[attr-defined]
    return JsonResponse(state.as_json(consent))


def show(request: HttpRequest) -> JsonResponse:
    return _consent(request)


async def ashow(request: HttpRequest) -> JsonResponse:
    return _consent(request)


def banner(request: HttpRequest) -> HttpResponse:
    """A page whose HTML depends on the consent (as the banner tag's)."""
    gating.vary_on_consent(request)
    return HttpResponse("banner" if not gating.consent_of(request).given else "")


def decide_and_set(request: HttpRequest) -> HttpResponseBase:
    """The consent view, then cookies set in the same response."""
    return _set(views.consent(request))


urlpatterns = [
    path("sessions/", include("django_sessionkit.urls")),
    path("cookies/", cookies),
    path("acookies/", acookies),
    path("delete-ga/", delete_ga),
    path("show/", show),
    path("ashow/", ashow),
    path("banner/", banner),
    path("decide-and-set/", decide_and_set),
]
