"""Lesson 05's checked answer (labs/queue_proxy.py): a question the lab asks, read kindly."""

from __future__ import annotations

import pytest

from tests.lab.grading import explained

pytestmark = pytest.mark.lesson("05")


def test_very_short_flush_interval(lab):
    """very_short_flush_interval() makes the right choice, and its reason names why."""
    module = lab("queue_proxy")
    explained(
        module.very_short_flush_interval(),
        choices=module.SHORT_FLUSH_DOES,
        expected="more upstream requests",
        ideas={
            "what happens to the batches": (
                "small",
                "one or two",
                "singleton",
                "of one",
                "fewer per",
                "mean batch",
                "shrink",
                "1.8",
                "tiny",
            ),
            "what it buys in exchange (latency)": (
                "latency",
                "wait",
                "faster",
                "sooner",
                "quicker",
            ),
        },
        given="what does a very short flush interval do?",
    )
