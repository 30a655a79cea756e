"""Lesson 00's exercises (labs/exercises_00.py): what one request costs."""

from __future__ import annotations

import pytest

from inferlab import get_profile, simulate
from tests.lab.grading import expect, explained

pytestmark = pytest.mark.lesson("00")


@pytest.fixture
def ex(lab):
    return lab("exercises_00")


@pytest.mark.parametrize(("prompt", "output"), [(8, 24), (512, 1), (100, 64)])
def test_predicted_latency_matches_the_simulator(ex, prompt, output):
    """predicted_latency_ms() agrees with the simulator for one request alone (the engine's
    steps: the exercise leaves out the API server's cost, so the simulator does too)."""
    profile = get_profile("h100-llama3-8b")
    (measured,) = simulate([(0.0, prompt, output)], profile, api_server_cost=0)
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


def fits(profile, prompt: int, output: int, budget_ms: float) -> bool:
    (measured,) = simulate([(0.0, prompt, output)], profile, api_server_cost=0)
    return measured.finished_s * 1000 <= budget_ms


@pytest.mark.parametrize(("prompt", "budget_ms"), [(512, 100), (512, 500), (8, 250), (512, 10)])
def test_max_output_tokens_meets_the_budget(ex, prompt, budget_ms):
    """max_output_tokens() is the longest answer that still finishes within the budget."""
    profile = get_profile("h100-llama3-8b")
    expected = 0
    while fits(profile, prompt, expected + 1, budget_ms):
        expected += 1
    expect(
        ex.max_output_tokens(profile, prompt, budget_ms),
        expected,
        given=f"a {prompt}-token prompt and a {budget_ms} ms budget (tokens)",
        look="the longest answer whose predicted latency is at most the budget: one more token "
        "must go over it, and if even one token does not fit, the answer is 0",
    )


# --- issue 18: a checked free-text answer (h18b) -----------------------------------------------
def test_why_long_prompts_are_cheap(lab):
    """why_long_prompts_are_cheap() makes the right choice, and its reason names why."""
    module = lab("exercises_00")
    explained(
        module.why_long_prompts_are_cheap(),
        choices=module.PREFILL_SHARES,
        expected="the weights, read once",
        ideas={
            "what does grow with the number of tokens (the arithmetic)": (
                "arithmetic",
                "compute",
                "flop",
                "math",
                "multipl",
                "matmul",
                "per token",
                "each token",
                "grows",
                "scales",
            ),
        },
        given="why is a prompt of 2,000 tokens not 250 times dearer than one of 8?",
    )
