"""Lesson 07's exercises (labs/exercises_07.py): decode steps of static and continuous batching."""

from __future__ import annotations

import math
import random

import pytest

from tests.lab.grading import broke, expect, explained

pytestmark = pytest.mark.lesson("07")


@pytest.fixture
def ex(lab):
    return lab("exercises_07")


def test_static_steps(ex):
    """static_steps() runs each batch of `slots` requests until its longest answer is done."""
    expect(
        ex.static_steps([1, 5, 2, 2], 2),
        7,
        given="answers of [1, 5, 2, 2] tokens in 2 slots",
        look="batches are consecutive groups of `slots`; each lasts as long as its longest",
    )
    expect(ex.static_steps([3, 1, 4], 2), 7, given="[3, 1, 4] in 2 slots", look="the last group")


def test_continuous_steps(ex):
    """continuous_steps() refills a slot as soon as its sequence is done."""
    look = "each step: fill free slots from the queue, one token for each running sequence"
    expect(ex.continuous_steps([1, 5, 2, 2], 2), 5, given="[1, 5, 2, 2] in 2 slots", look=look)
    lengths = [max(1, round(random.Random(s).expovariate(1 / 20))) for s in range(60)]
    for slots in (1, 4, 16):
        continuous = ex.continuous_steps(lengths, slots)
        static = ex.static_steps(lengths, slots)
        if not math.ceil(sum(lengths) / slots) <= continuous <= static:
            broke(
                test_continuous_steps.__doc__,
                f"60 answers, {slots} slots: static {static} steps, continuous {continuous}; "
                f"continuous can be no worse than static and no better than "
                f"{math.ceil(sum(lengths) / slots)} (every slot busy every step).",
                look,
            )


def held_longest(lengths: list[int], slots: int) -> tuple[int, int]:
    """(request held longest after its last token in static batching, the request it waited for)."""
    best = (-1, 0, 0)  # steps held, held, holder
    for start in range(0, len(lengths), slots):
        group = range(start, min(start + slots, len(lengths)))
        holder = max(group, key=lambda i: lengths[i])
        for i in group:
            best = max(best, (lengths[holder] - lengths[i], -i, holder))
    return -best[1], best[2]


def test_read_the_plot(ex):
    """read_the_plot() names the request held longest in its slot, and the one that held it."""
    expect(
        ex.read_the_plot(),
        held_longest(ex.PLOTTED_LENGTHS, ex.PLOTTED_SLOTS),
        given="the plotted static batches, (held, holder)",
        look="the longest hatched bar is the wait after a request's last token; the request it "
        "waits for is the longest one in the same batch",
    )


# --- issue 18: a checked free-text answer (h18b) -----------------------------------------------
def test_why_steps_overstate_the_gain(lab):
    """why_steps_overstate_the_gain() makes the right choice, and its reason names why."""
    module = lab("exercises_07")
    explained(
        module.why_steps_overstate_the_gain(),
        choices=module.STEPS_OVERSTATE_BECAUSE,
        expected="steps differ in cost",
        ideas={
            "what else a step can carry (the prompts)": (
                "prefill",
                "prompt",
            ),
            "what static batching's extra steps are like": (
                "few",
                "cheap",
                "small",
                "empty",
                "less full",
                "light",
                "smaller batch",
                "half",
            ),
        },
        given="why do step counts overstate the gain?",
    )
