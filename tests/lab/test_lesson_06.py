"""Lesson 06's exercises (labs/exercises_06.py): choosing settings from measurements."""

from __future__ import annotations

import pytest

from tests.lab.grading import expect

pytestmark = pytest.mark.lesson("06")


@pytest.fixture
def ex(lab):
    return lab("exercises_06")


def measured(ex):
    setting = ex.Setting
    return [
        setting(1, 0.01, 10.0, 0.9),
        setting(8, 0.05, 60.0, 0.35),
        setting(8, 0.01, 60.0, 0.3),
        setting(32, 0.05, 80.0, 0.6),
        setting(16, 0.02, 55.0, 0.45),
    ]


def test_best_setting_meets_the_target_with_the_most_throughput(ex):
    """best_setting() picks the most throughput among settings meeting the p99 target."""
    points = measured(ex)
    expect(
        ex.best_setting(points, 0.5),
        points[2],
        given="a p99 target of 0.5 s (two settings tie at 60 req/s)",
        look="only settings with p99 <= target count; a tie goes to the lower p99",
    )
    expect(
        ex.best_setting(points, 0.7),
        points[3],
        given="a p99 target of 0.7 s",
        look="only settings with p99 <= target count",
    )
    expect(ex.best_setting(points, 0.1), None, given="a target none meets", look="the empty case")


def test_pareto_front(ex):
    """pareto_front() keeps only the settings no other beats on both counts, by p99."""
    points = measured(ex)
    expect(
        ex.pareto_front(points),
        [points[2], points[3]],
        given="five settings, three of them beaten",
        look="a setting is beaten if another has at least its throughput and at most its p99, "
        "and is better on one; sort what is left by p99",
    )
