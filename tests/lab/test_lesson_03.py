"""Lesson 03's exercises (labs/exercises_03.py): reading a stream."""

from __future__ import annotations

import pytest

from inferlab import get_profile
from tests.lab.grading import expect, explained

pytestmark = pytest.mark.lesson("03")


@pytest.fixture
def ex(lab):
    return lab("exercises_03")


def test_texts_from_sse(ex):
    """texts_from_sse() keeps the text of each data chunk, up to [DONE], and nothing else."""
    lines = [
        "data: null",
        ": ping",
        'data: {"choices": [{"index": 0, "text": " Hello"}]}',
        "",
        'data: {"choices": [{"index": 0, "text": " world"}]}',
        'data: {"choices": [], "usage": {"completion_tokens": 2}}',
        "data: [DONE]",
        'data: {"choices": [{"index": 0, "text": " after the end"}]}',
    ]
    expect(
        ex.texts_from_sse(lines),
        [" Hello", " world"],
        given="a stream with a null, a comment, a blank line, a usage chunk and [DONE]",
        look="which lines carry text, and where the stream ends",
    )


def test_longest_gap(ex):
    """longest_gap() finds the token that came after the longest wait, and that wait."""
    expect(
        ex.longest_gap([0.1, 0.2, 0.5, 0.6]),
        (2, 0.3),
        given="tokens at 0.1, 0.2, 0.5 and 0.6 s",
        look="the index is that of the token that arrived after the gap",
    )


def test_predicted_stall(ex):
    """predicted_stall_ms() prices the one step that prefills every newcomer together."""
    profile = get_profile("h100-llama3-8b")
    expected = profile.step_overhead_ms + profile.prefill_ms([203] * 16) + profile.decode_ms([20])
    expect(
        ex.predicted_stall_ms(profile, 16, 203, 20),
        expected,
        rel=1e-6,
        given="16 newcomers of 203 tokens while a stream is at a context of 20 (ms)",
        look="the newcomers' prompts are prefilled together, in one call to prefill_ms() (a "
        "batch shares the fixed cost), and the stream's own decode happens in the same step",
    )


# --- issue 18: a checked free-text answer (h18b) -----------------------------------------------
def test_why_the_stream_stuttered(lab):
    """why_the_stream_stuttered() makes the right choice, and its reason names why."""
    module = lab("exercises_03")
    explained(
        module.why_the_stream_stuttered(),
        choices=module.STUTTER_CAUSES,
        expected="prefilling the newcomers",
        ideas={
            "that the running streams wait through that step": (
                "wait",
                "every running",
                "all running",
                "each running",
                "everyone",
                "the others",
                "running sequence",
                "running stream",
                "same step",
                "one step",
                "blocked",
                "stall",
            ),
        },
        given="why did the stream stutter?",
    )
