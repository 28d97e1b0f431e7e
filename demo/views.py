"""The demo's one page of its own: what the app knows about this session."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from django_sessionkit.models import Session


def home(request: HttpRequest) -> HttpResponse:
    record: Session | None = None
    # An anonymous visitor has no session key, so nothing is loaded and no
    # row is created; only a signed-in session has a row to show.
    if request.user.is_authenticated:
        record = getattr(request.session, "record", None)
    return render(request, "demo/home.html", {"record": record})
