"""Signal receivers connected when the app is ready."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_logged_out
from django.core.signals import request_finished, request_started
from django.db import models
from django.db.models.signals import m2m_changed, post_init, post_save, pre_delete
from django.dispatch import receiver
from django.http import HttpRequest

from django_sessionkit import lifecycle, privileges
from django_sessionkit.backends.db import current_session
from django_sessionkit.lifecycle import schedule_users_rotation
from django_sessionkit.revocation import revoke_user_sessions


@receiver(request_started, dispatch_uid="django_sessionkit.request_started")
@receiver(request_finished, dispatch_uid="django_sessionkit.request_finished")
def forget_current_session(**kwargs: Any) -> None:
    # A store made by an earlier request of this thread must never be taken
    # for the session of this one (a password reset would keep it).
    current_session.set(None)


@receiver(user_logged_in, dispatch_uid="django_sessionkit.signed_in")
def signed_in(sender: Any, request: HttpRequest, user: Any, **kwargs: Any) -> None:
    # Both login() and alogin() send this signal (alogin() runs sync
    # receivers in a thread), so every sign-in takes this path.
    lifecycle.sign_in(request, user)


@receiver(user_logged_out, dispatch_uid="django_sessionkit.signed_out")
def signed_out(sender: Any, request: HttpRequest, user: Any, **kwargs: Any) -> None:
    lifecycle.signed_out(request)


@receiver(
    post_init,
    sender=settings.AUTH_USER_MODEL,
    dispatch_uid="django_sessionkit.user_loaded",
)
def user_loaded(sender: Any, instance: Any, **kwargs: Any) -> None:
    lifecycle.user_loaded(instance)


@receiver(
    post_save,
    sender=settings.AUTH_USER_MODEL,
    dispatch_uid="django_sessionkit.user_saved",
)
def user_saved(sender: Any, instance: Any, created: bool, **kwargs: Any) -> None:
    if not created:
        lifecycle.user_changed(instance)


@receiver(
    pre_delete,
    sender=settings.AUTH_USER_MODEL,
    dispatch_uid="django_sessionkit.user_deleted",
)
def user_deleted(sender: Any, instance: Any, **kwargs: Any) -> None:
    # Through the revocation API before the cascade deletes the rows: so the
    # sessions end with events, signals and, with the cached store,
    # tombstones (a cascade would leave cached copies behind).
    revoke_user_sessions(instance, reason="user_deleted")


# -- Groups and permissions --------------------------------------------------------


def privileges_changed(
    sender: type[models.Model],
    instance: Any,
    action: str,
    pk_set: set[Any] | None,
    **kwargs: Any,
) -> None:
    """Rotate the keys of users whose groups or permissions changed.

    The same path as a change of ``is_staff``: every session of those users
    gets a new key at its next request.
    """
    schedule_users_rotation(
        privileges.users_to_rotate(sender, instance, action, pk_set)
    )


def connect_privilege_tables() -> None:
    """Connect :func:`privileges_changed` to the m2m tables that give privileges.

    Called when the app is ready: the user model may be a custom one, with
    or without ``PermissionsMixin``. Proxies of the user model share its
    tables, so they need nothing more.
    """
    for table in privileges.tables().values():
        m2m_changed.connect(
            privileges_changed,
            sender=table,
            dispatch_uid=f"{__name__}.privileges.{table._meta.label_lower}",
        )


def connect_user_proxies() -> None:
    """Connect the user receivers to every proxy of the user model too.

    Django sends a model's signals with the class the code used as sender: a
    user deactivated, given a new password or deleted through a proxy model
    (an admin for a proxy, say) would otherwise end no session. Called when
    the app is ready, once every model is loaded.
    """
    user_model = get_user_model()
    for model in apps.get_models():
        if model._meta.proxy and model._meta.concrete_model is user_model:
            label = model._meta.label_lower
            post_init.connect(
                user_loaded, sender=model, dispatch_uid=f"{__name__}.loaded.{label}"
            )
            post_save.connect(
                user_saved, sender=model, dispatch_uid=f"{__name__}.saved.{label}"
            )
            pre_delete.connect(
                user_deleted, sender=model, dispatch_uid=f"{__name__}.deleted.{label}"
            )
