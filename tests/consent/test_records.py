"""The proof: ``ConsentRecord`` rows, their admin, their retention (cleanup)
and their place in the user's export."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from django_sessionkit.backends.db import SessionStore
from django_sessionkit.cleanup import acleanup_consents, cleanup_consents
from django_sessionkit.consent.records import action_of
from django_sessionkit.models import ConsentRecord
from django_sessionkit.sessions_page import export
from tests.consent.helpers import CONSENT
from tests.helpers import PASSWORD

pytestmark = pytest.mark.django_db


def _records(*ages_in_days: float, user: User | None = None) -> list[ConsentRecord]:
    now = timezone.now()
    made = []
    for age in ages_in_days:
        record = ConsentRecord.objects.create(
            consent_id=uuid.uuid4(),
            choices={"necessary": True, "analytics": False},
            revision=1,
            source=ConsentRecord.Source.BANNER,
            action=ConsentRecord.Action.REJECT_ALL,
            user=user,
        )
        ConsentRecord.objects.filter(pk=record.pk).update(
            created_at=now - timedelta(days=age)
        )
        made.append(record)
    return made


@pytest.mark.parametrize(
    ("button", "withdrawn", "action"),
    [
        ("accept_all", [], "accept_all"),
        ("reject_all", ["analytics"], "reject_all"),
        ("save", [], "custom"),
        ("save", ["analytics"], "withdrawal"),
    ],
)
def test_action_of(button: str, withdrawn: list[str], action: str) -> None:
    assert action_of(button, withdrawn) == action


def test_user_deletion_keeps_the_proof(alice: User) -> None:
    [record] = _records(1, user=alice)
    alice.delete()
    record.refresh_from_db()
    assert record.user is None


def test_clearsessions_deletes_records_past_retention() -> None:
    _records(1, 3 * 365 - 1, 3 * 365 + 1, 2000)
    call_command("clearsessions")
    assert ConsentRecord.objects.count() == 2


def test_cleanup_consents_follows_retention_setting(settings: Any) -> None:
    settings.SESSIONKIT_CONSENT_RETENTION = timedelta(days=7)
    settings.SESSIONKIT_CLEANUP_BATCH_SIZE = 2
    _records(1, 6, 8, 30, 40, 50)
    assert cleanup_consents() == 4
    assert ConsentRecord.objects.count() == 2


def test_cleanup_consents_keeps_everything_when_retention_none(settings: Any) -> None:
    settings.SESSIONKIT_CONSENT_RETENTION = None
    _records(1, 5000)
    assert cleanup_consents() == 0
    assert ConsentRecord.objects.count() == 2


async def test_acleanup_consents_deletes_in_batches(settings: Any) -> None:
    settings.SESSIONKIT_CLEANUP_BATCH_SIZE = 2
    await sync_to_async(_records)(2000, 2000, 2000, 1)
    assert await acleanup_consents() == 3
    assert await ConsentRecord.objects.acount() == 1


async def test_aclear_expired_deletes_old_records() -> None:
    await sync_to_async(_records)(2000, 2)
    await SessionStore.aclear_expired()
    assert await ConsentRecord.objects.acount() == 1


def test_export_includes_the_users_records(alice: User, bob: User) -> None:
    client = Client()
    client.login(username="alice", password=PASSWORD)
    client.post(CONSENT, {"action": "save", "granted": ["analytics"]})
    _records(1, user=bob)
    _records(1)
    data = export.export_data(alice)
    [row] = data["consents"]
    record = ConsentRecord.objects.get(user=alice)
    assert row["id"] == record.pk
    assert row["consent_id"] == str(record.consent_id)
    assert row["choices"]["analytics"] is True
    assert (row["source"], row["action"], row["revision"]) == ("banner", "custom", 1)
    assert row["ip"] == "127.0.0.1"
    assert row["created_at"].endswith("+00:00")
    json.dumps(data)


def test_export_covers_every_consent_field_but_the_user() -> None:
    names = {f.attname for f in ConsentRecord._meta.concrete_fields}
    excluded = export.EXPORT_EXCLUDED[ConsentRecord]
    assert names == set(export.EXPORT_CONSENT_FIELDS) | excluded
    assert not set(export.EXPORT_CONSENT_FIELDS) & excluded


# -- The admin ------------------------------------------------------------------


@pytest.fixture
def root_client(root: User) -> Client:
    client = Client()
    client.force_login(root)
    return client


LIST = "/admin/sessionkit/consentrecord/"


@pytest.fixture
def admin_urls(settings: Any) -> None:
    settings.ROOT_URLCONF = "tests.urls"


@pytest.mark.usefixtures("admin_urls")
def test_admin_lists_filters_and_searches(root_client: Client, alice: User) -> None:
    first, second = _records(1, 2, user=alice)
    ConsentRecord.objects.filter(pk=second.pk).update(revision=2, source="api")
    page = root_client.get(LIST)
    assert page.status_code == 200
    content = page.content.decode()
    for column in ("consent id", "revision", "source", "action", "user", "time"):
        assert column in content.lower()
    assert str(first.consent_id) in content and str(second.consent_id) in content
    by_revision = root_client.get(LIST, {"revision": "2"}).content.decode()
    assert str(second.consent_id) in by_revision
    assert str(first.consent_id) not in by_revision
    by_source = root_client.get(LIST, {"source": "banner"}).content.decode()
    assert str(first.consent_id) in by_source
    assert str(second.consent_id) not in by_source
    found = root_client.get(LIST, {"q": str(first.consent_id)}).content.decode()
    assert str(first.consent_id) in found and str(second.consent_id) not in found
    year = timezone.now().year
    assert root_client.get(LIST, {"created_at__year": year}).status_code == 200


@pytest.mark.usefixtures("admin_urls")
def test_admin_is_read_only(root_client: Client) -> None:
    [record] = _records(1)
    assert root_client.get(f"{LIST}add/").status_code == 403
    change = root_client.get(f"{LIST}{record.pk}/change/")
    assert change.status_code == 200
    assert b'name="_save"' not in change.content
    assert root_client.post(f"{LIST}{record.pk}/delete/").status_code == 403
    refused = root_client.post(
        LIST, {"action": "delete_selected", "_selected_action": [record.pk]}
    )
    assert refused.status_code == 200
    assert ConsentRecord.objects.filter(pk=record.pk).exists()
