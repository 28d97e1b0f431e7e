"""Sessions, the devices they come from, and the audit trail.

A session row never holds its raw key: ``key_hash`` is the SHA-256 of the
cookie value. The surrogate primary key is the session's stable identity; the
key is only its current credential and changes in place on rotation.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import FieldError
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from django_sessionkit.keys import hash_key

if TYPE_CHECKING:
    from django_sessionkit.backends.db import SessionStore

#: The length of the ``user_agent`` columns of :class:`Session` and
#: :class:`Device`; a longer User-Agent is cut to it before it is stored.
USER_AGENT_MAX_LENGTH = 512
#: The length of each field parsed from a user agent (browser, OS, family).
PARSED_MAX_LENGTH = 100
#: What an unrecognised browser, OS or device family is shown as.
UNKNOWN = _("Unknown")


#: The lookups of ``session_key`` that can be answered from the hash.
_KEY_LOOKUPS = {"session_key": "key_hash", "session_key__exact": "key_hash"}
_KEY_IN_LOOKUP = "session_key__in"


def _hash_lookup(lookup: str, value: Any) -> tuple[str, Any]:
    """``lookup=value`` on ``session_key`` as the same lookup on ``key_hash``."""
    if lookup in _KEY_LOOKUPS:
        return _KEY_LOOKUPS[lookup], hash_key(value or "")
    if lookup == _KEY_IN_LOOKUP and not isinstance(value, str | models.QuerySet):
        return "key_hash__in", [hash_key(key or "") for key in value]
    raise FieldError(
        f"{lookup}: a session's key is stored only as its hash, so only "
        "session_key=<key> and session_key__in=[<key>, ...] can be looked up; "
        "for anything else, filter on key_hash (see django_sessionkit.keys.hash_key)."
    )


def _is_key_lookup(lookup: str) -> bool:
    return lookup == "session_key" or lookup.startswith("session_key__")


def _translate_q(q: Q) -> Q:
    """A copy of ``q`` whose ``session_key`` lookups are on ``key_hash``."""
    translated = Q()
    translated.connector = q.connector
    translated.negated = q.negated
    translated.children = [
        _translate_q(child)
        if isinstance(child, Q)
        else _hash_lookup(*child)
        if isinstance(child, tuple) and _is_key_lookup(child[0])
        else child
        for child in q.children
    ]
    return translated


class SessionQuerySet(models.QuerySet["Session"]):
    """A queryset that understands ``session_key=<raw key>`` lookups.

    Code written for ``django.contrib.sessions`` filters on ``session_key``;
    here the raw key is hashed before it reaches the query, so it is never
    sent to the database. ``session_key=`` (or ``__exact``) and
    ``session_key__in=`` work in ``filter()``, ``exclude()``, ``get()`` and in
    ``Q`` objects given to them; any other lookup on ``session_key`` raises
    ``FieldError``, since a hash cannot answer it.
    """

    def _filter_or_exclude_inplace(
        self, negate: bool, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        # Every filter(), exclude(), get() and complex_filter() comes here.
        if any(_is_key_lookup(name) for name in kwargs):
            kwargs = dict(
                _hash_lookup(*item) if _is_key_lookup(item[0]) else item
                for item in kwargs.items()
            )
        args = tuple(_translate_q(arg) if isinstance(arg, Q) else arg for arg in args)
        super()._filter_or_exclude_inplace(negate, args, kwargs)  # type: ignore[misc]

    def live(self, now: datetime | None = None) -> SessionQuerySet:
        """The sessions within both of their deadlines at ``now`` (default:
        the current time): the one definition of a live session, twin of
        :meth:`Session.is_live`."""
        now = timezone.now() if now is None else now
        return self.filter(expire_date__gt=now).filter(
            Q(absolute_expire_date=None) | Q(absolute_expire_date__gt=now)
        )

    def expired(self, now: datetime | None = None) -> SessionQuerySet:
        """The sessions past their idle or absolute deadline at ``now``: the
        complement of :meth:`live` among rows whose timestamps are dates."""
        now = timezone.now() if now is None else now
        return self.filter(Q(expire_date__lte=now) | Q(absolute_expire_date__lte=now))

    def of_user(self, user: Any) -> SessionQuerySet:
        """The sessions of ``user`` (an instance of the user model)."""
        return self.filter(user_id=user.pk)


class Device(models.Model):
    """A browser or app a user signs in from.

    It is recognised by a long-lived device cookie holding a random token;
    only the token's SHA-256 (``token_hash``) is stored, and ``None`` once the
    device is revoked (its cookie then recognises nothing). The user agent is
    parsed once, when the device is first seen or its user agent changes; the
    results are kept here. An empty ``browser``, ``os`` or ``device_family``
    means unknown: see the ``*_label`` properties.
    """

    class Kind(models.TextChoices):
        """The choices of ``kind``: what sort of device its user agent says
        it is, as :func:`~django_sessionkit.devices.parse_user_agent` reads it."""

        MOBILE = "mobile", _("mobile")
        TABLET = "tablet", _("tablet")
        DESKTOP = "desktop", _("desktop")
        BOT = "bot", _("bot")
        OTHER = "other", _("other")

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="sessionkit_devices",
        verbose_name=_("user"),
    )
    # Unique through ``sessionkit_device_token_hash``; NULL for a device whose
    # token was forgotten (several may be).
    token_hash = models.CharField(  # noqa: DJ001
        _("token hash"), max_length=64, null=True, blank=True
    )
    name = models.CharField(_("name"), max_length=100, blank=True, default="")
    created_at = models.DateTimeField(_("first seen"), default=timezone.now)
    last_seen_at = models.DateTimeField(_("last seen"), default=timezone.now)
    user_agent = models.CharField(
        _("user agent"), max_length=USER_AGENT_MAX_LENGTH, blank=True, default=""
    )
    browser = models.CharField(
        _("browser"), max_length=PARSED_MAX_LENGTH, blank=True, default=""
    )
    os = models.CharField(
        _("operating system"), max_length=PARSED_MAX_LENGTH, blank=True, default=""
    )
    device_family = models.CharField(
        _("device family"), max_length=PARSED_MAX_LENGTH, blank=True, default=""
    )
    kind = models.CharField(
        _("type"), max_length=16, choices=Kind.choices, default=Kind.OTHER
    )
    ip = models.GenericIPAddressField(_("IP address"), null=True, blank=True)

    class Meta:
        verbose_name = _("device")
        verbose_name_plural = _("devices")
        ordering = ("-last_seen_at",)
        constraints = [
            models.UniqueConstraint(
                fields=["token_hash"], name="sessionkit_device_token_hash"
            ),
        ]

    def __str__(self) -> str:
        return self.name or gettext("Device %(id)s") % {"id": self.pk}

    @property
    def browser_label(self) -> str:
        """The browser and its version, or "Unknown"."""
        return self.browser or str(UNKNOWN)

    @property
    def os_label(self) -> str:
        """The operating system and its version, or "Unknown"."""
        return self.os or str(UNKNOWN)

    @property
    def device_family_label(self) -> str:
        """The hardware family ("iPhone"), or "Unknown"."""
        return self.device_family or str(UNKNOWN)


class Session(models.Model):
    """One server-side session, addressed by ``id``, found by ``key_hash``."""

    id = models.BigAutoField(primary_key=True)
    # Unique through ``sessionkit_session_key_hash`` (a constraint rather than
    # ``unique=True``, which on PostgreSQL adds a second, LIKE-only index).
    key_hash = models.CharField(_("key hash"), max_length=64)
    session_data = models.TextField(_("session data"))
    # Indexed through the leading column of ``sessionkit_user_valid``.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        db_index=False,
        related_name="sessionkit_sessions",
        verbose_name=_("user"),
    )
    device = models.ForeignKey(
        Device,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="sessions",
        verbose_name=_("device"),
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    authenticated_at = models.DateTimeField(_("signed in at"), null=True, blank=True)
    last_seen_at = models.DateTimeField(_("last activity"), default=timezone.now)
    expire_date = models.DateTimeField(_("expires at"), db_index=True)
    absolute_expire_date = models.DateTimeField(
        _("absolute expiry"), null=True, blank=True, db_index=True
    )
    ip = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    user_agent = models.CharField(
        _("user agent"), max_length=USER_AGENT_MAX_LENGTH, blank=True, default=""
    )
    remember_me = models.BooleanField(_("remember me"), default=False)
    rotated_at = models.DateTimeField(_("key rotated at"), null=True, blank=True)
    # The key before the last periodic rotation, honoured for a short grace
    # window, then a sign that the old key was copied. NULL, not "", when
    # there is none: most rows have none.
    previous_key_hash = models.CharField(  # noqa: DJ001
        _("previous key hash"), max_length=64, null=True, blank=True
    )
    rotate_due = models.BooleanField(_("key rotation due"), default=False)
    # Set by sessionkit_import: authenticated_at is then the import's time,
    # which anchors the deadlines but proves nothing about the user, so it
    # must not open the sudo window. The next sign-in clears it.
    signed_in_by_import = models.BooleanField(_("signed in by import"), default=False)

    objects = SessionQuerySet.as_manager()

    class Meta:
        verbose_name = _("session")
        verbose_name_plural = _("sessions")
        constraints = [
            models.UniqueConstraint(
                fields=["key_hash"], name="sessionkit_session_key_hash"
            ),
        ]
        indexes = [
            models.Index(fields=["user", "expire_date"], name="sessionkit_user_valid"),
            models.Index(fields=["previous_key_hash"], name="sessionkit_previous_key"),
        ]

    def __str__(self) -> str:
        return gettext("Session %(id)s") % {"id": self.pk}

    def __repr__(self) -> str:
        return f"<Session id={self.pk} user_id={self.user_id}>"

    @classmethod
    def get_session_store_class(cls) -> type[SessionStore]:
        """Return :class:`~django_sessionkit.backends.db.SessionStore`, which
        decodes ``session_data`` for :meth:`get_decoded` (the cached store
        encodes alike)."""
        from django_sessionkit.backends.db import SessionStore

        return SessionStore

    def is_live(self, now: datetime) -> bool:
        """Whether the session is within both of its deadlines at ``now``;
        the row-level twin of :meth:`SessionQuerySet.live`."""
        absolute = self.absolute_expire_date
        return self.expire_date > now and (absolute is None or absolute > now)

    def get_decoded(self) -> dict[str, Any]:
        """Return the session's data as a dict."""
        session_store_class = self.get_session_store_class()
        return session_store_class().decode(self.session_data)


class SessionEvent(models.Model):
    """An audit row: who, what, when and why. Never a session key.

    One is written for each sign-in, sign-out, rotation, timeout, revocation
    and anomaly, and for a sign-in from a new device, just before the signal
    that mirrors it. ``session_id`` is a plain integer, not a foreign key, so
    the event outlives its session.
    """

    class Kind(models.TextChoices):
        """The choices of ``kind``: what happened to the session."""

        LOGIN = "login", _("signed in")
        LOGOUT = "logout", _("signed out")
        ROTATE = "rotate", _("key rotated")
        REVOKE = "revoke", _("revoked")
        TIMEOUT = "timeout", _("timed out")
        NEW_DEVICE = "new_device", _("new device")
        ANOMALY = "anomaly", _("anomaly")

    kind = models.CharField(_("kind"), max_length=32, choices=Kind.choices)
    # A plain number, not a foreign key: the event outlives its session.
    session_id = models.BigIntegerField(
        _("session id"), null=True, blank=True, db_index=True
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="sessionkit_events",
        verbose_name=_("user"),
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("performed by"),
    )
    device = models.ForeignKey(
        Device,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="events",
        verbose_name=_("device"),
    )
    ip = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    created_at = models.DateTimeField(_("time"), default=timezone.now, db_index=True)
    reason = models.CharField(_("reason"), max_length=64, blank=True, default="")
    detail = models.JSONField(_("detail"), default=dict, blank=True)

    class Meta:
        verbose_name = _("session event")
        verbose_name_plural = _("session events")
        ordering = ("-created_at",)
        indexes = [
            # Counts a user's events of one reason in a time window (the
            # re-authentication failures) without reading their others.
            models.Index(
                fields=["user", "reason", "created_at"],
                name="sessionkit_event_user_reason",
            ),
        ]

    def __str__(self) -> str:
        return gettext("%(kind)s (session %(id)s)") % {
            "kind": self.get_kind_display(),
            "id": self.session_id,
        }


class CachePurge(models.Model):
    """A tombstone the cached store owes: the key hash of an ended or
    replaced key (never the key) whose cache entry must be overwritten.

    The cached store writes rows ahead, in the transaction of every
    revocation, sign-out, rotation and privilege change, so that a process
    dying between the commit and its cache write loses none; and it writes
    one when a save's cache write failed. A row is deleted once its
    tombstone is written, by the process that wrote it or by any process's
    sweep (:func:`~django_sessionkit.backends.cache_health.drain`). The table
    is empty while the cache is healthy, but for endings in progress. The
    admin does not show it.
    """

    key_hash = models.CharField(_("key hash"), max_length=64, unique=True)
    created_at = models.DateTimeField(_("recorded at"), default=timezone.now)

    class Meta:
        verbose_name = _("pending cache purge")
        verbose_name_plural = _("pending cache purges")

    def __str__(self) -> str:
        return gettext("Pending cache purge %(id)s") % {"id": self.pk}


class ConsentRecord(models.Model):
    """The proof of one consent decision (GDPR art. 7(1)): who decided what,
    for which revision, when, and through which door.

    ``consent_id`` is the pseudonymous id the visitor's consent cookie holds
    (shown on the preferences page, to be quoted); ``user`` is set when the
    visitor was signed in. Deleting the user keeps the proof without them
    (``SET_NULL``): the site must still be able to show what was consented
    to. Rows are removed by the cleanup after ``SESSIONKIT_CONSENT_RETENTION``.
    """

    class Source(models.TextChoices):
        """The choices of ``source``: where the decision was made."""

        BANNER = "banner", _("banner")
        PREFERENCES = "preferences", _("preferences page")
        API = "api", _("API")

    class Action(models.TextChoices):
        """The choices of ``action``: what the visitor decided."""

        ACCEPT_ALL = "accept_all", _("accepted all")
        REJECT_ALL = "reject_all", _("rejected all")
        CUSTOM = "custom", _("chose categories")
        WITHDRAWAL = "withdrawal", _("withdrew consent")

    consent_id = models.UUIDField(_("consent id"), db_index=True)
    choices = models.JSONField(_("choices"), default=dict)
    revision = models.PositiveIntegerField(_("revision"))
    source = models.CharField(_("source"), max_length=16, choices=Source.choices)
    action = models.CharField(_("action"), max_length=16, choices=Action.choices)
    gpc = models.BooleanField(_("Global Privacy Control"), default=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="sessionkit_consents",
        verbose_name=_("user"),
    )
    ip = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    created_at = models.DateTimeField(_("time"), default=timezone.now, db_index=True)

    class Meta:
        verbose_name = _("consent record")
        verbose_name_plural = _("consent records")
        ordering = ("-created_at",)

    def __str__(self) -> str:
        return gettext("Consent %(id)s (%(action)s)") % {
            "id": self.consent_id,
            "action": self.get_action_display(),
        }
