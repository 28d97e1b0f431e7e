"""The proof of consent: one :class:`~django_sessionkit.models.ConsentRecord`
per decision, written here and nowhere else."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from django_sessionkit.client import client_ip, ip_for_storage
from django_sessionkit.consent.state import Consent
from django_sessionkit.lifecycle import is_user
from django_sessionkit.models import ConsentRecord

Action = ConsentRecord.Action
Source = ConsentRecord.Source


def action_of(button: str, withdrawn: list[str]) -> str:
    """The recorded action of a decision made with ``button``
    (``accept_all``, ``reject_all`` or ``save``): a ``save`` that refuses a
    category granted before is a withdrawal, any other is a custom choice."""
    if button == "accept_all":
        return Action.ACCEPT_ALL
    if button == "reject_all":
        return Action.REJECT_ALL
    return Action.WITHDRAWAL if withdrawn else Action.CUSTOM


def record(
    request: HttpRequest, consent: Consent, *, source: str, action: str
) -> ConsentRecord:
    """Write the proof of ``consent``, decided by the visitor of
    ``request``: its id, choices, revision, ``source`` and ``action``, the
    user when signed in, and the address as ``SESSIONKIT_STORE_IP`` says."""
    assert consent.id is not None
    user: Any = getattr(request, "user", None)
    return ConsentRecord.objects.create(
        consent_id=consent.id,
        choices=consent.choices,
        revision=consent.revision,
        source=source,
        action=action,
        gpc=consent.gpc,
        user=user if is_user(user) and user.is_authenticated else None,
        ip=ip_for_storage(client_ip(request)),
    )
