"""The soak site's views: sign-in, reads, a write, a rotation, a revocation.

Every answer is JSON with the signed-in user's id (``null`` when anonymous),
the session's id and its counter, which is what the driver checks. The
session work is the library's (Django's ``login()``, the store's
``cycle_key()``, :func:`django_sessionkit.revocation.revoke_session`); only
the kill hook below is the run's own.

CSRF is exempted on the POST views: the driver is a plain HTTP client, not a
browser that another site could drive, and the app's CSRF protection is
tested on its own pages; a token round trip per write would only slow the
run.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

from django.contrib.auth import authenticate, login
from django.db import transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from django_sessionkit.decorators import passive
from django_sessionkit.http import current_record
from django_sessionkit.models import Session
from django_sessionkit.revocation import revoke_session

#: The request header that makes a revocation kill its worker after the
#: revocation's database commit and before its cache tombstone.
DIE_HEADER = "X-Soak-Die"
#: The ``reason`` of the run's revocations.
REASON = "soak"

_die = threading.local()


def _kill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


@receiver(post_delete, sender=Session, dispatch_uid="soak.die_after_commit")
def _die_after_commit(sender: Any, using: str, **kwargs: Any) -> None:
    # Registered inside the revocation's transaction, so it runs right after
    # its commit: the worker dies where a crash loses the tombstone.
    if getattr(_die, "armed", False):
        _die.armed = False
        transaction.on_commit(_kill_self, using=using)


def _state(request: HttpRequest, **extra: Any) -> JsonResponse:
    user = request.user
    record = current_record(request)
    return JsonResponse(
        {
            "user": user.pk if user.is_authenticated else None,
            "session": record.pk if record is not None else None,
            "counter": request.session.get("counter", 0),
            **extra,
        }
    )


@csrf_exempt
@never_cache
@require_POST
def sign_in(request: HttpRequest) -> JsonResponse:
    user = authenticate(
        request,
        username=request.POST.get("username"),
        password=request.POST.get("password"),
    )
    if user is None:
        return JsonResponse({"error": "invalid_credentials"}, status=400)
    login(request, user)
    return _state(request)


@never_cache
@require_GET
def read(request: HttpRequest) -> JsonResponse:
    return _state(request)


@never_cache
@require_GET
@passive
def passive_read(request: HttpRequest) -> JsonResponse:
    return _state(request)


@csrf_exempt
@never_cache
@require_POST
def write(request: HttpRequest) -> JsonResponse:
    # Anonymous requests write nothing: no session row for a lost cookie.
    if request.user.is_authenticated:
        request.session["counter"] = request.session.get("counter", 0) + 1
    return _state(request)


@csrf_exempt
@never_cache
@require_POST
def rotate(request: HttpRequest) -> JsonResponse:
    if request.user.is_authenticated:
        request.session.cycle_key()
    return _state(request)


@csrf_exempt
@never_cache
@require_POST
def revoke(request: HttpRequest) -> JsonResponse:
    """Revoke another session of the signed-in user, by its ``session_id``."""
    if not request.user.is_authenticated:
        return _state(request)
    pk = int(request.POST["session_id"])
    if not Session.objects.filter(pk=pk, user_id=request.user.pk).exists():
        return JsonResponse({"error": "not_found"}, status=404)
    _die.armed = request.headers.get(DIE_HEADER) == "after-commit"
    try:
        revoked = revoke_session(pk, reason=REASON, by=request.user)
    finally:
        _die.armed = False
    return _state(request, revoked=revoked)
