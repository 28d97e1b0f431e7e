"""The consent settings (E031-E039): the categories, the revision, how long
a decision lasts, and the consent cookie's name.

``SESSIONKIT_CONSENT_MAX_AGE`` and ``SESSIONKIT_CONSENT_RETENTION`` that are
not durations are reported with the other durations (E007); here only what
is particular to consent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import CheckMessage, Error, register
from django.utils.functional import Promise

from django_sessionkit.checks.base import TAG, is_int
from django_sessionkit.conf import conf
from django_sessionkit.consent.categories import CATEGORY_KEYS, Category, own_cookies

#: The longest a decision may last: the CNIL's 13 months.
MAX_CONSENT_AGE = timedelta(days=395)
# A cookie name is an HTTP token (RFC 6265); see checks/general.py.
_COOKIE_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# A category key goes into forms, cookies, records and template tags.
_KEY = re.compile(r"[A-Za-z0-9_-]+")
_SETTING = "SESSIONKIT_CONSENT_CATEGORIES"


def _is_text(value: Any) -> bool:
    return isinstance(value, str | Promise)


def _is_names(value: Any) -> bool:
    return isinstance(value, list | tuple) and all(isinstance(v, str) for v in value)


def _entry_errors(index: int, entry: Any) -> list[CheckMessage]:
    """E032 (not a dict, or a value of the wrong type) and E033 (unknown
    keys) of one category."""
    where = f"{_SETTING}[{index}]"
    if not isinstance(entry, Mapping):
        return [
            Error(
                f"{where} must be a dict, not {entry!r}.",
                hint='For example {"key": "analytics", "label": "Analytics", '
                '"cookies": ["_ga", "_ga_*"]}.',
                id="sessionkit.E032",
            )
        ]
    errors: list[CheckMessage] = []
    unknown = sorted(str(k) for k in entry if k not in CATEGORY_KEYS)
    if unknown:
        errors.append(
            Error(
                f"{where} has unknown keys: {', '.join(unknown)}.",
                hint=f"A category may have {', '.join(sorted(CATEGORY_KEYS))}.",
                id="sessionkit.E033",
            )
        )
    wrong = [
        name
        for name, valid in (
            ("label", _is_text),
            ("description", _is_text),
            ("required", lambda v: isinstance(v, bool)),
            ("gpc", lambda v: isinstance(v, bool)),
            ("cookies", _is_names),
            ("google", _is_names),
        )
        if name in entry and not valid(entry[name])
    ]
    if wrong:
        errors.append(
            Error(
                f"{where} has values of the wrong type: {', '.join(wrong)}.",
                hint="label and description are text, required and gpc True or "
                "False, cookies and google lists of strings.",
                id="sessionkit.E032",
            )
        )
    return errors


def _key_errors(entries: list[Mapping[str, Any]]) -> list[CheckMessage]:
    """E034: each category needs a key of its own."""
    errors: list[CheckMessage] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        key = entry.get("key")
        if not isinstance(key, str) or not _KEY.fullmatch(key):
            problem = f"has no valid key ({key!r})"
        elif key in seen:
            problem = f"repeats the key {key!r}"
        else:
            seen.add(key)
            continue
        errors.append(
            Error(
                f"{_SETTING}[{index}] {problem}.",
                hint="Give every category a key of its own made of letters, "
                'digits, "_" and "-", such as "analytics".',
                id="sessionkit.E034",
            )
        )
    return errors


def _own_cookie_errors(entries: list[Mapping[str, Any]]) -> list[CheckMessage]:
    """E036: a category that can be refused must not claim the cookies the
    site needs (its consent would strip them from every response)."""
    errors: list[CheckMessage] = []
    for entry in entries:
        if entry.get("required", False) or not _is_names(entry.get("cookies", [])):
            continue
        probe = Category(
            key=str(entry.get("key")),
            label="",
            description="",
            required=False,
            cookies=tuple(entry.get("cookies", ())),
            gpc=False,
            google=(),
        )
        claimed = [name for name in own_cookies() if probe.matches(name)]
        if claimed:
            errors.append(
                Error(
                    f"{_SETTING}: the category {entry.get('key')!r} can be "
                    f"refused but its cookies match {', '.join(claimed)}, which "
                    "the site needs.",
                    hint='Narrow its names or wildcards ("_ga_*", not "*"); '
                    "the session, CSRF, language, device and consent cookies "
                    "belong to the required category.",
                    id="sessionkit.E036",
                )
            )
    return errors


def _category_errors() -> list[CheckMessage]:
    raw = conf.CONSENT_CATEGORIES
    if raw is None:
        return []
    if not isinstance(raw, list | tuple):
        return [
            Error(
                f"{_SETTING} must be a list of dicts, or None for the default "
                f"categories; not {raw!r}.",
                hint="See django_sessionkit.consent.categories.DEFAULT_CATEGORIES.",
                id="sessionkit.E031",
            )
        ]
    errors: list[CheckMessage] = []
    for index, entry in enumerate(raw):
        errors.extend(_entry_errors(index, entry))
    entries = [entry for entry in raw if isinstance(entry, Mapping)]
    errors.extend(_key_errors(entries))
    if not any(entry.get("required", False) is True for entry in entries):
        errors.append(
            Error(
                f"{_SETTING} has no required category.",
                hint='Add one such as {"key": "necessary", "required": True}: it '
                "declares the cookies the site needs, which need no consent.",
                id="sessionkit.E035",
            )
        )
    errors.extend(_own_cookie_errors(entries))
    return errors


@register(TAG)
def check_consent_settings(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """Refuse invalid consent settings (E031-E039) at start-up rather than on
    the first request that reads them."""
    errors = _category_errors()
    revision = conf.CONSENT_REVISION
    if not is_int(revision) or revision < 1:
        errors.append(
            Error(
                f"SESSIONKIT_CONSENT_REVISION must be a whole number >= 1, "
                f"not {revision!r}.",
                hint="Raise it by one whenever the categories or their "
                "descriptions change, to ask every visitor again.",
                id="sessionkit.E037",
            )
        )
    max_age = conf.CONSENT_MAX_AGE
    if max_age is None or (
        isinstance(max_age, timedelta) and max_age > MAX_CONSENT_AGE
    ):
        errors.append(
            Error(
                f"SESSIONKIT_CONSENT_MAX_AGE must be a duration of at most 395 "
                f"days (13 months), not {max_age!r}.",
                hint="The default, 182 days, asks again every six months.",
                id="sessionkit.E038",
            )
        )
    name = conf.CONSENT_COOKIE_NAME
    if (
        not isinstance(name, str)
        or not _COOKIE_NAME.fullmatch(name)
        or name
        in (
            settings.SESSION_COOKIE_NAME,
            settings.CSRF_COOKIE_NAME,
            settings.LANGUAGE_COOKIE_NAME,
            conf.DEVICE_COOKIE_NAME,
        )
    ):
        errors.append(
            Error(
                "SESSIONKIT_CONSENT_COOKIE_NAME must be a cookie name of its own "
                "(not the session's, CSRF, language or device cookie's), "
                f"not {name!r}.",
                hint='The default is "sessionkit_consent".',
                id="sessionkit.E039",
            )
        )
    return errors
