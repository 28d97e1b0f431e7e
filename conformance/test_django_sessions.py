"""Django's own session-backend tests, run against our two stores.

``sessions_tests`` is Django's test app, extracted from the source
distribution of the installed Django by ``run.py``. Its tests are collected
through the subclasses below; the engines we do not ship (cache, file,
signed_cookies) are never collected.

Left out on purpose: ``CustomDatabaseSessionTests`` tests subclassing
Django's ``AbstractBaseSession`` / ``db.SessionStore`` with a custom model,
an extension point of Django's store that ours does not offer (our model and
store are fixed: hashed keys, surrogate ids).
"""

from __future__ import annotations

from django.test import override_settings
from sessions_tests import tests as django_tests

from django_sessionkit.backends import cache_health, cached_db
from django_sessionkit.backends.db import SessionStore
from django_sessionkit.keys import hash_key
from django_sessionkit.models import Session

# Django's tests name ``django.contrib.sessions``' model and store directly
# (``Session.objects.get(session_key=...)`` in ``test_empty_session_saved``,
# ``DatabaseSession()`` in ``test_session_update_error_redirect``). Point
# them at ours: the same assertions then hold for our store.
django_tests.Session = Session  # type: ignore[misc]
django_tests.DatabaseSession = SessionStore  # type: ignore[misc]


class DatabaseSessionTests(django_tests.DatabaseSessionTests):
    backend = SessionStore
    session_engine = "django_sessionkit.backends.db"

    def test_session_str(self) -> None:
        # Django shows the raw key as a session's str(); ours must never show
        # it (storage rule 1): rows are named by their id, stores likewise.
        self.session["x"] = 1
        self.session.save()
        session_key = self.session.session_key
        row = self.model.objects.get(session_key=session_key)

        self.assertEqual(row.key_hash, hash_key(session_key))
        self.assertIn(str(row.pk), str(row))
        for shown in (str(row), repr(row), str(self.session), repr(self.session)):
            self.assertNotIn(session_key, shown)

    def test_sessionmanager_save(self) -> None:
        # Django's ``SessionManager.save(session_key, data, expire_date)``
        # writes a row by its key, read back from ``row.session_key``. Our rows
        # hold no key and our manager has no ``save()``: only a store writes a
        # session. What carries over: code filtering on ``session_key=``
        # reaches the row through its hash, and the store reads what was
        # written there.
        self.session["y"] = 1
        self.session.save()
        session_key = self.session.session_key
        row = self.model.objects.get(session_key=session_key)
        self.assertFalse(hasattr(row, "session_key"))
        self.assertFalse(hasattr(self.model.objects, "save"))

        data = row.get_session_store_class()().encode({"y": 2})
        rows = self.model.objects.filter(session_key=session_key)
        self.assertEqual(rows.update(session_data=data), 1)
        # Clear the cache, so that the data is read from the database.
        del self.session._session_cache
        self.assertEqual(self.session["y"], 2)


class DatabaseSessionWithTimeZoneTests(
    DatabaseSessionTests, django_tests.DatabaseSessionWithTimeZoneTests
):
    """Django's class, with our store and adaptations from the class above."""


class SessionMiddlewareTests(django_tests.SessionMiddlewareTests):
    """Run with ``SESSION_ENGINE`` set to our store."""


class CacheDBSessionTests(django_tests.CacheDBSessionTests):
    """Django's cached_db tests, against our cached store on django-redis.

    ``DatabaseSessionTests``' adaptations are not needed here: Django's
    class has no ``str()`` or manager test.
    """

    backend = cached_db.SessionStore
    session_engine = "django_sessionkit.backends.cached_db"

    def setUp(self) -> None:
        # After a cache failure our store reads from the database alone for a
        # second (``RETRY_AFTER``) and then writes pending tombstones before
        # it reads the cache again. Django's failing-cache tests fail the
        # cache on purpose; start every test with a cache in good standing so
        # that ``test_exists_searches_cache_first`` sees the cache answer.
        cache_health.health.suspect = False
        super().setUp()


class CacheDBSessionWithTimeZoneTests(
    CacheDBSessionTests, django_tests.CacheDBSessionWithTimeZoneTests
):
    """Django's class, with our cached store."""


@override_settings(SESSION_ENGINE="django_sessionkit.backends.cached_db")
class CachedSessionMiddlewareTests(django_tests.SessionMiddlewareTests):
    """The middleware tests again, with the cached store as the engine."""
