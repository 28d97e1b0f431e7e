"""The soak site's URLs: one per kind of request the driver sends."""

from __future__ import annotations

from django.urls import path

from soak import views

urlpatterns = [
    path("sign-in/", views.sign_in),
    path("read/", views.read),
    path("passive/", views.passive_read),
    path("write/", views.write),
    path("rotate/", views.rotate),
    path("revoke/", views.revoke),
]
