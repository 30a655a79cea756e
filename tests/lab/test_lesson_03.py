"""Lesson 03's exercises (labs/exercises_03.py): reading a stream."""

from __future__ import annotations

import pytest

from tests.lab.grading import expect

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
