"""Signal receivers connected when the app is ready."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_logged_out
from django.core.exceptions import FieldDoesNotExist
from django.core.signals import request_finished, request_started
from django.db import models, router, transaction
from django.db.models.signals import m2m_changed, post_init, post_save, pre_delete
from django.dispatch import receiver
from django.http import HttpRequest

from django_sessionkit import devices, limits
from django_sessionkit.backends.db import UNLINKED_USER_KEY, SessionStore
from django_sessionkit.backends.db import current_session as current_session
from django_sessionkit.conf import conf
from django_sessionkit.events import Kind, Subject, emit
from django_sessionkit.http import current_store, store_of
from django_sessionkit.models import Device, Session
from django_sessionkit.revocation import revoke_user_sessions
from django_sessionkit.rotation import schedule_user_rotation, schedule_users_rotation
from django_sessionkit.signals import device_added


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
    session = store_of(request)
    if session is None:
        return
    _record_switch(request, session, user)
    session.mark_signed_in(request, user)
    if not is_user(user):
        _signed_in_unlinked(request, session)
        return
    session.pop(UNLINKED_USER_KEY, None)
    device: Device | None = None
    new_device = False
    with transaction.atomic(using=router.db_for_write(Session)):
        limits.lock_user(user)
        denied = limits.denied(session, user)
        if not denied:
            # Before any write of the sign-in: the write links the device.
            device, new_device = devices.device_for_sign_in(request, user)
            session.link_device(device.pk)
            if not session.key_renewed:
                # Django keeps the key when the same user signs in again.
                session.cycle_key()
            if limits.active() or session.record is None:
                # Linked to its user now, inside the lock, so that
                # simultaneous sign-ins count each other (and with an id for
                # the event); otherwise the response's save does it.
                session.save()
            limits.evict_oldest(session, user, request)
    if denied:
        session.flush()
        raise limits.refuse(request)
    record = session.record
    assert record is not None and device is not None
    subject = Subject(
        session_id=record.pk, user=user, device_id=device.pk, ip=record.ip
    )
    emit(Kind.LOGIN, [subject], reason="login", request=request)
    if new_device:
        emit(Kind.NEW_DEVICE, [subject], reason="new_device", request=request)
        device_added.send(sender=Device, device=device, user=user, request=request)
        devices.notify_new_device(device, user, request=request)


def is_user(user: Any) -> bool:
    """Whether ``user`` is an instance of ``AUTH_USER_MODEL`` (or a proxy)."""
    meta = getattr(user, "_meta", None)
    return meta is not None and meta.concrete_model is get_user_model()


def _signed_in_unlinked(request: HttpRequest, session: SessionStore) -> None:
    """A sign-in of something a backend returned that is not a user.

    Its id is no user's: the session gets no user (nor device, limit or
    email), so that it never counts as, or is listed for, the user who has
    that id. The key is renewed and the sign-in recorded all the same.
    """
    session[UNLINKED_USER_KEY] = True
    if not session.key_renewed:
        session.cycle_key()
    if session.record is None:
        session.save()  # an id for the event
    record = session.record
    assert record is not None
    subject = Subject(session_id=record.pk, user=None, ip=record.ip)
    emit(Kind.LOGIN, [subject], reason="login", request=request)


def _record_switch(request: HttpRequest, session: SessionStore, user: Any) -> None:
    """Record the end of another user's session that ``login()`` flushed."""
    switched, session.flushed_record = session.flushed_record, None
    if (
        switched is None
        or switched.user_id is None
        or (is_user(user) and switched.user_id == user.pk)
        or getattr(request, "sessionkit_signed_out", False)  # logged out already
    ):
        return
    emit(Kind.LOGOUT, [Subject.of(switched)], reason="user_switched", request=request)


@receiver(user_logged_out, dispatch_uid="django_sessionkit.signed_out")
def signed_out(sender: Any, request: HttpRequest, user: Any, **kwargs: Any) -> None:
    session = store_of(request)
    if session is None:
        return
    request.sessionkit_signed_out = True  # type: ignore[attr-defined]
    record = session.record
    if record is not None:
        emit(Kind.LOGOUT, [Subject.of(record)], reason="logout", request=request)


def _privileges(user: Any) -> tuple[bool, bool]:
    return (
        bool(getattr(user, "is_staff", False)),
        bool(getattr(user, "is_superuser", False)),
    )


@receiver(
    post_init,
    sender=settings.AUTH_USER_MODEL,
    dispatch_uid="django_sessionkit.user_loaded",
)
def user_loaded(sender: Any, instance: Any, **kwargs: Any) -> None:
    instance._sessionkit_privileges = _privileges(instance)


@receiver(
    post_save,
    sender=settings.AUTH_USER_MODEL,
    dispatch_uid="django_sessionkit.user_saved",
)
def user_saved(sender: Any, instance: Any, created: bool, **kwargs: Any) -> None:
    if created:
        return
    if not getattr(instance, "is_active", True):
        revoke_user_sessions(instance, reason="inactive")
        return
    if (
        getattr(instance, "_password", None) is not None
        and conf.REVOKE_OTHERS_ON_PASSWORD_CHANGE
    ):
        # set_password() was called: this request's own session stays (its
        # key is rotated by update_session_auth_hash()); the others end.
        current = current_store()
        keep = current.record if current is not None else None
        if keep is not None and keep.user_id != instance.pk:
            keep = None
        revoke_user_sessions(instance, except_session=keep, reason="password_change")
    before = getattr(instance, "_sessionkit_privileges", None)
    now = _privileges(instance)
    if before is not None and before != now:
        # Every session of the user gets a new key at its next request.
        schedule_user_rotation(instance)
    instance._sessionkit_privileges = now


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


def _column(through: type[models.Model], model: type[models.Model]) -> str:
    """The column of ``through`` (an m2m table) that points at ``model``."""
    concrete = model._meta.concrete_model
    for field in through._meta.concrete_fields:
        related = field.related_model
        if isinstance(related, type) and related._meta.concrete_model is concrete:
            return str(field.attname)
    raise LookupError(f"{through.__name__} has no column for {model.__name__}.")


def _m2m_table(model: type[models.Model], name: str) -> type[models.Model] | None:
    try:
        field = model._meta.get_field(name)
    except FieldDoesNotExist:
        return None  # a custom user model without PermissionsMixin
    return field.remote_field.through if field.many_to_many else None  # type: ignore[union-attr]


def _privilege_tables() -> dict[str, type[models.Model]]:
    """The m2m tables that give users privileges, by the user's field name,
    and ``Group.permissions`` as ``"group_permissions"``."""
    user_model = get_user_model()
    tables = {
        name: table
        for name in ("groups", "user_permissions")
        if (table := _m2m_table(user_model, name)) is not None
    }
    if "groups" in tables:
        group_model = user_model._meta.get_field("groups").related_model
        assert isinstance(group_model, type)
        permissions = _m2m_table(group_model, "permissions")
        if permissions is not None:
            tables["group_permissions"] = permissions
    return tables


def _affected_users(
    sender: type[models.Model], instance: Any, pk_set: set[Any] | None
) -> set[Any]:
    """The ids of the users whose privileges the rows of ``sender`` linking
    ``instance`` (to ``pk_set``, or to anything when ``None``) give."""
    tables = _privilege_tables()
    user_model = get_user_model()
    subject = type(instance)._meta.concrete_model
    assert subject is not None
    rows = sender._default_manager.using(router.db_for_write(sender)).filter(
        **{_column(sender, subject): instance.pk}
    )
    if pk_set is not None:
        columns = [f.attname for f in sender._meta.concrete_fields if f.is_relation]
        other = next(c for c in columns if c != _column(sender, subject))
        rows = rows.filter(**{f"{other}__in": pk_set})
    if sender is not tables.get("group_permissions"):
        return set(rows.values_list(_column(sender, user_model), flat=True))
    # A group's permissions: every member of the groups concerned.
    memberships = tables["groups"]
    group_model = user_model._meta.get_field("groups").related_model
    assert isinstance(group_model, type)
    groups = rows.values_list(_column(sender, group_model), flat=True)
    members = memberships._default_manager.using(rows.db).filter(
        **{f"{_column(memberships, group_model)}__in": groups}
    )
    return set(members.values_list(_column(memberships, user_model), flat=True))


def privileges_changed(
    sender: type[models.Model],
    instance: Any,
    action: str,
    pk_set: set[Any] | None,
    **kwargs: Any,
) -> None:
    """Rotate the keys of users whose groups or permissions changed.

    The same path as a change of ``is_staff``: every session of those users
    gets a new key at its next request. Rows that go (``remove``, ``clear``:
    Django sends no ids for a clear) are read before they go and the users
    marked after; rows that come are read after ``add`` (whose ``pk_set``
    holds only the new ones). Nothing changed, nobody is marked.
    """
    if action in ("pre_remove", "pre_clear"):
        instance._sessionkit_losing = _affected_users(sender, instance, pk_set)
        return
    if action in ("post_remove", "post_clear"):
        affected: set[Any] = getattr(instance, "_sessionkit_losing", set())
        instance._sessionkit_losing = set()
    elif action == "post_add" and pk_set:
        affected = _affected_users(sender, instance, pk_set)
    else:
        return
    schedule_users_rotation(affected)


def connect_privilege_tables() -> None:
    """Connect :func:`privileges_changed` to the m2m tables that give privileges.

    Called when the app is ready: the user model may be a custom one, with
    or without ``PermissionsMixin``. Proxies of the user model share its
    tables, so they need nothing more.
    """
    for table in _privilege_tables().values():
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
