"""The demo's pages of its own: what the app knows about this session, and a
sign-in page with "Remember me"."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext_lazy as _

from django_sessionkit.forms import AuthenticationForm
from django_sessionkit.lifecycle import remember_me
from django_sessionkit.models import Session


def home(request: HttpRequest) -> HttpResponse:
    record: Session | None = None
    # An anonymous visitor has no session key, so nothing is loaded and no
    # row is created; only a signed-in session has a row to show.
    if request.user.is_authenticated:
        record = getattr(request.session, "record", None)
    return render(request, "demo/home.html", {"record": record})


class RememberMeAuthenticationForm(AuthenticationForm):
    """Django's sign-in form (with the session limit as a form error) and a
    "Remember me" box."""

    remember_me = forms.BooleanField(
        label=_("Remember me"),
        required=False,
        help_text=_("Stay signed in for longer on this device."),
    )


class LoginView(auth_views.LoginView):
    """Django's sign-in view; a ticked box gives the session the longer
    ``SESSIONKIT_REMEMBER_ME_*`` timeouts."""

    form_class = RememberMeAuthenticationForm
    template_name = "demo/login.html"
    redirect_authenticated_user = True

    def get_form(
        self, form_class: type[AuthenticationForm] | None = None
    ) -> AuthenticationForm:
        form: AuthenticationForm = super().get_form(form_class)
        if messages.get_messages(self.request):
            # A message (such as "You were signed out after a period of
            # inactivity") takes the focus, to be read before the form:
            # Django's autofocus on the username would skip past it.
            form.fields["username"].widget.attrs.pop("autofocus", None)
        return form

    def form_valid(self, form: AuthenticationForm) -> HttpResponse:
        response = super().form_valid(form)  # signs in
        if form.cleaned_data.get("remember_me"):
            remember_me(self.request)
        return response
