"""What every module of the system checks shares: the tag, reading dotted
paths and whole numbers, and which session store runs."""

from __future__ import annotations

from importlib import import_module
from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string

#: The tag of every check of the app: ``manage.py check --tag sessionkit``.
TAG = "sessionkit"


def is_int(value: object) -> bool:
    """Return whether ``value`` is a whole number, so that ``True`` is not one."""
    return isinstance(value, int) and not isinstance(value, bool)


def imported(path: str, attribute: str | None = None) -> Any:
    """Return the object at ``path`` (a module, or ``module.attribute``), or None.

    A setting that cannot be imported is what a check reports, never an
    exception of the check itself.
    """
    try:
        if attribute is None:
            return import_string(path)
        return getattr(import_module(path), attribute, None)
    except Exception:  # any failure to import means "not that object"
        return None


def is_subclass(value: object, base: type) -> bool:
    """Return whether ``value`` is a class built on ``base`` (``False`` for
    anything that is not a class, such as a failed import)."""
    return isinstance(value, type) and issubclass(value, base)


def uses_sessionkit_engine() -> bool:
    """Return whether ``SESSION_ENGINE`` is one of our stores or built on one:
    the checks of what the store and the middleware need apply only then."""
    from django_sessionkit.backends.db import SessionStore

    return is_subclass(imported(settings.SESSION_ENGINE, "SessionStore"), SessionStore)


def uses_cached_store() -> bool:
    """Return whether the store in use keeps copies of rows in the session
    cache (``caches_rows``): the cache checks apply only then."""
    store = imported(settings.SESSION_ENGINE, "SessionStore")
    return uses_sessionkit_engine() and getattr(store, "caches_rows", False)
