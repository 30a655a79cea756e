"""Exercises for lesson 10: KV blocks, prefix-cache hits, and choosing a token budget."""

from __future__ import annotations

from inferlab import simulate
from inferlab.engine import Profile
from inferlab.load import percentile


def blocks_needed(context_lens: list[int], block_size: int) -> int:
    """KV blocks a paged cache needs for sequences of these lengths: each rounds up to whole
    blocks, and no sequence shares a block with another.

    blocks_needed([1, 16, 17], 16) -> 1 + 1 + 2 = 4
    """
    # TODO: ceil(length / block_size) for each, summed
    raise NotImplementedError(
        'TODO in labs/exercises_10.py: ceil(length / block_size) for each, summed'
    )


def prefix_hit_tokens(cached: list[int], prompt: list[int], block_size: int) -> int:
    """Tokens of `prompt` the prefix cache serves after `cached` was computed: the full blocks
    they share from the start, never the prompt's last token (its logits must be computed).

    prefix_hit_tokens([1, 2, 3, 4, 5], [1, 2, 3, 9], 2) -> 2   (block [1, 2] shared, [3, 9] not)
    prefix_hit_tokens([1, 2, 3, 4], [1, 2, 3, 4], 2) -> 2      (the last block holds the last token)
    """
    # TODO: count equal leading blocks, at most (len(prompt) - 1) // block_size
    raise NotImplementedError(
        'TODO in labs/exercises_10.py: count equal leading blocks, at most (len(prompt) - 1) // block_size'
    )


def best_budget(
    requests: list[tuple[float, int, int]],
    profile: Profile,
    budgets: list[int],
    itl_p99_slo_ms: float,
) -> int | None:
    """The budget (max_num_batched_tokens) with the lowest median TTFT among those whose p99
    inter-token latency meets the SLO, simulating `requests` with each; None if none meets it.

    On lesson 10's mixed workload with an SLO of 50 ms: 1024 (p99 ITL 35 ms, TTFT 98 ms).
    """
    # TODO: simulate each budget; keep those with p99 ITL <= SLO; min median TTFT
    raise NotImplementedError(
        'TODO in labs/exercises_10.py: simulate each budget; keep those with p99 ITL <= SLO; min median TTFT'
    )


# --- A checked answer, in your own words -------------------------------------------------------
PUT_WHAT_VARIES = ("first", "last", "anywhere")


def where_varying_text_goes() -> tuple[str, str]:
    """Where does the text that varies go in a prompt? Return (one of PUT_WHAT_VARIES,
    your reason in a sentence or two of your own): the grader checks the choice, and reads your
    reason for the ideas that make it right."""
    # TODO: choose from what you measured, and say why in your own words
    raise NotImplementedError(
        'TODO in labs/exercises_10.py: choose from what you measured, and say why in your own words'
    )
