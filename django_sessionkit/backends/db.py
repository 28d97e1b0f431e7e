"""A database session store with keys hashed at rest.

Use it as ``SESSION_ENGINE = "django_sessionkit.backends.db"``. It keeps the
contract of ``django.contrib.sessions.backends.db`` and adds:

- only ``sha256(key)`` reaches the database; malformed keys cost no query;
- the session's user, sign-in time, IP, user agent and deadlines live in
  columns, and the deadlines are checked on every load;
- ``cycle_key()`` changes the key of the same row instead of copying it;
- saving a session whose row is gone fails instead of re-creating it;
- a periodic rotation keeps the previous key valid for a short grace window
  and recognises it afterwards as a sign that it was copied;
- expired sessions are deleted in batches of bounded size.
"""

from __future__ import annotations

import functools
import logging
from contextvars import ContextVar
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol

from asgiref.sync import sync_to_async
from django.contrib.auth import SESSION_KEY, get_user_model
from django.contrib.sessions.backends.base import CreateError, SessionBase, UpdateError
from django.contrib.sessions.exceptions import SessionInterrupted
from django.core.exceptions import ValidationError
from django.db import (
    DatabaseError,
    IntegrityError,
    connections,
    models,
    router,
    transaction,
)
from django.db.models.expressions import RawSQL
from django.db.models.query import RawQuerySet
from django.http import HttpRequest
from django.utils import timezone

from django_sessionkit import cleanup, client, policy
from django_sessionkit.conf import conf
from django_sessionkit.keys import (
    hash_key,
    is_well_formed,
    matching_successor,
    new_key,
    successor,
)
from django_sessionkit.models import Session, SessionQuerySet
from django_sessionkit.shield import shielded

# Django's own session stores log here; sites already watch this logger.
logger = logging.getLogger("django.contrib.sessions")

_INTERRUPTED = (
    "The request's session was deleted before the request completed. "
    "The user may have logged out in a concurrent request, for example."
)


#: What a row whose timestamps are not all dates is read with (SQLite only).
UNREADABLE = "sessionkit_unreadable"
#: What reading a row whose timestamps are not dates raises from Django's
#: SQLite converters ("2026-13-45" and the like).
_CONVERSION_ERRORS = (ValueError, TypeError, AttributeError, OverflowError)


def _date_columns(model: type[Session]) -> list[str]:
    return [
        str(field.column)
        for field in model._meta.concrete_fields
        if isinstance(field, models.DateTimeField)
    ]


def _unreadable_condition(model: type[Session], using: str) -> str | None:
    """SQL that is true for a row with a timestamp that is not a date.

    Only SQLite can hold one (text written by raw SQL, say), and Django reads
    most such text as NULL, which for a deadline would mean none at all.
    Django writes every timestamp as text that ``julianday()`` understands.
    ``None`` on other databases.
    """
    connection = connections[using]
    if connection.vendor != "sqlite":
        return None
    quote = connection.ops.quote_name
    return " OR ".join(
        f"({quote(c)} IS NOT NULL AND "
        f"(typeof({quote(c)}) <> 'text' OR julianday({quote(c)}) IS NULL))"
        for c in _date_columns(model)
    )


def _unreadable_sql(model: type[Session], using: str) -> str:
    """The load query's extra column saying whether the row is unreadable."""
    condition = _unreadable_condition(model, using)
    if condition is None:
        return ""
    return f", ({condition}) AS {connections[using].ops.quote_name(UNREADABLE)}"


@functools.cache
def _load_sql(model: type[Session], using: str) -> str:
    connection = connections[using]
    quote = connection.ops.quote_name
    columns = ", ".join(
        quote(str(field.column)) for field in model._meta.concrete_fields
    ) + _unreadable_sql(model, using)
    table = quote(model._meta.db_table)
    key_hash = quote(str(model._meta.get_field("key_hash").column))
    previous = quote(str(model._meta.get_field("previous_key_hash").column))
    # The presented key is a session's current key or (within a rotation's
    # grace window, or as a stale copy) its previous one: one statement asks
    # both, each side answered by its index, so an unknown key costs one
    # query like a live one. Two rows at most: the current key is unique, and
    # a previous key is the key of at most one row before its rotation.
    limit = connection.ops.limit_offset_sql(0, 2)
    return (
        f"SELECT {columns} FROM {table} "  # noqa: S608
        f"WHERE {key_hash} = %s OR {previous} = %s {limit}"
    )


#: The session store of the request being handled: the first store made in
#: this context (and the middleware's, when it runs); read it with
#: ``http.current_store()``. A password change keeps it (see
#: ``lifecycle.user_changed()``). Emptied when a request starts and ends
#: (``receivers``), so no store outlives its request here.
current_session: ContextVar[SessionStore | None] = ContextVar(
    "sessionkit_current_session", default=None
)


#: In the data of a session signed in by a backend that returned something
#: other than ``AUTH_USER_MODEL``: its id is no user's, so the row gets none.
UNLINKED_USER_KEY = "_sessionkit_unlinked_user"


class RotationListener(Protocol):
    """Told when a store's save made the rotation it was scheduled for."""

    def rotated(self, record: Session) -> None:
        """The write of this request gave ``record`` its new key."""

    async def arotated(self, record: Session) -> None:
        """Async twin of :meth:`rotated`."""


@dataclass(frozen=True)
class SignIn:
    """What is recorded when a session signs in."""

    at: datetime
    ip: str | None
    user_agent: str
    device_id: int | None = None


class SessionStore(SessionBase):
    """Database-backed sessions; the raw key is never stored."""

    def __init__(self, session_key: str | None = None) -> None:
        super().__init__(session_key)
        # The row this store loaded or wrote, if any: a save that finds it
        # gone must not re-create it.
        self._record: Session | None = None
        self._has_row = False
        self._sign_in: SignIn | None = None
        self._signed_in_at: datetime | None = None
        # Set by the policy middleware (or a sign-in) for the next write.
        self._deadlines: policy.Deadlines | None = None
        self._active_at: datetime | None = None
        self._remember: bool | None = None
        # Who records the rotation scheduled for the next save, if any.
        self._rotation: RotationListener | None = None
        #: True once this request gave the session a new key (cycle_key,
        #: flush or create): a sign-in then needs no further rotation.
        self.key_renewed = False
        #: Why the presented session was refused: "idle" or "absolute" when
        #: it passed a deadline, "stale_key" when a previous key came back
        #: after its grace window. ``ended_record`` is its row.
        self.ended_reason: str | None = None
        self.ended_record: Session | None = None
        #: The row this request's ``flush()`` deleted (Django's ``login()``
        #: flushes the session of another user), for the sign-in to record.
        self.flushed_record: Session | None = None
        # Without the middleware, this is how a password change made in the
        # request finds the session to keep: the request's session is the
        # first store made in it (Django's SessionMiddleware makes it before
        # any view runs); a store made later to decode another session's
        # data must not take its place.
        if current_session.get() is None:
            current_session.set(self)

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

    def _lookup(self, session_key: str | None) -> SessionQuerySet | None:
        """The rows for ``session_key``, or ``None`` for a key never issued."""
        if not is_well_formed(session_key):
            return None
        assert session_key is not None
        return self._queryset().filter(key_hash=hash_key(session_key))

    def _load_query(self) -> RawQuerySet[Session] | None:
        # The one query on the path of every request, live key or not: the
        # indexes on key_hash and previous_key_hash answer it, the deadlines
        # are checked against the application's clock in _found(), and it is
        # written as SQL once per database so that no request pays for
        # building it.
        session_key = self.session_key
        if not is_well_formed(session_key):
            self._session_key = None
            return None
        assert session_key is not None
        model = self.get_model_class()
        using = router.db_for_write(model)
        presented = hash_key(session_key)
        return model.objects.db_manager(using).raw(
            _load_sql(model, using), [presented, presented]
        )

    def _unreadable(self) -> dict[str, Any]:
        """The session's row has a timestamp that is not a date: it is dead.

        No deadline of it can be checked, so it is never served; it is left
        to ``clear_expired()``, which deletes such rows.
        """
        logger.warning(
            "A session row has a timestamp that is not a date; the session is "
            "treated as ended (clearsessions deletes it)"
        )
        return self._end(None, None)

    def _loaded(self, rows: list[Session]) -> dict[str, Any]:
        """The data of the rows the load query found, current key first."""
        assert self._session_key is not None
        if any(
            getattr(row, UNREADABLE, False) or row.expire_date is None for row in rows
        ):
            return self._unreadable()
        presented = hash_key(self._session_key)
        current = [row for row in rows if row.key_hash == presented]
        if current:
            return self._found(current)
        return self._found_predecessor(rows)

    def _end(self, record: Session | None, reason: str | None) -> dict[str, Any]:
        self._session_key = None
        self.ended_record = record
        self.ended_reason = reason if record is not None else None
        return {}

    def _found(self, rows: list[Session]) -> dict[str, Any]:
        record = rows[0] if rows else None
        if record is None:
            return self._end(None, None)
        now = timezone.now()
        if not record.is_live(now):
            deadlines = policy.Deadlines(
                idle=record.expire_date, absolute=record.absolute_expire_date
            )
            return self._end(record, deadlines.passed(now) or "idle")
        self._record = record
        self._has_row = True
        return self.decode(record.session_data)

    def _found_predecessor(self, rows: list[Session]) -> dict[str, Any]:
        record = rows[0] if rows else None
        presented = self._session_key
        if record is None or presented is None:
            return self._end(None, None)
        grace = conf.ROTATE_GRACE
        in_grace = (
            grace is not None
            and record.rotated_at is not None
            and timezone.now() <= record.rotated_at + grace
        )
        current = matching_successor(presented, record.key_hash) if in_grace else None
        if current is None:
            return self._end(record, "stale_key")
        # A request that raced the rotation, or whose response carrying the
        # new key was lost: continue with the successor and send it again.
        data = self._found(rows)
        if self._record is not None:
            self._session_key = current
            self.modified = True
        return data

    def _user_id(self, data: dict[str, Any]) -> Any:
        raw = data.get(SESSION_KEY)
        if raw is None or data.get(UNLINKED_USER_KEY):
            return None
        try:
            return get_user_model()._meta.pk.to_python(raw)
        except ValidationError:
            return None

    def _expire_date(self, user_id: Any) -> datetime:
        expiry = self.get_expiry_date()
        if self._deadlines is not None and self._deadlines.idle is not None:
            return min(expiry, self._deadlines.idle)
        if self._deadlines is None and user_id is not None and self._record is not None:
            # Nothing but the policy extends a signed-in session's deadline.
            return min(expiry, self._record.expire_date)
        return expiry

    def _row_values(self, data: dict[str, Any]) -> dict[str, Any]:
        """The columns written by every save, create and rotation."""
        user_id = self._user_id(data)
        values: dict[str, Any] = {
            "session_data": self.encode(data),
            "expire_date": self._expire_date(user_id),
            "user_id": user_id,
        }
        if self._active_at is not None:
            values["last_seen_at"] = self._active_at
        if self._deadlines is not None:
            values["absolute_expire_date"] = self._deadlines.absolute
        if self._remember is not None:
            values["remember_me"] = self._remember
        if self._sign_in is not None:
            values["authenticated_at"] = self._sign_in.at
            values["signed_in_by_import"] = False
            values["ip"] = self._sign_in.ip
            values["user_agent"] = self._sign_in.user_agent
            if self._sign_in.device_id is not None:
                values["device_id"] = self._sign_in.device_id
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

    def _written(self) -> None:
        if self._sign_in is not None:
            self._signed_in_at = self._sign_in.at
        self._sign_in = None
        self._rotation = None

    def _inserted(self, record: Session) -> None:
        self._record = record
        self._has_row = True
        self.key_renewed = True
        self._written()

    @staticmethod
    def _rotation_values(previous_key: str | None) -> dict[str, Any]:
        return {
            "rotated_at": timezone.now(),
            "previous_key_hash": hash_key(previous_key) if previous_key else None,
            "rotate_due": False,
        }

    def _rotated(self, updated: int, session_key: str) -> bool:
        if not updated:
            return False
        self._session_key = session_key
        self._has_row = True
        self.key_renewed = True
        self.modified = True
        self._written()
        return True

    def _ended_since_sign_in(self) -> bool:
        """Whether this request signed the session in and its row was ended
        since (a simultaneous sign-in beyond the session limit evicted it).

        The sign-in was written, under the limit's lock, and then ended as
        any session can be: the response goes out as a signed-in one, the
        row is not re-created, and the next request is anonymous. Answering
        400 instead would show the user an error for signing in.
        """
        if self._signed_in_at is None and self._sign_in is None:
            return False
        self._sign_in = None
        self._has_row = False
        self._record = None
        return True

    def _row_gone(self) -> None:
        """Refuse to continue a session whose row was deleted meanwhile."""
        if self._has_row:
            raise SessionInterrupted(_INTERRUPTED)

    def _user_query(self, data: dict[str, Any]) -> Any:
        """The session's user's row, to ask whether it still exists, or ``None``."""
        user_id = self._user_id(data)
        if user_id is None:
            return None
        model = get_user_model()
        return model._default_manager.using(router.db_for_write(model)).filter(
            pk=user_id
        )

    def _user_gone(self, data: dict[str, Any]) -> bool:
        """After a failed write: whether it failed because the user was deleted.

        A session naming a user who no longer exists is over, like a revoked
        one: its save fails as a save of a deleted session does, never with
        a server error, and it is not written without its user either (that
        would keep a sign-in that nobody can end).
        """
        users = self._user_query(data)
        try:
            return users is not None and not users.exists()
        except DatabaseError:
            return False  # a transaction that cannot answer: show the first error

    async def _auser_gone(self, data: dict[str, Any]) -> bool:
        """Async twin of :meth:`_user_gone`."""
        users = self._user_query(data)
        try:
            return users is not None and not await users.aexists()
        except DatabaseError:
            return False

    def _update(
        self, rows: SessionQuerySet, values: dict[str, Any], data: dict[str, Any]
    ) -> int:
        """``rows.update(**values)``; 0 when the session's user is gone."""
        try:
            return rows.update(**values)
        except IntegrityError:
            if self._user_gone(data):
                return 0
            raise

    async def _aupdate(
        self, rows: SessionQuerySet, values: dict[str, Any], data: dict[str, Any]
    ) -> int:
        """Async twin of :meth:`_update`."""
        try:
            return await rows.aupdate(**values)
        except IntegrityError:
            if await self._auser_gone(data):
                return 0
            raise

    def _get_new_session_key(self) -> str:
        # 165 random bits: a collision is caught by the unique index on
        # ``key_hash`` (create() then retries), so no SELECT is spent on it.
        return new_key()

    def _cycle_update(
        self, data: dict[str, Any]
    ) -> tuple[SessionQuerySet | None, str, dict[str, Any]]:
        new = self._get_new_session_key()
        values = {
            "key_hash": hash_key(new),
            **self._row_values(data),
            **self._rotation_values(None),
        }
        return self._lookup(self.session_key), new, values

    def _interval_update(
        self, data: dict[str, Any]
    ) -> tuple[SessionQuerySet, str, dict[str, Any]]:
        old = self.session_key
        assert old is not None
        new = successor(old)
        values = {
            "key_hash": hash_key(new),
            **self._row_values(data),
            **self._rotation_values(old),
        }
        rows = self._lookup(old)
        assert rows is not None
        return rows, new, values

    def _raced_rotation(self, old: str, new: str) -> SessionQuerySet:
        # A parallel request rotated the same key first: the successor is the
        # same one, so adopting it leaves one live key and signs nobody out.
        return self._queryset().filter(
            key_hash=hash_key(new), previous_key_hash=hash_key(old)
        )

    def _rekey(
        self,
        rows: SessionQuerySet,
        values: dict[str, Any],
        old: str,
        data: dict[str, Any],
    ) -> int:
        """Update ``rows`` (found by the key ``old``) with a new key; return
        how many changed (0 also when the session's user is gone).

        With a store that caches rows, the purge of ``old`` is recorded in
        the same transaction (:meth:`ending`).
        """
        if not self.caches_rows:
            return self._update(rows, values, data)
        try:
            with transaction.atomic(using=rows.db):
                changed = rows.update(**values)
                if changed:
                    self.ending([hash_key(old)])
        except IntegrityError:
            # Outside the failed transaction: the check needs a query.
            if self._user_gone(data):
                return 0
            raise
        return changed

    async def _arekey(
        self,
        rows: SessionQuerySet,
        values: dict[str, Any],
        old: str,
        data: dict[str, Any],
    ) -> int:
        if not self.caches_rows:
            return await self._aupdate(rows, values, data)
        # The async ORM has no transactions: one on the ORM's thread.
        changed: int = await sync_to_async(self._rekey)(rows, values, old, data)
        return changed

    def _remove(self, rows: SessionQuerySet, key_hash: str) -> None:
        """Delete ``rows``, recording the purge of ``key_hash`` with it."""
        if not self.caches_rows:
            rows.delete()
            return
        with transaction.atomic(using=rows.db):
            if rows.delete()[0]:
                self.ending([key_hash])

    async def _aremove(self, rows: SessionQuerySet, key_hash: str) -> None:
        if not self.caches_rows:
            await rows.adelete()
            return
        await sync_to_async(self._remove)(rows, key_hash)

    # -- Hooks for a store that caches rows (backends/cached_db.py) ----------

    def row_written(
        self,
        values: dict[str, Any] | None,
        *,
        replaced: str | None = None,
        complete: bool = True,
    ) -> None:
        """Called after each successful write of the row by this store (save,
        touch, rotation, key change), once the database has accepted it.

        ``values`` are the columns the write set (``None``: the row was
        inserted whole); ``replaced`` is the key hash the write took away
        (a rotation or key change); ``complete`` is false when this request
        does not know the whole row after the write. Does nothing here: a
        store that keeps copies of rows (``caches_rows``) overrides it to
        bring its copy up to date and to purge ``replaced``. It must not
        raise for a failure of its copy: the write has happened.
        """

    async def arow_written(
        self,
        values: dict[str, Any] | None,
        *,
        replaced: str | None = None,
        complete: bool = True,
    ) -> None:
        """Async twin of :meth:`row_written`, awaited by the async methods."""

    def row_removed(self, key_hash: str) -> None:
        """Called after this store deleted the row of ``key_hash`` (``delete()``,
        and so ``flush()`` and logout).

        Does nothing here: a store that keeps copies of rows overrides it to
        purge its copy, so the deleted session is never served again.
        """

    async def arow_removed(self, key_hash: str) -> None:
        """Async twin of :meth:`row_removed`, awaited by ``adelete()``."""

    @classmethod
    def ending(cls, key_hashes: list[str]) -> None:
        """Called inside the transaction that ends or re-keys the rows of
        ``key_hashes``, before it commits.

        A store that caches rows records the purges it will owe, so that a
        process dying between the commit and :meth:`ended` loses none.
        """

    @classmethod
    def ended(cls, key_hashes: list[str]) -> None:
        """Called after the revocation API deleted the rows of ``key_hashes``.

        Only stores with ``caches_rows`` are told; the database store keeps
        nothing else to forget.
        """

    @classmethod
    async def aended(cls, key_hashes: list[str]) -> None:
        """Async twin of :meth:`ended`."""

    #: Whether this store keeps copies of rows that revocation must purge.
    caches_rows = False

    # -- Hooks for the rest of the package ---------------------------------

    def mark_signed_in(self, request: HttpRequest, user: Any) -> None:
        """Record a sign-in (time, IP, user agent, deadlines) with the next write.

        Called on ``user_logged_in`` for ``login()`` and ``alogin()`` alike.
        """
        now = timezone.now()
        self._sign_in = SignIn(
            at=now,
            ip=client.ip_for_storage(client.client_ip(request)),
            user_agent=client.user_agent_for_storage(request),
        )
        self._remember = False
        self.set_policy_deadlines(policy.resolve(request, user), now=now, active_at=now)

    def link_device(self, device_id: int) -> None:
        """Link the session to the device it signs in from, with the next write.

        Call it after :meth:`mark_signed_in` and before the write that
        records the sign-in.
        """
        if self._sign_in is not None:
            self._sign_in = replace(self._sign_in, device_id=device_id)

    def set_policy_deadlines(
        self,
        session_policy: policy.Policy,
        *,
        now: datetime,
        active_at: datetime | None,
    ) -> None:
        """Write the deadlines of ``session_policy`` with the next write.

        ``active_at`` is the activity to record, or ``None`` for a request that
        must not extend the idle deadline.
        """
        authenticated_at = self.authenticated_at or now
        last_active = active_at or self.last_active_at or now
        self._deadlines = policy.deadlines(
            session_policy, authenticated_at=authenticated_at, active_at=last_active
        )
        self._active_at = active_at

    @property
    def deadlines(self) -> policy.Deadlines | None:
        """The deadlines the next write records, when a policy set them."""
        return self._deadlines

    @property
    def authenticated_at(self) -> datetime | None:
        """When the session signed in, as recorded or about to be."""
        if self._sign_in is not None:
            return self._sign_in.at
        if self._signed_in_at is not None:
            return self._signed_in_at
        return self._record.authenticated_at if self._record is not None else None

    @property
    def signed_in_by_import(self) -> bool:
        """Whether :attr:`authenticated_at` is the time of an import
        (``sessionkit_import``) rather than of a sign-in."""
        if self._sign_in is not None or self._signed_in_at is not None:
            return False
        return self._record is not None and self._record.signed_in_by_import

    @property
    def last_active_at(self) -> datetime | None:
        """When the session was last active, as recorded or about to be."""
        if self._active_at is not None:
            return self._active_at
        return self._record.last_seen_at if self._record is not None else None

    @property
    def remember_me(self) -> bool:
        """Whether the session was marked "remember me"."""
        if self._remember is not None:
            return self._remember
        return self._record is not None and self._record.remember_me

    def set_remember_me(self, value: bool = True) -> None:
        """Mark the session "remember me" (or not) from the next write on."""
        self._remember = value
        self.modified = True

    def forget(self) -> None:
        """Drop this request's copy of a session whose row was deleted."""
        self._session_key = None
        self._session_cache: dict[str, Any] = {}
        self._record = None
        self._has_row = False
        self._deadlines = None
        self._active_at = None

    def schedule_rotation(self, listener: RotationListener) -> None:
        """Rotate the key at the next save, keeping the old one for a grace
        window; ``listener`` is told when this store's write rotated it.

        :func:`django_sessionkit.lifecycle.rotate_at_save` calls it: the
        lifecycle records rotations, the store only makes them.
        """
        if self._record is not None:
            self._rotation = listener
            self.modified = True

    @property
    def record(self) -> Session | None:
        """The session's row as this request loaded or wrote it."""
        self._get_session()  # type: ignore[attr-defined]
        return self._record

    def _touch_values(self) -> dict[str, Any]:
        values: dict[str, Any] = {
            "expire_date": self._expire_date(self._record and self._record.user_id)
        }
        if self._active_at is not None:
            values["last_seen_at"] = self._active_at
        if self._deadlines is not None:
            values["absolute_expire_date"] = self._deadlines.absolute
        return values

    # -- Sync API ------------------------------------------------------------

    def load(self) -> dict[str, Any]:
        rows = self._load_query()
        if rows is None:
            return {}
        try:
            found = list(rows)
        except _CONVERSION_ERRORS:
            return self._unreadable()
        return self._loaded(found)

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
                if self._user_gone(data):
                    raise UpdateError from None
                raise
            self._inserted(record)
            self.row_written(None)
            return
        complete = True
        if (listener := self._rotation) is not None:
            old = self.session_key
            rows, new, values = self._interval_update(data)
            assert old is not None
            if self._rotated(self._rekey(rows, values, old, data), new):
                self.row_written(values, replaced=hash_key(old))
                # Only the request whose UPDATE rotated records it.
                if self._record is not None:
                    listener.rotated(self._record)
                return
            if not self._raced_rotation(old, new).exists():
                raise UpdateError
            self._session_key = new
            self.modified = True
            complete = False
        rows_ = self._lookup(self.session_key)
        row_values = self._row_values(data)
        if rows_ is None or not self._update(rows_, row_values, data):
            if self._ended_since_sign_in():
                return
            raise UpdateError
        self._written()
        self.row_written(row_values, complete=complete)

    def touch(self) -> bool:
        """Write activity and deadlines only; return whether the row still exists."""
        rows = self._lookup(self.session_key)
        values = self._touch_values()
        if rows is None or not rows.update(**values):
            return False
        self.row_written(values)
        return True

    def delete(self, session_key: str | None = None) -> None:
        if session_key is None:
            if self.session_key is None:
                return
            session_key = self.session_key
        rows = self._lookup(session_key)
        if rows is not None:
            key_hash = hash_key(session_key)
            self._remove(rows, key_hash)
            self.row_removed(key_hash)
        if session_key == self._session_key:
            self._has_row = False
            self._record = None

    def flush(self) -> None:
        self.flushed_record = self._record
        super().flush()
        self.key_renewed = True

    def cycle_key(self) -> None:
        """Give the session a new key, keeping its row, id and history."""
        data = self._session  # type: ignore[attr-defined]
        old = self.session_key
        rows, new, values = self._cycle_update(data)
        if (
            rows is not None
            and old is not None
            and self._rotated(self._rekey(rows, values, old, data), new)
        ):
            self.row_written(values, replaced=hash_key(old))
            return
        self._row_gone()
        self.create()
        self._session_cache = data

    @classmethod
    def _unreadable_rows(cls) -> SessionQuerySet | None:
        """Rows with a timestamp that is not a date (SQLite only), or ``None``."""
        rows = cls._queryset()
        condition = _unreadable_condition(cls.get_model_class(), rows.db)
        if condition is None:
            return None
        # Built from the model's column names only, no outside value.
        unreadable = RawSQL(condition, [], output_field=models.BooleanField())  # noqa: S611
        return rows.filter(unreadable)

    @classmethod
    def clear_expired(cls) -> None:
        """Delete expired sessions, then events, devices and consent records
        past their retention, in batches."""
        cleanup.delete_in_batches(cls._queryset().expired())
        if (unreadable := cls._unreadable_rows()) is not None:
            cleanup.delete_in_batches(unreadable)
        cleanup.cleanup_events()
        cleanup.cleanup_devices()
        cleanup.cleanup_consents()

    # -- Async API -------------------------------------------------------------

    async def aload(self) -> dict[str, Any]:
        rows = self._load_query()
        if rows is None:
            return {}
        try:
            found = [row async for row in rows]
        except _CONVERSION_ERRORS:
            return self._unreadable()
        return self._loaded(found)

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

    @shielded
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
                if await self._auser_gone(data):
                    raise UpdateError from None
                raise
            self._inserted(record)
            await self.arow_written(None)
            return
        complete = True
        if (listener := self._rotation) is not None:
            old = self.session_key
            rows, new, values = self._interval_update(data)
            assert old is not None
            if self._rotated(await self._arekey(rows, values, old, data), new):
                await self.arow_written(values, replaced=hash_key(old))
                if self._record is not None:
                    await listener.arotated(self._record)
                return
            if not await self._raced_rotation(old, new).aexists():
                raise UpdateError
            self._session_key = new
            self.modified = True
            complete = False
        rows_ = self._lookup(self.session_key)
        row_values = self._row_values(data)
        if rows_ is None or not await self._aupdate(rows_, row_values, data):
            if self._ended_since_sign_in():
                return
            raise UpdateError
        self._written()
        await self.arow_written(row_values, complete=complete)

    async def atouch(self) -> bool:
        """Async twin of :meth:`touch`."""
        rows = self._lookup(self.session_key)
        values = self._touch_values()
        if rows is None or not await rows.aupdate(**values):
            return False
        await self.arow_written(values)
        return True

    @shielded
    async def adelete(self, session_key: str | None = None) -> None:
        if session_key is None:
            if self.session_key is None:
                return
            session_key = self.session_key
        rows = self._lookup(session_key)
        if rows is not None:
            key_hash = hash_key(session_key)
            await self._aremove(rows, key_hash)
            await self.arow_removed(key_hash)
        if session_key == self._session_key:
            self._has_row = False
            self._record = None

    async def aflush(self) -> None:
        self.flushed_record = self._record
        await super().aflush()
        self.key_renewed = True

    @shielded
    async def acycle_key(self) -> None:
        """Give the session a new key, keeping its row, id and history."""
        data = await self._aget_session()  # type: ignore[attr-defined]
        old = self.session_key
        rows, new, values = self._cycle_update(data)
        if (
            rows is not None
            and old is not None
            and self._rotated(await self._arekey(rows, values, old, data), new)
        ):
            await self.arow_written(values, replaced=hash_key(old))
            return
        self._row_gone()
        await self.acreate()
        self._session_cache = data

    @classmethod
    async def aclear_expired(cls) -> None:
        """Async twin of :meth:`clear_expired`."""
        await cleanup.adelete_in_batches(cls._queryset().expired())
        if (unreadable := cls._unreadable_rows()) is not None:
            await cleanup.adelete_in_batches(unreadable)
        await cleanup.acleanup_events()
        await cleanup.acleanup_devices()
        await cleanup.acleanup_consents()
