"""Forms."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth import forms as auth_forms
from django.core.exceptions import ValidationError
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from django_sessionkit import limits, reauth_limits


class AuthenticationForm(auth_forms.AuthenticationForm):
    """Django's sign-in form, with the session limit as a form error.

    With ``SESSIONKIT_MAX_SESSIONS_POLICY = "deny"``, a user who already has
    ``SESSIONKIT_MAX_SESSIONS_PER_USER`` live sessions gets a clear error
    (code ``session_limit``) instead of being signed in. Use it as
    ``LoginView``'s ``authentication_form`` or ``form_class``. (Without it
    the sign-in is refused all the same, with a 403 response.)
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
        if self.request is not None:
            # A simultaneous sign-in may still take the last place: the
            # middleware then asks this form again (limits.refused_response).
            setattr(self.request, limits.FORM_CHECKED, True)


class ReauthenticationForm(forms.Form):
    """Ask the signed-in user for their password again ("sudo mode").

    The password is checked by
    :func:`~django_sessionkit.reauth_limits.check_password`: with
    ``authenticate()`` under the user's own username, so every
    authentication backend applies, and within the limits on wrong
    passwords. A wrong password sends ``user_login_failed`` as a failed
    sign-in does (sign-in throttling such as django-axes counts it). The form
    is valid only when the password authenticates the very user of
    ``request``; after validation, ``outcome`` is the check's
    :class:`~django_sessionkit.reauth_limits.PasswordCheck` (``None`` when
    no password was given). Its errors have the codes ``invalid_password``
    (a wrong password, or no signed-in user) and ``locked`` (too many wrong
    passwords: this one was not checked).
    """

    password = forms.CharField(
        label=_("Password"),
        strip=False,
        widget=forms.PasswordInput(
            attrs={"autocomplete": "current-password", "autofocus": True}
        ),
    )

    error_messages = {
        "invalid_password": _(
            "Your password was entered incorrectly. Please enter it again."
        ),
        "locked": _("Too many wrong passwords. Please try again later."),
    }

    def __init__(self, request: HttpRequest, *args: Any, **kwargs: Any) -> None:
        self.request = request
        self.outcome: reauth_limits.PasswordCheck | None = None
        super().__init__(*args, **kwargs)

    def clean_password(self) -> str:
        password: str = self.cleaned_data["password"]
        if not self.request.user.is_authenticated:
            raise ValidationError(
                self.error_messages["invalid_password"], code="invalid_password"
            )
        self.outcome = reauth_limits.check_password(self.request, password)
        if not self.outcome.checked:
            raise ValidationError(self.error_messages["locked"], code="locked")
        if not self.outcome.ok:
            raise ValidationError(
                self.error_messages["invalid_password"], code="invalid_password"
            )
        return password


class DeviceNameForm(forms.Form):
    """The name a user gives one of their devices ("Work laptop").

    Optional, at most 100 characters (``Device.name``'s length). Surrounding
    whitespace is stripped; an empty name gives the device its automatic
    name (browser and operating system) back.
    """

    name = forms.CharField(
        label=_("Device name"),
        max_length=100,  # Device.name's
        required=False,
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )
