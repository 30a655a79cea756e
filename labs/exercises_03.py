"""Exercises for lesson 03: reading a stream."""

from __future__ import annotations

import itertools
import json

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
