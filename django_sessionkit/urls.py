"""URLs of django-sessionkit.

Include them once: ``path("sessions/", include("django_sessionkit.urls"))``.
"""

from __future__ import annotations

from django.urls import path

from django_sessionkit import pages, reauth, views

app_name = "sessionkit"

urlpatterns = [
    path("keep-alive/", views.keep_alive, name="keep_alive"),
    path("status/", views.status, name="status"),
    path("reauthenticate/", reauth.reauthenticate, name="reauthenticate"),
    # The user's own sessions and devices.
    path("", pages.sessions, name="sessions"),
    path("<int:pk>/sign-out/", pages.sign_out_session, name="sign_out_session"),
    path("devices/<int:pk>/sign-out/", pages.sign_out_device, name="sign_out_device"),
    path("devices/<int:pk>/rename/", pages.rename_device, name="rename_device"),
    path("sign-out-others/", pages.sign_out_others, name="sign_out_others"),
    path("export/", pages.export, name="export"),
]
