"""Async work that, once started, runs to its end.

An ASGI server cancels a view's task when the client disconnects (Django
does so since 5.0). A revocation, sign-out or rotation cancelled half-way
would have committed its database change in the ORM's thread and skipped
what follows in the coroutine: the cache tombstones and the signals. The
library's async lifecycle calls therefore run shielded: the caller still sees
``CancelledError`` at once, while the call itself finishes on the event loop.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

# The event loop keeps only weak references to tasks: a shielded call whose
# caller was cancelled is kept here until it has finished.
_running: set[asyncio.Task[Any]] = set()


async def finish(call: Coroutine[Any, Any, T]) -> T:
    """Await ``call``; if the awaiting task is cancelled, ``call`` still ends."""
    task = asyncio.ensure_future(call)
    _running.add(task)
    task.add_done_callback(_running.discard)
    return await asyncio.shield(task)


def shielded(
    func: Callable[P, Coroutine[Any, Any, T]],
) -> Callable[P, Coroutine[Any, Any, T]]:
    """Make ``func`` (an ``async def``) run to its end once called."""

    @functools.wraps(func)
    async def run(*args: P.args, **kwargs: P.kwargs) -> T:
        return await finish(func(*args, **kwargs))

    return run


async def settled() -> None:
    """Wait for shielded calls whose callers were cancelled (tests, shutdown)."""
    while _running:
        await asyncio.gather(*list(_running), return_exceptions=True)
