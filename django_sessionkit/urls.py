"""URLs of django-sessionkit.

Include them once: ``path("sessions/", include("django_sessionkit.urls"))``.
"""

from __future__ import annotations

from django.urls import path

from django_sessionkit import idle_warning, reauth
from django_sessionkit.consent import views as consent_views
from django_sessionkit.sessions_page import export, views

app_name = "sessionkit"

urlpatterns = [
    # The idle warning's script.
    path("keep-alive/", idle_warning.keep_alive, name="keep_alive"),
    path("status/", idle_warning.status, name="status"),
    path("reauthenticate/", reauth.reauthenticate, name="reauthenticate"),
    # The user's own sessions and devices.
    path("", views.sessions, name="sessions"),
    path("<int:pk>/sign-out/", views.sign_out_session, name="sign_out_session"),
    path("devices/<int:pk>/sign-out/", views.sign_out_device, name="sign_out_device"),
    path("devices/<int:pk>/rename/", views.rename_device, name="rename_device"),
    path("sign-out-others/", views.sign_out_others, name="sign_out_others"),
    path("export/", export.export, name="export"),
    # Consent: the decision (banner, preferences page, scripts) and the page.
    path("consent/", consent_views.consent, name="consent"),
    path(
        "consent/preferences/",
        consent_views.preferences,
        name="consent_preferences",
    ),
]
