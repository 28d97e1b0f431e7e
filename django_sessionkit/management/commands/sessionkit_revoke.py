"""``manage.py sessionkit_revoke``: sign sessions out from the command line."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_sessionkit.revocation import (
    revoke_all_sessions,
    revoke_session,
    revoke_user_sessions,
)


class Command(BaseCommand):
    help = (
        "Revoke sessions: one by id, every session of some users, or all of "
        "them. Revocation is final and recorded as a SessionEvent."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument(
            "--session",
            type=int,
            action="append",
            metavar="ID",
            help="A session's id (repeatable).",
        )
        which.add_argument(
            "--user",
            action="append",
            metavar="USERNAME",
            help="Every session of this user (repeatable).",
        )
        which.add_argument(
            "--all", action="store_true", help="Every session of every user."
        )
        parser.add_argument(
            "--reason",
            default="command",
            help='Recorded with each revocation (default "command").',
        )

    def handle(self, *args: Any, **options: Any) -> None:
        reason = options["reason"]
        if not reason or len(reason) > 64:
            raise CommandError("--reason must be 1 to 64 characters long.")
        if options["all"]:
            count = revoke_all_sessions(reason=reason)
        elif options["session"]:
            count = sum(revoke_session(pk, reason=reason) for pk in options["session"])
        else:
            count = sum(
                revoke_user_sessions(user, reason=reason)
                for user in self._users(options["user"])
            )
        self.stdout.write(f"Revoked {count} session{'s' if count != 1 else ''}.")

    def _users(self, usernames: list[str]) -> list[Any]:
        model = get_user_model()
        users = []
        for username in usernames:
            try:
                users.append(model._default_manager.get_by_natural_key(username))
            except model.DoesNotExist:
                raise CommandError(f"No user {username!r}.") from None
        return users
