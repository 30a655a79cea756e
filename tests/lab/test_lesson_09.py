"""Lesson 09's exercises (labs/exercises_09.py): the decision guide as code."""

from __future__ import annotations

import pytest

from tests.lab.grading import expect

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
