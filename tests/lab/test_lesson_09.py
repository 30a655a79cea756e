"""Lesson 09's exercises (labs/exercises_09.py): the decision guide as code."""

from __future__ import annotations

import pytest

from inferlab import get_profile
from tests.lab.grading import broke, expect, explained

pytestmark = pytest.mark.lesson("09")


@pytest.mark.parametrize(
    ("waiting", "reads", "long_or_bursty", "mode", "workload"),
    [
        (True, True, False, "stream", "a chat window"),
        (True, False, False, "sync", "a classifier behind an API"),
        (False, False, True, "async", "summarising a document archive overnight"),
        (True, True, True, "stream", "a long answer a person reads as it comes"),
        (False, False, False, "sync", "a quick call from a batch script"),
    ],
)
def test_choose_mode(lab, waiting, reads, long_or_bursty, mode, workload):
    """choose_mode() follows the lesson's decision guide."""
    got = lab("exercises_09").choose_mode(
        person_waiting=waiting, reads_as_it_arrives=reads, long_or_bursty=long_or_bursty
    )
    expect(
        got,
        mode,
        given=f"{workload} (person waiting={waiting}, reads as it arrives={reads}, "
        f"long or bursty={long_or_bursty})",
        look="the guide's order: nobody waiting on long work, then a reader, then the rest",
    )


def test_max_throughput(lab):
    """max_throughput() is Little's law solved for the rate."""
    expect(
        lab("exercises_09").max_throughput(8, 0.6),
        8 / 0.6,
        given="8 requests in flight, 0.6 s each (requests/s)",
        look="Little's law relates the number in flight, the rate and the time each takes",
    )


def test_cost_per_million_tokens(lab):
    """cost_per_million_tokens() shares each step's price among the tokens it makes."""
    ex = lab("exercises_09")
    look = "one step costs price_per_hour / 3600 * its seconds, and makes `batch` tokens"
    expect(
        ex.cost_per_million_tokens(3.6, 10.0, 1), 10.0, given="$3.60/h, 10 ms, batch 1", look=look
    )
    expect(ex.cost_per_million_tokens(3.6, 12.0, 64), 12 / 64, given="12 ms, batch 64", look=look)


def test_predicted_cost_ratio(lab):
    """predicted_cost_ratio() is within 15% of the measured cost ratio of batch 1 to 64."""
    profile = get_profile("h100-llama3-8b")
    measured = 64 * profile.decode_ms([512]) / profile.decode_ms([512] * 64)
    predicted = lab("exercises_09").predicted_cost_ratio()
    if not (isinstance(predicted, int | float) and abs(predicted / measured - 1) <= 0.15):
        broke(
            test_predicted_cost_ratio.__doc__,
            f"you predicted {predicted!r}; the profile measures {measured:.1f} (tolerance 15%).",
            "how much longer a decode step at batch 64 takes than at batch 1 (lesson 04's "
            "table), and how many tokens each makes",
        )


# --- issue 18: a checked free-text answer (h18b) -----------------------------------------------
def test_why_batch_64_is_cheap(lab):
    """why_batch_64_is_cheap() makes the right choice, and its reason names why."""
    module = lab("exercises_09")
    explained(
        module.why_batch_64_is_cheap(),
        choices=module.BATCH_64_IS_CHEAP_BECAUSE,
        expected="the step barely grows",
        ideas={
            "what a decode step spends its time on": (
                "weight",
                "memory",
                "bandwidth",
                "read",
                "bytes",
            ),
            "how many tokens one step makes": (
                "64 tokens",
                "one per sequence",
                "each sequence",
                "each of 64",
                "every sequence",
                "per sequence",
                "shared",
                "tokens per step",
                "64 of them",
                "one token for each",
            ),
        },
        given="why does batch 64 not cost 64 times batch 1?",
    )
