"""Warm-ups: throwaway requests that open connections and wake a server before a measurement.

    await warm_up(client, count=32)      # 32 concurrent one-token completions, answers dropped

A warm-up's answer is thrown away, so sending it twice costs nothing: one the server dropped
before answering (`NoResponseError`, seen against llama.cpp about one run in six when many
connections open at once) is sent again, a few times, after a short pause. Anything else, and a
drop that keeps happening, raises at once with a sentence that says what to check, so the cell
fails where the problem is and not later with a `NameError` in a cell that needed its result.
The course's clients resend nothing else themselves, so a lesson sees every drop; the proxy's
upstream resends a dropped request once, on a new connection (resend.py).
"""

from __future__ import annotations

import asyncio
from typing import Any

from ..errors import NoResponseError
from .client import AsyncClient

ATTEMPTS = 3
FIRST_PAUSE_S = 0.1  # doubled before each next attempt: 0.1 s, then 0.2 s


async def warm_up(
    client: AsyncClient,
    *,
    count: int = 1,
    prompt: str = "warm up",
    attempts: int = ATTEMPTS,
    **params: Any,
) -> int:
    """Send `count` one-token completions at once; returns how many had to be sent again.

    warm_up(client, count=32) -> 0   (or 1 when the server dropped one and it was resent)
    """
    if attempts < 1:
        raise ValueError(f"attempts must be >= 1, got {attempts}")
    # Every warm-up ends before this returns or raises: after a failure the others must not
    # run on, unawaited, into the measurement that follows.
    outcomes = await asyncio.gather(
        *(_one(client, f"{prompt} {i}", attempts, params) for i in range(count)),
        return_exceptions=True,
    )
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    return sum(outcome for outcome in outcomes if isinstance(outcome, int))


async def _one(client: AsyncClient, prompt: str, attempts: int, params: dict[str, Any]) -> int:
    for attempt in range(attempts):
        try:
            await client.complete(prompt, **{"max_tokens": 1, **params})
            return attempt
        except NoResponseError as exc:
            if attempt == attempts - 1:
                raise NoResponseError(
                    f"{client.base_url} dropped a warm-up request {attempts} times without "
                    "answering: it may be restarting or out of connection slots. Check it with "
                    f"`inferlab doctor --base-url {client.base_url}`, then run this cell again."
                ) from exc
            await asyncio.sleep(FIRST_PAUSE_S * 2**attempt)  # let the server catch its breath
    raise AssertionError("unreachable: the loop returns or raises")
