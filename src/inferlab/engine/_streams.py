"""What one sequence's caller holds: its token channel and the stop-string matcher.

The step loop puts each token on the sequence's channel; the caller's `generate()` takes them
off. Stop strings are cut here, holding back text that might begin one. Pulled out of
`model.py` so that the step loop reads alone; nothing here knows about steps.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING

from .text import generate_tokens

if TYPE_CHECKING:
    from .model import Token


class StopMatcher:
    """Cuts generated text at the first stop string, holding back what might begin one.

    >>> m = StopMatcher(["\\n\\n"]); m.feed("a\\n"), m.feed("\\nb")
    (('a', False), ('', True))
    """

    def __init__(self, stops: list[str]):
        self._stops = [stop for stop in stops if stop]
        self._pending = ""

    def feed(self, piece: str) -> tuple[str, bool]:
        """Add a piece of text; return (text safe to emit now, whether a stop string matched)."""
        if not self._stops:
            return piece, False  # the common case, on the hot path: nothing to look for
        self._pending += piece
        cut = min((i for i in map(self._pending.find, self._stops) if i >= 0), default=-1)
        if cut >= 0:
            emitted, self._pending = self._pending[:cut], ""
            return emitted, True
        keep = max((self._overlap(stop) for stop in self._stops), default=0)
        emitted = self._pending[: len(self._pending) - keep]
        self._pending = self._pending[len(emitted) :]
        return emitted, False

    def flush(self) -> str:
        emitted, self._pending = self._pending, ""
        return emitted

    def _overlap(self, stop: str) -> int:
        """Length of the longest end of the pending text that is a start of `stop`."""
        for size in range(min(len(stop) - 1, len(self._pending)), 0, -1):
            if self._pending.endswith(stop[:size]):
                return size
        return 0


class Channel:
    """A one-consumer queue of tokens: a deque plus a future to wake the reader.

    Leaner than asyncio.Queue (no maxsize, no task accounting), which matters at a thousand
    sequences a step. The step loop and the reader share one event loop, so no locks.
    """

    def __init__(self) -> None:
        self._items: deque[Token | BaseException] = deque()
        self._waiter: asyncio.Future[None] | None = None

    def put(self, item: Token | BaseException) -> None:
        self._items.append(item)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def get(self) -> Token | BaseException:
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        return self._items.popleft()


class Stream:
    """What the engine keeps per sequence besides the scheduler's bookkeeping."""

    def __init__(
        self, prompt: str, seed: int | None, temperature: float, stop: list[str], ignore_eos: bool
    ):
        self.tokens = generate_tokens(prompt, seed=seed, temperature=temperature)
        self.ignore_eos = ignore_eos
        self.matcher = StopMatcher(stop)
        self.channel = Channel()
