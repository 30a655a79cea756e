"""Autograder for lesson 10's exercises (labs/10_prefill_decode_kv_cache_exercises_lab.ipynb and
exercises_10.py): each answer is checked against the engine that lesson 10 measures.

`make check-lab LESSON=10` grades this lesson only.
"""

from __future__ import annotations

import random

import pytest

from inferlab import get_profile, simulate
from inferlab.engine import Scheduler, SchedulerConfig, Sequence
from tests.lab.grading import explained

pytestmark = pytest.mark.lesson("10")

# The engine alone: these exercises study its budget and cache. With the API server's cost on,
# tokenizing a 4,096-token prompt takes 31 ms, which reorders arrivals by prompt length.
PROFILE = get_profile("h100-llama3-8b").with_api_server_cost(0)


@pytest.mark.parametrize(
    ("lengths", "block_size", "expected"),
    [([1, 16, 17], 16, 4), ([], 16, 0), ([33], 16, 3), ([5, 5, 5], 4, 6)],
)
def test_10_blocks_needed(lab, lengths, block_size, expected):
    assert lab("exercises_10").blocks_needed(lengths, block_size) == expected


def test_10_blocks_needed_matches_the_engine(lab):
    """The engine's pool, after prefilling prompts of these lengths, holds as many blocks."""
    lengths = [7, 16, 40, 1]
    scheduler = Scheduler(PROFILE, SchedulerConfig(block_size=16))
    for length in lengths:
        scheduler.add(Sequence(prompt_tokens=length, max_tokens=4))
    scheduler.plan_step(0.0)
    used = scheduler.pool.num_usable - scheduler.pool.num_free  # the null block is never used
    assert lab("exercises_10").blocks_needed(lengths, 16) == used


@pytest.mark.parametrize(
    ("cached", "prompt", "expected"),
    [
        ([1, 2, 3, 4, 5], [1, 2, 3, 9], 2),
        ([1, 2, 3, 4], [1, 2, 3, 4], 2),  # never the last token
        ([9, 2, 3, 4], [1, 2, 3, 4, 5], 0),  # a different first token breaks every block
        ([1, 2, 3], [1, 2, 3, 4, 5, 6], 2),  # only the cached prompt's full blocks
    ],
)
def test_10_prefix_hit_tokens(lab, cached, prompt, expected):
    hits = lab("exercises_10").prefix_hit_tokens(cached, prompt, 2)
    assert hits == expected, "count whole shared blocks from the start, and never the last token"


def test_10_prefix_hit_tokens_matches_the_engine(lab):
    """Random prompts with shared beginnings: the engine's hits, request by request."""
    rng = random.Random(10)
    for _ in range(20):
        shared = [rng.randrange(50) for _ in range(rng.randrange(0, 40))]
        first = shared + [rng.randrange(50) for _ in range(rng.randrange(1, 20))]
        second = shared + [rng.randrange(50) for _ in range(rng.randrange(1, 20))]
        config = SchedulerConfig(enable_prefix_caching=True, block_size=8)
        scheduler = Scheduler(PROFILE, config)
        simulate([(0.0, first, 1)], PROFILE, scheduler=scheduler)
        (seq,) = simulate([(0.0, second, 1)], PROFILE, scheduler=scheduler)
        expected = seq.num_cached_tokens
        hits = lab("exercises_10").prefix_hit_tokens(first, second, 8)
        assert hits == expected


def test_10_best_budget(lab):
    """Lesson 10's workload, shortened to 80 requests of 64 tokens. Simulated, the p99 ITL stays
    under 25 ms up to a 512-token budget and under 50 ms up to 1024, and TTFT falls as the budget
    grows, so each SLO picks the largest budget it allows; no budget meets 1 ms."""
    rng, arrival, requests = random.Random(1), 0.0, []
    for _ in range(80):
        arrival += rng.expovariate(12)
        requests.append((arrival, rng.choice([256, 512, 1024, 4096]), 64))
    budgets = [256, 512, 1024, 2048, 8192]
    ex = lab("exercises_10")
    assert ex.best_budget(requests, PROFILE, budgets, 1.0) is None
    picks = [ex.best_budget(requests, PROFILE, budgets, slo) for slo in (25, 50)]
    assert picks == [512, 1024], "keep the budgets whose p99 ITL meets the SLO; lowest TTFT wins"
    generous = ex.best_budget(requests, PROFILE, budgets, 10_000.0)
    assert generous == 8192, "with no SLO to meet, the lowest median TTFT wins"


# --- issue 18: a checked free-text answer (h18b) -----------------------------------------------
def test_where_varying_text_goes(lab):
    """where_varying_text_goes() makes the right choice, and its reason names why."""
    module = lab("exercises_10")
    explained(
        module.where_varying_text_goes(),
        choices=module.PUT_WHAT_VARIES,
        expected="last",
        ideas={
            "what the cache keeps (whole blocks only)": (
                "whole block",
                "full block",
                "complete block",
                "entire block",
                "only blocks",
                "16 tokens",
                "of 16",
            ),
            "that a difference breaks the match for everything after it": (
                "after",
                "every block",
                "rest",
                "following",
                "later",
                "prefix",
                "before it",
            ),
        },
        given="where does the text that varies go in a prompt?",
    )
