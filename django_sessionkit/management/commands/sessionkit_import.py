"""``manage.py sessionkit_import``: copy Django's sessions into django-sessionkit."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_sessionkit.conf import conf

if TYPE_CHECKING:
    from django_sessionkit.importing import ImportResult


def _sessions(count: int) -> str:
    return f"{count} session{'s' if count != 1 else ''}"


class Command(BaseCommand):
    help = (
        "Copy the unexpired sessions of django.contrib.sessions into "
        "django-sessionkit, so that switching SESSION_ENGINE signs nobody out. "
        "Sessions already copied are left alone; Django's rows are not changed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--batch-size",
            type=int,
            metavar="N",
            help="Rows per batch (default SESSIONKIT_CLEANUP_BATCH_SIZE).",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Read and count, write nothing.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        batch_size = options["batch_size"]
        if batch_size is None:
            batch_size = conf.CLEANUP_BATCH_SIZE
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        if not apps.is_installed("django.contrib.sessions"):
            raise CommandError(
                "django.contrib.sessions is not in INSTALLED_APPS, so there is no "
                "table of Django's sessions to import from. Add it back until the "
                "import is done."
            )
        # Imported here: it needs django.contrib.sessions installed.
        from django_sessionkit.importing import import_django_sessions

        progress = self._progress if options["verbosity"] >= 2 else None
        result = import_django_sessions(
            batch_size=batch_size, dry_run=options["dry_run"], progress=progress
        )
        self._report(result)

    def _progress(self, result: ImportResult) -> None:
        verb = "to import" if result.dry_run else "imported"
        self.stdout.write(
            f"Batch {result.batches}: {result.read} read, {result.imported} {verb}."
        )

    def _report(self, result: ImportResult) -> None:
        if result.dry_run:
            self.stdout.write("Dry run: nothing was written.")
            verb = "Would import"
        else:
            verb = "Imported"
        self.stdout.write(
            f"{verb} {_sessions(result.imported)} ({result.signed_in} signed in)."
        )
        self.stdout.write(
            f"Left alone: {result.already_present} already present, "
            f"{result.skipped_malformed} with a malformed key, "
            f"{result.users_missing} whose user no longer exists."
        )
