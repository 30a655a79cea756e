"""Lesson 01's exercises (labs/exercises_01.py): percentiles and Little's law."""

from __future__ import annotations

import math
import random

import pytest

from inferlab.load.metrics import percentile as reference_percentile
from tests.lab.grading import broke, expect

pytestmark = pytest.mark.lesson("01")


@pytest.fixture
def ex(lab):
    return lab("exercises_01")


def test_percentile_interpolates_like_numpy(ex):
    """percentile() interpolates between the two nearest ranks, as numpy does."""
    look = "the rank is a fraction between two sorted values: interpolate, do not round it"
    expect(ex.percentile([1, 2, 3, 4], 50), 2.5, given="p50 of [1, 2, 3, 4]", look=look)
    expect(ex.percentile([5], 99), 5, given="p99 of [5]", look="a single value is every percentile")
    empty = ex.percentile([], 50)
    if not (isinstance(empty, float) and math.isnan(empty)):
        broke(percentile_doc(), f"p50 of [] should be nan, got {empty!r}.", "the empty case")
    values = [random.Random(seed).expovariate(1.0) for seed in range(101)]
    for q in (0, 10, 50, 90, 99, 100):
        expect(
            ex.percentile(values, q),
            reference_percentile(values, q),
            given=f"p{q} of 101 unsorted values",
            look=look + "; sort first",
        )


def percentile_doc() -> str:
    return "percentile() interpolates between the two nearest ranks, as numpy does."


def test_threads_needed_is_littles_law_rounded_up(ex):
    """threads_needed() is the number in flight, in whole threads, enough to keep up."""
    look = "how many requests are in flight at once at that rate and latency, in whole threads"
    expect(ex.threads_needed(100, 0.3), 30, given="100 requests/s of 0.3 s each", look=look)
    expect(
        ex.threads_needed(10, 0.25),
        3,
        given="10 requests/s of 0.25 s each",
        look="2.5 threads cannot exist, and 2 cannot keep up",
    )
