"""A database session store with keys hashed at rest.

Use it as ``SESSION_ENGINE = "django_sessionkit.backends.db"``. It keeps the
contract of ``django.contrib.sessions.backends.db`` and adds:

- only ``sha256(key)`` reaches the database; malformed keys cost no query;
- the session's user, sign-in time, IP and user agent live in columns;
- ``cycle_key()`` changes the key of the same row instead of copying it;
- saving a session whose row is gone fails instead of re-creating it;
- expired sessions are deleted in batches of bounded size.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth import SESSION_KEY, get_user_model
from django.contrib.sessions.backends.base import CreateError, SessionBase, UpdateError
from django.contrib.sessions.exceptions import SessionInterrupted
from django.core.exceptions import ValidationError
from django.db import IntegrityError, router, transaction
from django.db.models import Q
from django.http import HttpRequest
from django.utils import timezone

from django_sessionkit import client
from django_sessionkit.conf import conf
from django_sessionkit.keys import hash_key, is_well_formed, new_key
from django_sessionkit.models import Session, SessionQuerySet

_INTERRUPTED = (
    "The request's session was deleted before the request completed. "
    "The user may have logged out in a concurrent request, for example."
)


@dataclass(frozen=True)
class SignIn:
    """What is recorded when a session signs in."""

    at: datetime
    ip: str | None
    user_agent: str


class SessionStore(SessionBase):
    """Database-backed sessions; the raw key is never stored."""

    def __init__(self, session_key: str | None = None) -> None:
        super().__init__(session_key)
        # The row this store loaded or wrote, if any: a save that finds it
        # gone must not re-create it.
        self._record: Session | None = None
        self._has_row = False
        self._sign_in: SignIn | None = None

    def __repr__(self) -> str:
        session_id = self._record.pk if self._record is not None else None
        return f"<{type(self).__name__} id={session_id}>"

    # -- Model and queries shared by the sync and async paths --------------

    @classmethod
    def get_model_class(cls) -> type[Session]:
        return Session

    @classmethod
    def _queryset(cls) -> SessionQuerySet:
        # Validity is always read from the database that is written to, never
        # a replica that may not have seen a logout or revocation yet.
        model = cls.get_model_class()
        return model.objects.using(router.db_for_write(model))

    @staticmethod
    def _expired(now: datetime) -> Q:
        return Q(expire_date__lte=now) | Q(absolute_expire_date__lte=now)

    def _lookup(self, session_key: str | None) -> SessionQuerySet | None:
        """The rows for ``session_key``, or ``None`` for a key never issued."""
        if not is_well_formed(session_key):
            return None
        assert session_key is not None
        return self._queryset().filter(key_hash=hash_key(session_key))

    def _load_query(self) -> SessionQuerySet | None:
        # The simplest query the unique index answers; deadlines are checked
        # against the application's clock in _found().
        rows = self._lookup(self.session_key)
        if rows is None:
            self._session_key = None
            return None
        return rows[:1]

    @staticmethod
    def is_live(record: Session, now: datetime) -> bool:
        """Whether ``record`` is within both of its deadlines at ``now``."""
        absolute = record.absolute_expire_date
        return record.expire_date > now and (absolute is None or absolute > now)

    def _found(self, rows: list[Session]) -> dict[str, Any]:
        record = rows[0] if rows else None
        if record is None or not self.is_live(record, timezone.now()):
            self._session_key = None
            return {}
        self._record = record
        self._has_row = True
        return self.decode(record.session_data)

    def _user_id(self, data: dict[str, Any]) -> Any:
        raw = data.get(SESSION_KEY)
        if raw is None:
            return None
        try:
            return get_user_model()._meta.pk.to_python(raw)
        except ValidationError:
            return None

    def _row_values(self, data: dict[str, Any]) -> dict[str, Any]:
        """The columns written by every save, create and rotation."""
        values: dict[str, Any] = {
            "session_data": self.encode(data),
            "expire_date": self.get_expiry_date(),
            "user_id": self._user_id(data),
            "last_seen_at": timezone.now(),
        }
        if self._sign_in is not None:
            values["authenticated_at"] = self._sign_in.at
            values["ip"] = self._sign_in.ip
            values["user_agent"] = self._sign_in.user_agent
        return values

    def _new_record(self, data: dict[str, Any]) -> Session:
        session_key = self._session_key
        if not is_well_formed(session_key):
            # Only keys this store generated are ever written.
            raise CreateError
        assert session_key is not None
        return self.get_model_class()(
            key_hash=hash_key(session_key), **self._row_values(data)
        )

    def _inserted(self, record: Session) -> None:
        self._record = record
        self._has_row = True
        self._sign_in = None

    def _rotated(self, updated: int, session_key: str) -> bool:
        if not updated:
            return False
        self._session_key = session_key
        self._has_row = True
        self._sign_in = None
        self.modified = True
        return True

    def _row_gone(self) -> None:
        """Refuse to continue a session whose row was deleted meanwhile."""
        if self._has_row:
            raise SessionInterrupted(_INTERRUPTED)

    def _get_new_session_key(self) -> str:
        # 165 random bits: a collision is caught by the unique index on
        # ``key_hash`` (create() then retries), so no SELECT is spent on it.
        return new_key()

    # -- Hooks for the rest of the package ---------------------------------

    def mark_signed_in(self, request: HttpRequest) -> None:
        """Record a sign-in (time, IP, user agent) with the next write.

        Called on ``user_logged_in`` for ``login()`` and ``alogin()`` alike.
        """
        self._sign_in = SignIn(
            at=timezone.now(),
            ip=client.ip_for_storage(client.client_ip(request)),
            user_agent=client.user_agent_for_storage(request),
        )

    @property
    def record(self) -> Session | None:
        """The session's row as this request loaded or wrote it."""
        self._get_session()  # type: ignore[attr-defined]
        return self._record

    # -- Sync API ------------------------------------------------------------

    def load(self) -> dict[str, Any]:
        rows = self._load_query()
        return self._found(list(rows) if rows is not None else [])

    def exists(self, session_key: str | None) -> bool:
        rows = self._lookup(session_key)
        return rows is not None and rows.exists()

    def create(self) -> None:
        while True:
            self._session_key = self._get_new_session_key()
            try:
                self.save(must_create=True)
            except CreateError:
                continue
            self.modified = True
            return

    def save(self, must_create: bool = False) -> None:
        if self.session_key is None:
            return self.create()
        data = self._get_session(no_load=must_create)  # type: ignore[attr-defined]
        if must_create:
            record = self._new_record(data)
            using = router.db_for_write(type(record), instance=record)
            try:
                with transaction.atomic(using=using):
                    record.save(force_insert=True, using=using)
            except IntegrityError:
                if self.exists(self.session_key):
                    raise CreateError from None
                raise
            self._inserted(record)
            return
        rows = self._lookup(self.session_key)
        if rows is None or not rows.update(**self._row_values(data)):
            raise UpdateError
        self._sign_in = None

    def delete(self, session_key: str | None = None) -> None:
        if session_key is None:
            if self.session_key is None:
                return
            session_key = self.session_key
        rows = self._lookup(session_key)
        if rows is not None:
            rows.delete()
        if session_key == self._session_key:
            self._has_row = False
            self._record = None

    def cycle_key(self) -> None:
        """Give the session a new key, keeping its row, id and history."""
        data = self._session  # type: ignore[attr-defined]
        rows = self._lookup(self.session_key)
        new = self._get_new_session_key()
        if rows is not None and self._rotated(
            rows.update(key_hash=hash_key(new), **self._row_values(data)), new
        ):
            return
        self._row_gone()
        self.create()
        self._session_cache = data

    @classmethod
    def clear_expired(cls) -> None:
        """Delete expired sessions, ``SESSIONKIT_CLEANUP_BATCH_SIZE`` at a time."""
        expired = cls._queryset().filter(cls._expired(timezone.now()))
        batch = conf.CLEANUP_BATCH_SIZE
        while ids := list(expired.values_list("pk", flat=True)[:batch]):
            cls._queryset().filter(pk__in=ids).delete()

    # -- Async API -------------------------------------------------------------

    async def aload(self) -> dict[str, Any]:
        rows = self._load_query()
        return self._found([row async for row in rows] if rows is not None else [])

    async def aexists(self, session_key: str | None) -> bool:
        rows = self._lookup(session_key)
        return rows is not None and await rows.aexists()

    async def acreate(self) -> None:
        while True:
            self._session_key = self._get_new_session_key()
            try:
                await self.asave(must_create=True)
            except CreateError:
                continue
            self.modified = True
            return

    async def asave(self, must_create: bool = False) -> None:
        if self.session_key is None:
            return await self.acreate()
        data = await self._aget_session(no_load=must_create)  # type: ignore[attr-defined]
        if must_create:
            record = self._new_record(data)
            using = router.db_for_write(type(record), instance=record)
            try:
                # A single INSERT: in autocommit (async views never run in
                # ATOMIC_REQUESTS) a failure leaves no transaction to repair.
                await record.asave(force_insert=True, using=using)
            except IntegrityError:
                if await self.aexists(self.session_key):
                    raise CreateError from None
                raise
            self._inserted(record)
            return
        rows = self._lookup(self.session_key)
        if rows is None or not await rows.aupdate(**self._row_values(data)):
            raise UpdateError
        self._sign_in = None

    async def adelete(self, session_key: str | None = None) -> None:
        if session_key is None:
            if self.session_key is None:
                return
            session_key = self.session_key
        rows = self._lookup(session_key)
        if rows is not None:
            await rows.adelete()
        if session_key == self._session_key:
            self._has_row = False
            self._record = None

    async def acycle_key(self) -> None:
        """Give the session a new key, keeping its row, id and history."""
        data = await self._aget_session()  # type: ignore[attr-defined]
        rows = self._lookup(self.session_key)
        new = self._get_new_session_key()
        if rows is not None and self._rotated(
            await rows.aupdate(key_hash=hash_key(new), **self._row_values(data)), new
        ):
            return
        self._row_gone()
        await self.acreate()
        self._session_cache = data

    @classmethod
    async def aclear_expired(cls) -> None:
        """Delete expired sessions, ``SESSIONKIT_CLEANUP_BATCH_SIZE`` at a time."""
        expired = cls._queryset().filter(cls._expired(timezone.now()))
        batch = conf.CLEANUP_BATCH_SIZE
        while ids := [pk async for pk in expired.values_list("pk", flat=True)[:batch]]:
            await cls._queryset().filter(pk__in=ids).adelete()
