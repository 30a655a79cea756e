"""Exercises for lesson 00: what one request costs.

Fill in each function (the TODOs), then run its notebook cell, and grade yourself:
`make check-lab`.
"""

from __future__ import annotations

from inferlab.engine import Profile


def predicted_latency_ms(profile: Profile, prompt_tokens: int, output_tokens: int) -> float:
    """End-to-end latency of one request alone on the accelerator, in ms: one prefill step for
    the prompt (which gives the first token), then one decode step per further token, each over
    a context one token longer than the last. Use `profile.prefill_ms([prompt_tokens])` and
    `profile.decode_ms([context])`."""
    # BEGIN SOLUTION (add up the steps this request takes, each at its own context length)
    total = profile.prefill_ms([prompt_tokens])
    for generated in range(1, output_tokens):
        total += profile.decode_ms([prompt_tokens + generated])
    return total
    # END SOLUTION


def ttft_and_tpot(sent_s: float, token_times_s: list[float]) -> tuple[float, float]:
    """From when a request was sent and when each of its tokens arrived (seconds), return
    (time to first token, time per output token after the first). With one token, TPOT is 0.

    ttft_and_tpot(0.0, [0.1, 0.2, 0.4]) -> (0.1, 0.15)
    """
    # BEGIN SOLUTION (the wait for the first token; then the mean time between tokens)
    ttft = token_times_s[0] - sent_s
    gaps = len(token_times_s) - 1
    tpot = (token_times_s[-1] - token_times_s[0]) / gaps if gaps else 0.0
    return ttft, tpot
    # END SOLUTION


def max_output_tokens(profile: Profile, prompt_tokens: int, budget_ms: float) -> int:
    """Turn the knob: the largest max_tokens whose request, alone on the accelerator, finishes
    within budget_ms (0 if not even the first token does). Your predicted_latency_ms() is the
    tool; graded exactly, against the simulator.

    max_output_tokens(profile, 512, 100) -> 10 on h100-llama3-8b
    """
    # BEGIN SOLUTION (grow the answer a token at a time while the prediction stays in budget)
    tokens = 0
    while predicted_latency_ms(profile, prompt_tokens, tokens + 1) <= budget_ms:
        tokens += 1
    return tokens
    # END SOLUTION


# --- A checked answer, in your own words -------------------------------------------------------
PREFILL_SHARES = ("the weights, read once", "a cached prompt", "only the last token")


def why_long_prompts_are_cheap() -> tuple[str, str]:
    """Why is a prompt of 2,000 tokens not 250 times dearer than one of 8? Return (one of PREFILL_SHARES,
    your reason in a sentence or two of your own): the grader checks the choice, and reads your
    reason for the ideas that make it right."""
    # BEGIN SOLUTION (choose from what you measured, and say why in your own words)
    return "the weights, read once", (
        "A prefill handles every prompt token in one pass, so reading the 16 GB of weights is "
        "paid once for all of them; only the arithmetic grows with the tokens, a few hundredths "
        "of a millisecond each."
    )
    # END SOLUTION
