from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from demo import views

urlpatterns = [
    path("", views.home, name="home"),
    path("accounts/login/", views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("sessions/", include("django_sessionkit.urls")),
    # Django's set_language view, for the header's language switch.
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
]
