"""Sphinx configuration for the django-sessionkit documentation."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

# Read the version without importing the package (and so without Django).
_init = (ROOT / "django_sessionkit" / "__init__.py").read_text(encoding="utf-8")
_match = re.search(r'^__version__ = "([^"]+)"', _init, re.MULTILINE)
assert _match is not None, "__version__ not found in django_sessionkit/__init__.py"

project = "django-sessionkit"
author = "django-sessionkit contributors"
copyright = "django-sessionkit contributors"
release = _match.group(1)
version = release

# autodoc imports the package, and so Django: set it up with the small settings
# module next to this file (no database, cache or network is touched). The
# checkout comes first on the path, so the package documented is this one.
sys.path[:0] = [str(ROOT), str(Path(__file__).resolve().parent)]
os.environ["DJANGO_SETTINGS_MODULE"] = "docs_settings"

import django  # noqa: E402

django.setup()

extensions: list[str] = ["sphinx.ext.autodoc"]

# The reference (ref/api/) is generated from the docstrings.
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
# Only our own docstrings: one inherited from Django would describe its store,
# not ours, and hide a docstring that is missing here.
autodoc_inherit_docstrings = False

root_doc = "index"
exclude_patterns = ["_build"]
nitpicky = True
# Django's and the standard library's objects are named, not linked: the build
# needs no network (no intersphinx inventory to fetch). The annotations that
# autodoc shows name them too.
nitpick_ignore_regex = [
    (
        r"py:.*",
        r"(django|ipaddress|datetime|typing|collections\.abc|contextvars|asyncio|uuid)\..*",
    ),
    # Type variables of the signatures (a view, a coroutine's result).
    (r"py:class", r"(django_sessionkit\.[\w.]+\.)?(View|T|P)"),
]

html_theme = "furo"
html_title = f"django-sessionkit {release}"


def _no_type_docstring(
    app: Any, what: str, name: str, obj: Any, options: Any, lines: list[str]
) -> None:
    # A constant without a ``#:`` comment would show its type's docstring
    # (``int``'s, say): show nothing rather than that.
    type_doc = type(obj).__doc__
    if (
        what in ("data", "attribute")
        and type_doc
        and lines
        and lines[0].strip() == type_doc.strip().splitlines()[0].strip()
    ):
        lines.clear()


def _no_generic_signature(
    app: Any,
    what: str,
    name: str,
    obj: Any,
    options: Any,
    signature: str | None,
    return_annotation: str | None,
) -> tuple[str, str | None] | None:
    # Models, querysets, choices and plain forms are made by Django, not by
    # you: their ``(*args, **kwargs)`` or Django's own arguments say nothing.
    from enum import Enum

    from django import forms
    from django.db import models

    generic = (models.Model, models.QuerySet, Enum)
    if what in ("class", "exception") and isinstance(obj, type):
        plain_form = (
            issubclass(obj, forms.BaseForm) and obj.__init__ is forms.BaseForm.__init__
        )
        if issubclass(obj, generic) or plain_form:
            return "", return_annotation
    # An annotation imported under ``TYPE_CHECKING`` stays a bare name, which
    # both stores' ``SessionStore`` would match: name the database store's.
    if return_annotation and not name.startswith("django_sessionkit.backends."):
        full = re.sub(
            r"(?<![\w.])SessionStore\b",
            "django_sessionkit.backends.db.SessionStore",
            return_annotation,
        )
        if full != return_annotation:
            return signature or "", full
    return None


def setup(app: Any) -> None:
    app.connect("autodoc-process-docstring", _no_type_docstring)
    app.connect("autodoc-process-signature", _no_generic_signature)
    # ``.. setting:: NAME`` declares a setting, ``:setting:`NAME``` links to it.
    app.add_crossref_type("setting", "setting", "pair: %s; setting")
