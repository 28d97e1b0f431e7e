"""View decorators."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

View = TypeVar("View", bound=Callable[..., Any])


def passive(view: View) -> View:
    """Mark a view (sync or async) as passive: its requests never extend the
    idle deadline, so a polling endpoint cannot keep a session alive.

    The view itself is returned unchanged, so this works for sync and async
    views alike and in any order with other decorators.
    """
    view.sessionkit_passive = True  # type: ignore[attr-defined]
    return view
