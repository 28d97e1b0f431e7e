"""An app server for ``tests/test_two_servers.py``, and the URLs it serves.

Django must be set up before this module is imported (it is also the
servers' ``ROOT_URLCONF``), so the test starts each server with ``python -c``:
``django.setup()``, then ``serve(port)``, with
``DJANGO_SETTINGS_MODULE=tests.settings_two_servers``.
"""

from __future__ import annotations

from django.core.servers.basehttp import run
from django.core.wsgi import get_wsgi_application
from django.http import HttpRequest, JsonResponse
from django.urls import path

from tests import urls


def whoami(request: HttpRequest) -> JsonResponse:
    """The user, the session's own data, and whether Redis answered the read."""
    user = request.user.get_username()
    session = request.session
    return JsonResponse(
        {
            "user": user,
            "data": {k: v for k, v in session.items() if not k.startswith("_")},
            "from_cache": bool(getattr(session, "from_cache", False)),
        }
    )


urlpatterns = [path("whoami/", whoami), *urls.urlpatterns]


def serve(port: int) -> None:
    """Serve the test site on ``127.0.0.1:port``, a thread per request."""
    run("127.0.0.1", port, get_wsgi_application(), threading=True)
