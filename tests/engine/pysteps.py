"""Callables for `python:` step tests, imported as `tests.engine.pysteps:NAME`."""

from __future__ import annotations

import sys
import threading
from typing import Any

import anyio
import anyio.lowlevel

from tempeh_tui.engine.context import StepContext


def greet(context: StepContext) -> dict[str, Any]:
    return {"greeting": f"hello {context.params['who']}", "count": 3}


async def nothing(context: StepContext) -> None:
    await anyio.lowlevel.checkpoint()


async def slow_async(context: StepContext) -> None:
    await anyio.sleep(30)


SLOW_SYNC_MAY_END = threading.Event()


def slow_sync(context: StepContext) -> None:
    SLOW_SYNC_MAY_END.wait(1.5)


def fail(context: StepContext) -> None:
    raise ValueError(f"boom in {context.step}\nsecond line")


async def fail_async(context: StepContext) -> None:
    await anyio.lowlevel.checkpoint()
    raise RuntimeError("async boom")


def wrong_return(context: StepContext) -> list[str]:
    return ["not", "a", "mapping"]


def bad_key(context: StepContext) -> dict[str, str]:
    return {"not a name": "x"}


def exits(context: StepContext) -> None:
    sys.exit(3)


class Deployer:
    """An object whose `__call__` is async: awaited like an async function."""

    async def __call__(self, context: StepContext) -> dict[str, str]:
        await anyio.lowlevel.checkpoint()
        return {"deployed": context.step}


deploy = Deployer()
NOT_CALLABLE = 42
