"""URLs of django-sessionkit.

Include them once: ``path("sessions/", include("django_sessionkit.urls"))``.
"""

from __future__ import annotations

from django.urls import path

from django_sessionkit import reauth, views

app_name = "sessionkit"

urlpatterns = [
    path("keep-alive/", views.keep_alive, name="keep_alive"),
    path("status/", views.status, name="status"),
    path("reauthenticate/", reauth.reauthenticate, name="reauthenticate"),
]
