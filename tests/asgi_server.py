"""An ASGI app server for ``tests/test_crash_safety.py``, and its URLs.

Run by uvicorn with ``DJANGO_SETTINGS_MODULE=tests.settings_two_servers`` and
``SESSIONKIT_SERVERS_URLCONF=tests.asgi_server``. Its async views end or
re-key the request's session through the library's async API. With
``SESSIONKIT_SERVERS_SLOW_WRITES`` (seconds), every statement that deletes or
updates a session row takes that much longer before its transaction goes on:
a client can then disconnect while the view waits for the database, as a
real impatient client does. The library's signals are recorded in Redis, so
that the test sees whether they were sent.
"""

from __future__ import annotations

import os
import time
from typing import Any

from django.core.asgi import get_asgi_application

application = get_asgi_application()

# Django is set up from here on.
import redis  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.auth import alogout  # noqa: E402
from django.db.backends.signals import connection_created  # noqa: E402
from django.http import HttpRequest, JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402
from django.views.decorators.csrf import csrf_exempt  # noqa: E402

from django_sessionkit.lifecycle import arotate_session  # noqa: E402
from django_sessionkit.revocation import arevoke_session  # noqa: E402
from django_sessionkit.signals import session_revoked, session_rotated  # noqa: E402
from tests import urls  # noqa: E402

SLOW = float(os.environ.get("SESSIONKIT_SERVERS_SLOW_WRITES") or 0)
SIGNALS = "sessionkit-test:signals"


def _slow_session_writes(
    execute: Any, sql: str, params: Any, many: bool, context: Any
) -> Any:
    result = execute(sql, params, many, context)
    statement = sql.lstrip().upper()
    if statement.startswith(("DELETE", "UPDATE")) and "SESSIONKIT_SESSION" in statement:
        time.sleep(SLOW)
    return result


def _install(sender: Any, connection: Any, **kwargs: Any) -> None:
    connection.execute_wrappers.append(_slow_session_writes)


if SLOW:
    connection_created.connect(_install)


def _recorded(signal_name: str) -> Any:
    def receiver(sender: Any, session_id: int, reason: str, **kwargs: Any) -> None:
        client = redis.Redis.from_url(os.environ["SESSIONKIT_SERVERS_REDIS_URL"])
        client.rpush(SIGNALS, f"{signal_name}:{session_id}:{reason}")

    return receiver


on_revoked = _recorded("revoked")
on_rotated = _recorded("rotated")
session_revoked.connect(on_revoked)
session_rotated.connect(on_rotated)


async def whoami(request: HttpRequest) -> JsonResponse:
    user = await request.auser()
    return JsonResponse({"user": user.get_username()})


@csrf_exempt
async def revoke(request: HttpRequest, session_id: int) -> JsonResponse:
    revoked = await arevoke_session(session_id, reason="test_revoke")
    return JsonResponse({"revoked": revoked})


@csrf_exempt
async def sign_out(request: HttpRequest) -> JsonResponse:
    await alogout(request)
    return JsonResponse({"signed_out": True})


@csrf_exempt
async def rotate(request: HttpRequest) -> JsonResponse:
    await arotate_session(request, reason="test_rotate")
    return JsonResponse({"rotated": True})


urlpatterns = [
    path("whoami/", whoami),
    path("arevoke/<int:session_id>/", revoke),
    path("asign-out/", sign_out),
    path("arotate/", rotate),
    *urls.urlpatterns,
]

assert __name__ == settings.ROOT_URLCONF, settings.ROOT_URLCONF
