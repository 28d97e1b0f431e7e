"""A visitor's consent decision and the signed cookie that carries it.

The decision lives in its own cookie (``SESSIONKIT_CONSENT_COOKIE_NAME``),
never in the session: deciding creates no session row. The cookie is signed
with ``SECRET_KEY`` (``django.core.signing``); a tampered, expired,
old-revision or malformed cookie counts as no decision, never as an error.
Its payload is readable (not secret): the banner's script reads it to show
or hide a cached banner.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.core import signing
from django.http import HttpRequest, HttpResponseBase

from django_sessionkit.conf import conf
from django_sessionkit.consent.categories import categories, category

#: The salt of the consent cookie's signature (a cookie of another purpose,
#: signed with the same key, does not verify as one).
SALT = "django_sessionkit.consent"
#: The version of the cookie's payload, so that its layout can change later.
FORMAT = 1


def gpc_requested(request: HttpRequest) -> bool:
    """Whether the request carries the Global Privacy Control signal."""
    return request.headers.get("Sec-GPC", "").strip() == "1"


@dataclass(frozen=True)
class Consent:
    """A visitor's decision, as the current request sees it.

    ``granted(key)`` is what gates cookies and scripts: always true for a
    required category, false for any other until the visitor granted it (for
    the current ``SESSIONKIT_CONSENT_REVISION``, within
    ``SESSIONKIT_CONSENT_MAX_AGE``), and false for a category flagged ``gpc``
    while the request carries ``Sec-GPC: 1``, unless the visitor granted that
    category explicitly while sending the signal.
    """

    #: The pseudonymous id of the visitor's decisions (kept across changes),
    #: quoted in ``ConsentRecord``; ``None`` before any decision.
    id: uuid.UUID | None
    #: The revision the decision was made for.
    revision: int
    #: Whether the visitor decided for the current revision, within the max age.
    given: bool
    #: When the visitor decided, or ``None``.
    decided_at: datetime | None
    #: Whether the request carries ``Sec-GPC: 1``.
    gpc: bool
    #: The non-required categories the visitor granted.
    granted_keys: frozenset[str] = field(default_factory=frozenset)
    #: Of those, the ``gpc`` categories granted explicitly despite the signal.
    gpc_overrides: frozenset[str] = field(default_factory=frozenset)

    def granted(self, key: str) -> bool:
        """Whether the category ``key`` may set its cookies and run its scripts."""
        found = category(key)
        if found is None:
            return False
        if found.required:
            return True
        if key not in self.granted_keys:
            return False
        return not (found.gpc and self.gpc and key not in self.gpc_overrides)

    @property
    def choices(self) -> dict[str, bool]:
        """Every category's key and whether it is granted, in their order."""
        return {c.key: self.granted(c.key) for c in categories()}

    @property
    def gpc_honoured(self) -> bool:
        """Whether the signal refused at least one category the visitor would
        otherwise have granted, or would be asked about."""
        return self.gpc and any(c.gpc and not self.granted(c.key) for c in categories())

    def google_consent(self) -> dict[str, str]:
        """The Google Consent Mode types of the categories, ``"granted"`` or
        ``"denied"`` (a type of several categories is granted by any)."""
        state: dict[str, str] = {}
        for c in categories():
            for kind in c.google:
                if self.granted(c.key) or state.get(kind) == "granted":
                    state[kind] = "granted"
                else:
                    state[kind] = "denied"
        return state


def undecided(request: HttpRequest) -> Consent:
    """The consent of a visitor who has not decided (for this revision)."""
    return Consent(
        id=None,
        revision=conf.CONSENT_REVISION,
        given=False,
        decided_at=None,
        gpc=gpc_requested(request),
    )


def read(request: HttpRequest) -> Consent:
    """The consent of ``request``, from its cookie; no decision when there is
    no valid cookie for the current revision within the max age."""
    value = request.COOKIES.get(conf.CONSENT_COOKIE_NAME)
    if not value:
        return undecided(request)
    max_age = conf.CONSENT_MAX_AGE
    try:
        payload = signing.loads(
            value,
            salt=SALT,
            max_age=max_age,
        )
        return _from_payload(payload, request)
    except (
        signing.BadSignature,
        ValueError,
        TypeError,
        KeyError,
        AttributeError,
        OverflowError,
        OSError,
    ):
        return undecided(request)


def _from_payload(payload: Any, request: HttpRequest) -> Consent:
    if not isinstance(payload, dict) or payload.get("v") != FORMAT:
        raise ValueError("not a consent cookie of this format")
    revision = payload["r"]
    if not isinstance(revision, int) or revision != conf.CONSENT_REVISION:
        raise ValueError("another revision")
    decided = datetime.fromtimestamp(int(payload["t"]), tz=UTC)
    known = {c.key for c in categories() if not c.required}
    granted = frozenset(str(k) for k in payload["g"]) & known
    overrides = frozenset(str(k) for k in payload.get("x", ())) & granted
    return Consent(
        id=uuid.UUID(hex=str(payload["i"])),
        revision=revision,
        given=True,
        decided_at=decided,
        gpc=gpc_requested(request),
        granted_keys=granted,
        gpc_overrides=overrides,
    )


def decide(
    request: HttpRequest,
    granted: Iterable[str],
    *,
    explicit: bool,
    previous: Consent | None = None,
) -> Consent:
    """A new decision of the visitor of ``request``: the non-required
    categories of ``granted`` (unknown keys are ignored).

    ``explicit`` is true for a choice made category by category (the
    "Choose" form, the preferences page): then a ``gpc`` category granted
    while the request carries ``Sec-GPC: 1`` overrides the signal. "Accept
    all" is not explicit: it grants no category the signal refuses. The
    consent id of ``previous`` (the visitor's last decision) is kept.
    """
    previous = previous if previous is not None else read(request)
    gpc = gpc_requested(request)
    known = {c.key: c for c in categories() if not c.required}
    chosen = frozenset(k for k in granted if k in known)
    if gpc and explicit:
        overrides = frozenset(k for k in chosen if known[k].gpc)
    else:
        # Earlier overrides keep their meaning: "Accept all" under the
        # signal does not withdraw a category granted explicitly before.
        overrides = previous.gpc_overrides & chosen
    if gpc and not explicit:
        chosen = frozenset(k for k in chosen if not known[k].gpc or k in overrides)
    return Consent(
        id=previous.id or uuid.uuid4(),
        revision=conf.CONSENT_REVISION,
        given=True,
        decided_at=datetime.fromtimestamp(int(time.time()), tz=UTC),
        gpc=gpc,
        granted_keys=chosen,
        gpc_overrides=overrides,
    )


def cookie_value(consent: Consent) -> str:
    """The signed cookie value of a decision."""
    assert consent.id is not None and consent.decided_at is not None
    payload: dict[str, Any] = {
        "v": FORMAT,
        "i": consent.id.hex,
        "r": consent.revision,
        "t": int(consent.decided_at.timestamp()),
        "g": sorted(consent.granted_keys),
    }
    if consent.gpc_overrides:
        payload["x"] = sorted(consent.gpc_overrides)
    return signing.dumps(payload, salt=SALT, compress=False)


def set_cookie(response: HttpResponseBase, consent: Consent) -> None:
    """Set the consent cookie of ``consent`` on ``response``: signed, for
    ``SESSIONKIT_CONSENT_MAX_AGE``, Secure, SameSite, domain and path as the
    session cookie's; readable by scripts (it holds no secret), so that a
    cached banner can hide itself."""
    max_age = conf.CONSENT_MAX_AGE
    response.set_cookie(
        conf.CONSENT_COOKIE_NAME,
        cookie_value(consent),
        max_age=int(max_age.total_seconds()) if max_age is not None else None,
        domain=settings.SESSION_COOKIE_DOMAIN,
        path=settings.SESSION_COOKIE_PATH,
        secure=settings.SESSION_COOKIE_SECURE,
        httponly=False,
        samesite=settings.SESSION_COOKIE_SAMESITE,
    )


def as_json(consent: Consent) -> Mapping[str, Any]:
    """The decision as JSON for the consent endpoint's answer and scripts."""
    return {
        "given": consent.given,
        "id": str(consent.id) if consent.id is not None else None,
        "revision": consent.revision,
        "choices": consent.choices,
        "gpc": consent.gpc,
        "gpc_honoured": consent.gpc_honoured,
        "google": consent.google_consent(),
    }


def choices_context(consent: Consent) -> list[tuple[Any, bool]]:
    """``consent_choices`` for ``django_sessionkit/consent_choices.html``: each
    category and whether its toggle starts checked (granted now)."""
    return [(c, consent.granted(c.key)) for c in categories()]
