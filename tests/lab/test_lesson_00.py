"""Lesson 00's exercises (labs/exercises_00.py): what one request costs."""

from __future__ import annotations

import pytest

from inferlab import get_profile, simulate
from tests.lab.grading import expect

pytestmark = pytest.mark.lesson("00")


@pytest.fixture
def ex(lab):
    return lab("exercises_00")


@pytest.mark.parametrize(("prompt", "output"), [(8, 24), (512, 1), (100, 64)])
def test_predicted_latency_matches_the_simulator(ex, prompt, output):
    """predicted_latency_ms() agrees with the simulator for one request alone."""
    profile = get_profile("h100-llama3-8b")
    (measured,) = simulate([(0.0, prompt, output)], profile)
    expect(
        ex.predicted_latency_ms(profile, prompt, output),
        measured.finished_s * 1000,
        rel=1e-6,
        given=f"a {prompt}-token prompt and {output} output tokens (ms)",
        look="how many decode steps follow the prefill (which already gives the first token), "
        "and how long the context is at each of them",
    )


def test_ttft_and_tpot(ex):
    """ttft_and_tpot() measures from the send to the first token, then per token after it."""
    expect(
        ex.ttft_and_tpot(0.0, [0.1, 0.2, 0.4]),
        (0.1, 0.15),
        given="sent at 0 s, tokens at 0.1, 0.2 and 0.4 s",
        look="TPOT spreads the time after the first token over the gaps between tokens",
    )
    expect(
        ex.ttft_and_tpot(1.0, [1.25]),
        (0.25, 0.0),
        given="sent at 1 s, one token at 1.25 s",
        look="with a single token there are no gaps to spread anything over",
    )
