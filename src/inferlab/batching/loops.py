"""Calling into an event loop from any thread: what settings changed live (sliders, HTTP admin
routes, a notebook's cell) need, since the thing they change runs on another thread's loop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any


def call_in_loop(
    loop: asyncio.AbstractEventLoop | None, callback: Callable[..., Any], *args: Any
) -> None:
    """Run `callback(*args)` now if we are on `loop` (or it is not running yet); otherwise hand
    it to `loop`, thread-safely, to run there in order with the loop's own work."""
    try:
        here: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        here = None
    if loop is not None and loop is not here and loop.is_running():
        loop.call_soon_threadsafe(callback, *args)
    else:
        callback(*args)
