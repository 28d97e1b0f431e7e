"""Which users a change of groups or permissions concerns.

Django sends ``m2m_changed`` for the tables that give users privileges
(``User.groups``, ``User.user_permissions``, ``Group.permissions``) with the
rows of one side; :func:`users_to_rotate` turns each such change into the
users whose sessions must get a new key (``receivers.privileges_changed``
hands them to :func:`django_sessionkit.lifecycle.schedule_users_rotation`).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import FieldDoesNotExist
from django.db import models, router


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


def tables() -> dict[str, type[models.Model]]:
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
    found = tables()
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
    if sender is not found.get("group_permissions"):
        return set(rows.values_list(_column(sender, user_model), flat=True))
    # A group's permissions: every member of the groups concerned.
    memberships = found["groups"]
    group_model = user_model._meta.get_field("groups").related_model
    assert isinstance(group_model, type)
    groups = rows.values_list(_column(sender, group_model), flat=True)
    members = memberships._default_manager.using(rows.db).filter(
        **{f"{_column(memberships, group_model)}__in": groups}
    )
    return set(members.values_list(_column(memberships, user_model), flat=True))


def users_to_rotate(
    sender: type[models.Model],
    instance: Any,
    action: str,
    pk_set: set[Any] | None,
) -> set[Any]:
    """The ids of the users whose privileges an ``m2m_changed`` of ``sender``
    changed, at the signal's ``post_*`` action; nobody at the others.

    Rows that go (``remove``, ``clear``: Django sends no ids for a clear) are
    read before they go (kept on ``instance``) and their users answered
    after; rows that come are read after ``add`` (whose ``pk_set`` holds
    only the new ones). Nothing changed, nobody is answered.
    """
    if action in ("pre_remove", "pre_clear"):
        instance._sessionkit_losing = _affected_users(sender, instance, pk_set)
        return set()
    if action in ("post_remove", "post_clear"):
        affected: set[Any] = getattr(instance, "_sessionkit_losing", set())
        instance._sessionkit_losing = set()
        return affected
    if action == "post_add" and pk_set:
        return _affected_users(sender, instance, pk_set)
    return set()
