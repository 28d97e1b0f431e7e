"""A site that does not include ``django_sessionkit.urls``: sign-in only."""

from __future__ import annotations

from django.urls import path

from tests import urls

urlpatterns = [
    path("login/", urls.sync_login),
    path("alogin/", urls.async_login),
    path("peek/", urls.peek),
]
