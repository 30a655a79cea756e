"""Exercises for lesson 03: reading a stream, a stream that failed, and many on one WebSocket."""

from __future__ import annotations

import itertools
import json
from collections.abc import Awaitable, Callable
from typing import Any

from inferlab.engine import Profile


def texts_from_sse(lines: list[str]) -> list[str]:
    """The text pieces of a streamed completion, from its raw Server-Sent Event lines: each
    `data: {json}` line carries choices[0]["text"]; `data: [DONE]` ends the stream; blank lines,
    comments (`: ping`) and `data: null` (llama.cpp sends one) carry nothing. Chunks without
    choices (a final usage chunk) carry nothing either."""
    # TODO: skip non-data lines; stop at [DONE]; parse JSON; collect choice texts
    raise NotImplementedError(
        'TODO in labs/exercises_03.py: skip non-data lines; stop at [DONE]; parse JSON; collect choice texts'
    )


def longest_gap(token_times_s: list[float]) -> tuple[int, float]:
    """Where a stream stuttered most: (index of the token that came after the longest gap,
    that gap in seconds). longest_gap([0.1, 0.2, 0.5, 0.6]) -> (2, 0.3)."""
    # TODO: the largest difference between consecutive times, and its index
    raise NotImplementedError(
        'TODO in labs/exercises_03.py: the largest difference between consecutive times, and its index'
    )


def predicted_stall_ms(
    profile: Profile, newcomers: int, prompt_tokens: int, stream_context_tokens: int
) -> float:
    """Predict the longest gap of a stream when `newcomers` requests of `prompt_tokens` each
    arrive together: the simulator admits them all into one step, which prefills their
    prompts and decodes the stream's next token (its context is stream_context_tokens) at
    once. Price that step as the simulator does: profile.step_overhead_ms, plus
    profile.prefill_ms() of the prompts admitted, plus profile.decode_ms() of the sequences
    decoding. Graded within 1e-6 of that price, then compared in the notebook with a stream."""
    # TODO: one step: its overhead, the newcomers' prefill together, the stream's decode
    raise NotImplementedError(
        "TODO in labs/exercises_03.py: one step: its overhead, the newcomers' prefill together, the stream's decode"
    )


# --- a stream that failed after its 200 ---------------------------------------------------------

CUT = "no [DONE]: the stream was cut"


def stream_outcome(lines: list[str]) -> tuple[str, str | None]:
    """Read a streamed completion's raw SSE lines as texts_from_sse() does, and say whether it
    succeeded. Its 200 went out with the headers, before the first token, so a failure after
    that cannot change the status: the server sends an event `data: {"error": {"message": ...}}`
    (and may still end with [DONE]); a connection that dropped just stops, with no [DONE].
    Return (the text that arrived, None for a stream that ended with [DONE] and no error, else
    the error's message, or CUT for one that stopped without [DONE]).

    [data: {"choices": [{"text": " Hi"}]}, data: {"error": {"message": "GPU"}}, data: [DONE]]
    -> (" Hi", "GPU")
    """
    # TODO: read it as texts_from_sse() does; note an error event; what ends it?
    raise NotImplementedError(
        'TODO in labs/exercises_03.py: read it as texts_from_sse() does; note an error event; what ends it?'
    )


# --- many requests on one WebSocket, one of them cancelled --------------------------------------

Frame = dict[str, Any]


async def several_on_one_socket(
    send: Callable[[Frame], Awaitable[None]],
    receive: Callable[[], Awaitable[Frame]],
    prompts: list[str],
    *,
    max_tokens: int,
    cancel: int,
    cancel_after_chunks: int,
) -> dict[str, tuple[str, str]]:
    """Run every prompt at once on one WebSocket to the model server (the protocol is at the
    top of src/inferlab/serve/websocket.py). `send(frame)` sends a JSON frame (a dict) and
    `receive()` waits for the next frame from the server.

    1. Send one "completions" frame per prompt, ids "r0", "r1", ... in order, before reading.
    2. Read frames; keep each request's text (its chunks' choices' "text"), by the frame's id.
    3. Once request number `cancel` has had `cancel_after_chunks` chunks (at least 1), cancel it.
    4. Each request ends with a frame of type "done", "cancelled" or "error"; return once every
       one has ended: {id: (its text, how it ended)}, e.g. {"r0": (" The cache", "done"), ...}.
    """
    # TODO: send them all; then one loop over frames, filing each under its id
    raise NotImplementedError(
        'TODO in labs/exercises_03.py: send them all; then one loop over frames, filing each under its id'
    )


# --- A checked answer, in your own words -------------------------------------------------------
STUTTER_CAUSES = ("prefilling the newcomers", "the network", "the client")


def why_the_stream_stuttered() -> tuple[str, str]:
    """Why did the stream stutter? Return (one of STUTTER_CAUSES,
    your reason in a sentence or two of your own): the grader checks the choice, and reads your
    reason for the ideas that make it right."""
    # TODO: choose from what you measured, and say why in your own words
    raise NotImplementedError(
        'TODO in labs/exercises_03.py: choose from what you measured, and say why in your own words'
    )
