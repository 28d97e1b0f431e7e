"""Create the demo's sign-in user, ``demo``, with a random password."""

from __future__ import annotations

import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

USERNAME = "demo"


class Command(BaseCommand):
    help = (
        f'Create the staff superuser "{USERNAME}" with a random password and '
        "print the password once. An existing user keeps its password unless "
        "--reset-password is given."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--reset-password",
            action="store_true",
            help="Give the existing demo user a new random password and print it.",
        )

    def handle(self, *args: Any, reset_password: bool = False, **options: Any) -> None:
        user_model = get_user_model()
        with transaction.atomic():
            user, created = user_model._default_manager.get_or_create(
                **{user_model.USERNAME_FIELD: USERNAME},
                defaults={"is_staff": True, "is_superuser": True},
            )
            if not created and not reset_password:
                self.stdout.write(
                    f'User "{USERNAME}" already exists; its password is unchanged. '
                    "For a new one, run: python manage.py demo_user --reset-password"
                )
                return
            password = secrets.token_urlsafe(16)
            user.set_password(password)
            user.save(update_fields=["password"])
        action = "Created" if created else "Reset the password of"
        self.stdout.write(
            self.style.SUCCESS(f'{action} the staff superuser "{USERNAME}".')
        )
        self.stdout.write(
            "Its password is shown this once; copy it now:\n\n"
            f"    username: {USERNAME}\n"
            f"    password: {password}\n"
        )
