"""Signal receivers connected when the app is ready."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver
from django.http import HttpRequest

from django_sessionkit.backends.db import SessionStore


@receiver(user_logged_in, dispatch_uid="django_sessionkit.record_sign_in")
def record_sign_in(sender: Any, request: HttpRequest, user: Any, **kwargs: Any) -> None:
    # Both login() and alogin() send this signal, so sessions signed in
    # either way are linked to their user and sign-in time.
    session = getattr(request, "session", None)
    if isinstance(session, SessionStore):
        session.mark_signed_in(request)
