"""Pages with the idle warning, for the template tag and browser tests; the
sessions page comes from ``tests.urls``.

Templates are strings here, so the tests need no template directory. Every
response carries a strict Content-Security-Policy, as a careful site would
(the package's own pages through the ``content_security_policy`` middleware,
which the tests add).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import AuthenticationForm
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    HttpResponseRedirect,
)
from django.template import RequestContext, Template
from django.urls import path
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.static import serve

import django_sessionkit
from tests import urls

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
STATIC_ROOT = Path(django_sessionkit.__file__).resolve().parent / "static"

LOGIN_PAGE = Template(
    "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
    "<title>Sign in</title></head><body><h1>Sign in</h1>"
    "<form method='post'>{% csrf_token %}{{ form }}"
    "<input type='hidden' name='next' value='{{ next }}'>"
    "<button type='submit'>Sign in</button></form></body></html>"
)
PAGE = Template(
    "{% load sessionkit %}<!DOCTYPE html><html lang='en'><head>"
    "<meta charset='utf-8'><title>Page</title></head><body><h1>Page</h1>"
    "<p>Idle: <span id='idle' data-sessionkit-countdown='idle'></span></p>"
    "<p>Absolute: <span id='absolute' data-sessionkit-countdown='absolute'>"
    "</span></p><p><input id='text' aria-label='Text'></p>"
    "{% sessionkit_idle_warning logout_url='/logout/' %}</body></html>"
)
FILLER = "".join(f"<p>Paragraph {n} of the form page.</p>" for n in range(1, 31))
# Fields high and low on the page, a header countdown with its toggle, and
# the page's colour scheme following the system (light or dark).
FORM_PAGE = Template(
    "{% load sessionkit %}<!DOCTYPE html><html lang='en'><head>"
    "<meta charset='utf-8'><meta name='color-scheme' content='light dark'>"
    "<meta name='viewport' content='width=device-width, initial-scale=1'>"
    "<title>Form</title></head><body><header><p>Signed out in "
    "<time id='header-countdown' data-sessionkit-countdown='idle'></time> "
    "<button type='button' id='countdown-toggle' data-sessionkit-countdown-toggle "
    "hidden></button></p></header><main><h1>Form</h1>"
    "<p><label for='top'>Top field</label> <input id='top'></p>"
    "<p><button type='button' id='button'>Nothing</button></p>"
    + FILLER
    + "<p><label for='notes'>Notes</label> <textarea id='notes'></textarea></p>"
    "<div id='editor' contenteditable='true' role='textbox' aria-multiline='true' "
    "aria-label='Editor'></div><p><label for='bottom'>Bottom field</label> "
    "<input id='bottom'></p></main>"
    "{% sessionkit_idle_warning logout_url='/logout/' %}</body></html>"
)
TAG = Template("{% load sessionkit %}{% sessionkit_idle_warning %}")
DEADLINES = Template(
    "{% load sessionkit %}{% sessionkit_deadlines as d %}"
    "{{ d.idle|date:'c' }}|{{ d.absolute|date:'c' }}"
)


def render(request: HttpRequest, page: Template, **context: object) -> HttpResponse:
    response = HttpResponse(page.render(RequestContext(request, context)))
    response.headers["Content-Security-Policy"] = CSP
    return response


def sign_in(request: HttpRequest) -> HttpResponse:
    """Django's authentication form, posted from the browser."""
    next_url = request.POST.get("next") or request.GET.get("next") or "/page/"
    if not url_has_allowed_host_and_scheme(next_url, {request.get_host()}):
        next_url = "/page/"
    form = AuthenticationForm(request, data=request.POST or None)
    if request.method == "POST" and form.is_valid():
        login(request, form.get_user())
        return HttpResponseRedirect(next_url)
    return render(request, LOGIN_PAGE, form=form, next=next_url)


@login_required
def page(request: HttpRequest) -> HttpResponse:
    return render(request, PAGE)


@login_required
def form_page(request: HttpRequest) -> HttpResponse:
    return render(request, FORM_PAGE)


def tag(request: HttpRequest) -> HttpResponse:
    return render(request, TAG)


def deadlines(request: HttpRequest) -> HttpResponse:
    return render(request, DEADLINES)


def content_security_policy(
    get_response: Callable[[HttpRequest], HttpResponseBase],
) -> Callable[[HttpRequest], HttpResponseBase]:
    """A middleware: the same policy on the package's own pages (the sessions
    page), which set none."""

    def middleware(request: HttpRequest) -> HttpResponseBase:
        response = get_response(request)
        response.headers.setdefault("Content-Security-Policy", CSP)
        return response

    return middleware


def static(request: HttpRequest, path: str) -> HttpResponse:
    response = serve(request, path, document_root=STATIC_ROOT)
    response.headers["Content-Security-Policy"] = CSP
    return response


urlpatterns = [
    path("signin/", sign_in),
    path("page/", page),
    path("form/", form_page),
    path("tag/", tag),
    path("deadlines/", deadlines),
    path("static/<path:path>", static),
    *urls.urlpatterns,
]
