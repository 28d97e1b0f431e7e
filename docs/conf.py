"""Sphinx configuration for the django-sessionkit documentation."""

from __future__ import annotations

import re
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

extensions: list[str] = []

root_doc = "index"
exclude_patterns = ["_build"]
nitpicky = True
# Django's and the standard library's objects are named, not linked: the build
# needs no network (no intersphinx inventory to fetch).
nitpick_ignore_regex = [(r"py:.*", r"(django|ipaddress)\..*")]

html_theme = "furo"
html_title = f"django-sessionkit {release}"


def setup(app: Any) -> None:
    # ``.. setting:: NAME`` declares a setting, ``:setting:`NAME``` links to it.
    app.add_crossref_type("setting", "setting", "pair: %s; setting")
