"""Forms."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import forms as auth_forms
from django.core.exceptions import ValidationError

from django_sessionkit import limits


class AuthenticationForm(auth_forms.AuthenticationForm):
    """Django's sign-in form, with the session limit as a form error.

    With ``SESSIONKIT_MAX_SESSIONS_POLICY = "deny"``, a user who already has
    ``SESSIONKIT_MAX_SESSIONS_PER_USER`` live sessions gets a clear error
    instead of being signed in. Use it as ``LoginView``'s
    ``authentication_form``. (Without it the sign-in is refused all the same,
    with a 403 response.)
    """

    error_messages = {
        **auth_forms.AuthenticationForm.error_messages,
        "session_limit": limits.LIMIT_MESSAGE,
    }

    def confirm_login_allowed(self, user: Any) -> None:
        super().confirm_login_allowed(user)
        if limits.would_exceed(user, self.request):
            raise ValidationError(
                self.error_messages["session_limit"], code="session_limit"
            )
