"""Signals sent by django-sessionkit.

Every session signal is sent with ``sender`` set to the ``Session`` model and
these keyword arguments; none of them ever carries a session key:

``session_id``
    The session's stable ``id``.
``user``
    The session's user, or ``None`` for an anonymous session.
``reason``
    Why it happened, as a short string (``"login"``, ``"idle"``, ...).
``by``
    The user who caused it (an admin revoking, say), or ``None``.
``request``
    The request during which it happened, or ``None`` (commands, signals).

Each is mirrored by a ``SessionEvent`` row written just before it is sent.

``device_added`` is sent with ``sender`` set to the ``Device`` model and the
keyword arguments ``device``, ``user`` and ``request``; a ``new_device``
``SessionEvent`` is written just before it.
"""

from __future__ import annotations

from django.dispatch import Signal

#: A session signed in (``reason="login"``).
session_started = Signal()
#: A session's key was rotated (``reason``: ``"interval"``, ``"privilege"``, or
#: the one given to ``rotate_session()``, ``"explicit"`` by default). The key
#: changes of a sign-in and of ``update_session_auth_hash()`` belong to those
#: happenings and are not reported again.
session_rotated = Signal()
#: A session passed a deadline (``reason``: ``"idle"`` or ``"absolute"``).
session_expired = Signal()
#: A session was revoked (``reason`` as given to the revocation function).
session_revoked = Signal()
#: A session's previous key came back after its grace window
#: (``reason="stale_key"``), or a wrong password was entered at
#: re-authentication (``reason="reauth_failed"``).
session_anomaly = Signal()
#: A user signed in from a device not seen before (``sender`` is ``Device``;
#: keyword arguments ``device``, ``user`` and ``request``).
device_added = Signal()
