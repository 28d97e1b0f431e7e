"""Async calls that run to their end when their caller is cancelled."""

from __future__ import annotations

import asyncio

import pytest

from django_sessionkit.shield import finish, settled, shielded


async def test_finish_runs_call_to_end_when_caller_cancelled() -> None:
    started = asyncio.Event()
    release = asyncio.Event()
    done: list[str] = []

    async def call() -> str:
        started.set()
        await release.wait()
        done.append("finished")
        return "result"

    caller = asyncio.ensure_future(finish(call()))
    await started.wait()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert done == []
    release.set()
    await settled()
    assert done == ["finished"]


async def test_shielded_returns_result_and_raises_errors() -> None:
    @shielded
    async def double(value: int) -> int:
        if value < 0:
            raise ValueError("negative")
        return value * 2

    assert await double(21) == 42
    with pytest.raises(ValueError, match="negative"):
        await double(-1)
