"""Copy the sessions of ``django.contrib.sessions`` into django-sessionkit.

Moving from Django's own session engine must not sign anybody out: every
unexpired row of Django's ``django_session`` table becomes a row of ours with
the same (encoded) data, found by the hash of the same key, so the browser's
cookie keeps working once ``SESSION_ENGINE`` names our store.
``manage.py sessionkit_import`` calls :func:`import_django_sessions`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth import SESSION_KEY, get_user_model
from django.contrib.sessions.models import Session as DjangoSession
from django.core.exceptions import ValidationError
from django.db import router
from django.utils import timezone

from django_sessionkit import policy
from django_sessionkit.backends.db import SessionStore
from django_sessionkit.conf import conf
from django_sessionkit.keys import hash_key, is_well_formed
from django_sessionkit.models import Session

#: A row of Django's table as the import reads it: key, data, expiry.
Row = tuple[str, str, datetime]


@dataclass
class ImportResult:
    """What an import did (or, in a dry run, would do).

    Every unexpired row read is counted in exactly one of ``imported``,
    ``already_present``, ``skipped_malformed`` and ``users_missing``.
    """

    #: Rows copied into our table (in a dry run: that would be), signed in
    #: or anonymous.
    imported: int = 0
    #: Of the imported rows, those linked to their user: signed in at the
    #: import's time, with deadlines counted from it.
    signed_in: int = 0
    #: Rows whose key hash is stored already (by an earlier run): left alone.
    already_present: int = 0
    #: Rows whose key our store could never have issued: it would never look
    #: them up, so they are not copied.
    skipped_malformed: int = 0
    #: Signed-in rows whose user does not exist (or whose user id is not
    #: valid): Django reads them as anonymous, and our store could not save
    #: them back, so they are not copied.
    users_missing: int = 0
    #: How many batches were read.
    batches: int = 0
    #: Whether this was a dry run, which writes nothing.
    dry_run: bool = False

    @property
    def read(self) -> int:
        """How many unexpired rows of Django's table were read: the sum of
        ``imported``, ``already_present``, ``skipped_malformed`` and
        ``users_missing``."""
        return (
            self.imported
            + self.already_present
            + self.skipped_malformed
            + self.users_missing
        )


def _policy() -> policy.Policy:
    """The limits given to imported signed-in sessions: the settings' ones.

    The import has no request to resolve ``SESSIONKIT_POLICY`` with; the
    policy middleware applies the site's policy from the first request on.
    """
    return policy.Policy(
        idle_timeout=conf.IDLE_TIMEOUT,
        absolute_timeout=conf.ABSOLUTE_TIMEOUT,
        rotate_interval=conf.ROTATE_INTERVAL,
    )


def _batches(using: str, now: datetime, batch_size: int) -> Iterator[list[Row]]:
    """Django's unexpired rows in key order, one page at a time.

    Keyset pagination (``session_key > last``) on the primary key: every page
    costs the same, however far the import has gone, unlike ``OFFSET``.
    """
    rows = (
        DjangoSession.objects.using(using)
        .filter(expire_date__gt=now)
        .order_by("session_key")
        .values_list("session_key", "session_data", "expire_date")
    )
    last: str | None = None
    while True:
        page = rows if last is None else rows.filter(session_key__gt=last)
        batch: list[Row] = list(page[:batch_size])
        if not batch:
            return
        yield batch
        if len(batch) < batch_size:
            return
        last = batch[-1][0]


def _user_id(data: dict[str, Any]) -> tuple[bool, Any]:
    """Whether ``data`` is signed in, and its user's primary key if valid."""
    raw = data.get(SESSION_KEY)
    if raw is None:
        return False, None
    try:
        return True, get_user_model()._meta.pk.to_python(raw)
    except ValidationError:
        return True, None


def _existing_users(using: str, ids: set[Any]) -> set[Any]:
    if not ids:
        return set()
    # The base manager: a foreign key needs the row to exist, whatever a
    # custom default manager would hide.
    users = get_user_model()._base_manager.using(using)
    return set(users.filter(pk__in=ids).values_list("pk", flat=True))


def _import_batch(
    batch: list[Row],
    *,
    using: str,
    now: datetime,
    dry_run: bool,
    result: ImportResult,
) -> None:
    hashed: list[tuple[str, str, datetime]] = []
    for key, data, expire_date in batch:
        if is_well_formed(key):
            hashed.append((hash_key(key), data, expire_date))
        else:
            # Our store never looks such a key up, so its session is lost
            # either way: do not store a row nobody can reach.
            result.skipped_malformed += 1
    present = set(
        Session.objects.using(using)
        .filter(key_hash__in=[key_hash for key_hash, _, _ in hashed])
        .values_list("key_hash", flat=True)
    )
    result.already_present += len(present)

    store = SessionStore()
    decoded: list[tuple[str, str, datetime, bool, Any]] = []
    for key_hash, data, expire_date in hashed:
        if key_hash not in present:
            signed_in, user_id = _user_id(store.decode(data))
            decoded.append((key_hash, data, expire_date, signed_in, user_id))
    users = _existing_users(
        using, {user_id for *_, user_id in decoded if user_id is not None}
    )

    deadlines = policy.deadlines(_policy(), authenticated_at=now, active_at=now)
    new: list[Session] = []
    for key_hash, data, expire_date, signed_in, user_id in decoded:
        if not signed_in:
            new.append(
                Session(
                    key_hash=key_hash,
                    session_data=data,
                    expire_date=expire_date,
                    created_at=now,
                    last_seen_at=now,
                )
            )
        elif user_id in users:
            # Nobody is signed out by the import: the session counts as
            # signed in and active now, and its deadlines run from now; but
            # nobody proved who they are now, so it opens no sudo window.
            idle = deadlines.idle
            new.append(
                Session(
                    key_hash=key_hash,
                    session_data=data,
                    user_id=user_id,
                    expire_date=expire_date if idle is None else min(expire_date, idle),
                    absolute_expire_date=deadlines.absolute,
                    authenticated_at=now,
                    signed_in_by_import=True,
                    created_at=now,
                    last_seen_at=now,
                )
            )
            result.signed_in += 1
        else:
            # Its user is gone: Django reads it as anonymous, and our store
            # could not save it back (its user id would break the foreign key).
            result.users_missing += 1
    result.imported += len(new)
    if new and not dry_run:
        # A concurrent import of the same rows is no error: the unique key
        # hash keeps one copy.
        Session.objects.using(using).bulk_create(new, ignore_conflicts=True)


def import_django_sessions(
    *,
    batch_size: int | None = None,
    dry_run: bool = False,
    now: datetime | None = None,
    progress: Callable[[ImportResult], None] | None = None,
) -> ImportResult:
    """Copy the unexpired sessions of ``django.contrib.sessions`` into ours.

    Rows are read ``batch_size`` at a time (default
    ``SESSIONKIT_CLEANUP_BATCH_SIZE``; below 1 raises ``ValueError``) in key
    order. Rows whose key hash is already stored are left alone, so running
    it again imports only what is new. With ``dry_run`` nothing is written
    and the counts say what would be. ``now`` (an aware ``datetime``,
    default ``timezone.now()``) is the import's time: only rows that expire
    after it are read, and the rows imported are created and last active at
    it; the signed-in ones are also signed in at it, their deadlines counted
    from it. ``progress`` is called with the running totals after every
    batch. Django's rows are not changed.
    """
    size = conf.CLEANUP_BATCH_SIZE if batch_size is None else batch_size
    if size < 1:
        raise ValueError("batch_size must be at least 1.")
    now = timezone.now() if now is None else now
    # Both tables are read on the database that is written to: a replica may
    # lag behind the sessions just created, or the rows just imported.
    source = router.db_for_write(DjangoSession)
    target = router.db_for_write(Session)
    result = ImportResult(dry_run=dry_run)
    for batch in _batches(source, now, size):
        _import_batch(batch, using=target, now=now, dry_run=dry_run, result=result)
        result.batches += 1
        if progress is not None:
            progress(result)
    return result
