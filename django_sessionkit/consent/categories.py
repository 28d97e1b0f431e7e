"""The consent categories of ``SESSIONKIT_CONSENT_CATEGORIES`` and the cookies
each declares.

A category is a purpose a visitor consents to (or not) as a whole:
``analytics``, say, with the cookies that purpose sets. Required categories
(``necessary``) need no consent and cannot be refused. Cookie names may end or
contain ``*``, which stands for any run of characters (``"_ga_*"``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from django_sessionkit.conf import conf

#: The keys a category may have; any other is reported by a system check.
CATEGORY_KEYS = frozenset(
    {"key", "label", "description", "required", "cookies", "gpc", "google"}
)

#: The categories used when ``SESSIONKIT_CONSENT_CATEGORIES`` is not set.
#: ``necessary`` declares the cookies of Django and of this app itself; its
#: list is completed with the configured names (see :func:`categories`).
DEFAULT_CATEGORIES: tuple[dict[str, Any], ...] = (
    {
        "key": "necessary",
        "label": _("Necessary"),
        "description": _(
            "Needed for the site to work: signing in, security and remembering "
            "this choice. They cannot be switched off."
        ),
        "required": True,
        "cookies": [],
    },
    {
        "key": "preferences",
        "label": _("Preferences"),
        "description": _("Remember choices such as the language or the layout."),
        "cookies": [],
    },
    {
        "key": "analytics",
        "label": _("Analytics"),
        "description": _(
            "Count visits and see how the site is used, so that it can be improved."
        ),
        "cookies": ["_ga", "_ga_*", "_gid", "_pk_*"],
        "google": ["analytics_storage"],
    },
    {
        "key": "marketing",
        "label": _("Marketing"),
        "description": _(
            "Show relevant advertising here and on other sites, and measure it."
        ),
        "cookies": ["_gcl_*", "_fbp", "IDE"],
        "gpc": True,
        "google": ["ad_storage", "ad_user_data", "ad_personalization"],
    },
)


@dataclass(frozen=True)
class Category:
    """One consent category."""

    #: The identifier used in forms, cookies, records and template tags.
    key: str
    #: The name shown to visitors (translatable).
    label: str | Promise
    #: What the category is for, shown beside its toggle (translatable).
    description: str | Promise
    #: Whether the category needs no consent (and cannot be refused).
    required: bool
    #: The names of the cookies it sets; ``*`` stands for any characters.
    cookies: tuple[str, ...]
    #: Whether a ``Sec-GPC: 1`` signal refuses it (a sale or sharing of data).
    gpc: bool
    #: The Google Consent Mode types it grants (``"analytics_storage"``, ...).
    google: tuple[str, ...]

    def matches(self, cookie_name: str) -> bool:
        """Whether ``cookie_name`` is one of this category's cookies."""
        return _pattern(self.cookies).fullmatch(cookie_name) is not None


def _pattern(names: tuple[str, ...]) -> re.Pattern[str]:
    parts = [".*".join(re.escape(piece) for piece in name.split("*")) for name in names]
    return re.compile("|".join(f"(?:{part})" for part in parts) or r"(?!)")


def own_cookies() -> tuple[str, ...]:
    """The cookies of Django and of this app, which need no consent."""
    names = [
        settings.SESSION_COOKIE_NAME,
        settings.CSRF_COOKIE_NAME,
        settings.LANGUAGE_COOKIE_NAME,
        conf.DEVICE_COOKIE_NAME,
        conf.CONSENT_COOKIE_NAME,
    ]
    return tuple(dict.fromkeys(names))


def build(raw: Iterable[Mapping[str, Any]]) -> tuple[Category, ...]:
    """The categories of ``raw`` (the setting's list); the first required one
    also declares :func:`own_cookies`. Raise ``ValueError`` or ``TypeError``
    on a malformed entry (the system checks say which, with an id)."""
    found: list[Category] = []
    own_declared = False
    for entry in raw:
        required = bool(entry.get("required", False))
        cookies = tuple(str(name) for name in entry.get("cookies", ()))
        if required and not own_declared:
            cookies = tuple(dict.fromkeys((*own_cookies(), *cookies)))
            own_declared = True
        found.append(
            Category(
                key=str(entry["key"]),
                label=entry.get("label", entry["key"]),
                description=entry.get("description", ""),
                required=required,
                cookies=cookies,
                gpc=bool(entry.get("gpc", False)),
                google=tuple(str(kind) for kind in entry.get("google", ())),
            )
        )
    return tuple(found)


def categories() -> tuple[Category, ...]:
    """The configured categories, in their order (built once per settings)."""
    return conf.derived(  # type: ignore[no-any-return]
        "consent_categories",
        lambda: build(conf.CONSENT_CATEGORIES or DEFAULT_CATEGORIES),
    )


def category(key: str) -> Category | None:
    """The category of ``key``, or ``None``."""
    return next((c for c in categories() if c.key == key), None)


def category_of_cookie(name: str) -> Category | None:
    """The first category that declares the cookie ``name``, or ``None`` for a
    cookie no category declares (it is left alone)."""
    return next((c for c in categories() if c.matches(name)), None)
