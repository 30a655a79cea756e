"""Exercises for lesson 09: the decision guide as code."""

from __future__ import annotations


def choose_mode(*, person_waiting: bool, reads_as_it_arrives: bool, long_or_bursty: bool) -> str:
    """The mode for a workload ("stream", "sync" or "async"), as the lesson's guide says: long or
    bursty work that nobody waits on goes to a job API; a person reading as text arrives wants a
    stream; everything else is simplest synchronous."""
    # TODO: follow the lesson's decision guide, in its order
    raise NotImplementedError(
        "TODO in labs/exercises_09.py: follow the lesson's decision guide, in its order"
    )


def max_throughput(in_flight: int, latency_s: float) -> float:
    """The most requests per second a client keeping `in_flight` requests at the server can
    complete, when each takes `latency_s` (Little's law, solved for λ)."""
    # TODO: Little's law, solved for the rate
    raise NotImplementedError(
        "TODO in labs/exercises_09.py: Little's law, solved for the rate"
    )


def cost_per_million_tokens(price_per_hour: float, step_ms: float, batch: int) -> float:
    """What a million output tokens cost on an accelerator rented at price_per_hour, when each
    decode step takes step_ms and makes one token for each of `batch` sequences.

    cost_per_million_tokens(3.6, 10.0, 1) -> 10.0   (a token a 10 ms step, a dollar a 1,000 s)
    """
    # TODO: the price of one step, shared by the tokens it makes, times a million
    raise NotImplementedError(
        'TODO in labs/exercises_09.py: the price of one step, shared by the tokens it makes, times a million'
    )


def predicted_cost_ratio() -> float:
    """Predict before you measure: how many times more does an output token cost at batch 1
    than at batch 64, on the h100-llama3-8b profile at a context of 512 tokens? Commit to a
    number, then run the notebook's cell. Graded within 15% of the measured ratio."""
    # TODO: your prediction, as a number, with the reasoning in a comment
    raise NotImplementedError(
        'TODO in labs/exercises_09.py: your prediction, as a number, with the reasoning in a comment'
    )


# --- A checked answer, in your own words -------------------------------------------------------
BATCH_64_IS_CHEAP_BECAUSE = ("the step barely grows", "the accelerator runs faster", "batch 64 skips work")


def why_batch_64_is_cheap() -> tuple[str, str]:
    """Why does batch 64 not cost 64 times batch 1? Return (one of BATCH_64_IS_CHEAP_BECAUSE,
    your reason in a sentence or two of your own): the grader checks the choice, and reads your
    reason for the ideas that make it right."""
    # TODO: choose from what you measured, and say why in your own words
    raise NotImplementedError(
        'TODO in labs/exercises_09.py: choose from what you measured, and say why in your own words'
    )
