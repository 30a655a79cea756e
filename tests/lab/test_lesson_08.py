"""Lesson 08's exercises (labs/exercises_08.py): queueing, SLOs and error budgets."""

from __future__ import annotations

import pytest

from tests.lab.grading import broke, expect, explained

pytestmark = pytest.mark.lesson("08")


@pytest.fixture
def ex(lab):
    return lab("exercises_08")


def test_md1_mean_latency(ex):
    """md1_mean_latency_s() is the service time plus M/D/1's mean wait, and refuses rho >= 1."""
    look = "the lesson's M/D/1 formula: a fixed service time waits half as long as M/M/1's"
    expect(ex.md1_mean_latency_s(0.1, 0.5), 0.15, given="0.1 s service at 50% busy", look=look)
    expect(ex.md1_mean_latency_s(0.1, 0.0), 0.1, given="an idle server", look="nobody waits")
    for utilisation in (1.0, 1.5):
        try:
            got = f"returned {ex.md1_mean_latency_s(0.1, utilisation)!r}"
        except ValueError:
            continue
        except NotImplementedError:
            raise
        except Exception as exc:
            got = f"raised {type(exc).__name__}"
        broke(
            test_md1_mean_latency.__doc__.splitlines()[0],
            f"at utilisation {utilisation} your function {got}; the queue grows forever.",
            "raise ValueError naming the utilisation received",
        )


def test_burn_rate(ex):
    """burn_rate() compares the share of requests that missed with the share allowed."""
    expect(
        ex.burn_rate(30, 1000, 0.99),
        3.0,
        given="30 misses in 1,000 requests against a 99% objective",
        look="a 99% objective allows 1% to miss",
    )


def test_budget_left_hours(ex):
    """budget_left_hours() is the window's budget minus what the burn rate spent."""
    expect(
        ex.budget_left_hours(30, 0.999, 2.0, 10) * 60,
        43.2 - 28.8,
        given="30 days at 99.9%, burning at 2x for 10 days (minutes left)",
        look="the budget is 43.2 minutes; at burn rate 1 a day spends a 30th of it",
    )


def test_max_rate_for_a_mean_latency_target(ex):
    """max_rate_for_mean_latency() finds the highest rate that still meets the target."""
    look = "find the utilisation at which md1_mean_latency_s() equals the target; a rate is a "
    look += "utilisation divided by the service time"
    expect(
        ex.max_rate_for_mean_latency(0.1, 0.15),
        5.0,
        rel=1e-3,
        given="0.1 s service, a 0.15 s target (requests/s)",
        look=look,
    )
    expect(
        ex.max_rate_for_mean_latency(0.02, 0.1),
        2 * 4 / (1 + 2 * 4) / 0.02,
        rel=1e-3,
        given="20 ms service, a 100 ms target (requests/s)",
        look=look,
    )
    expect(
        ex.max_rate_for_mean_latency(0.1, 0.05),
        0.0,
        given="a target shorter than the service time",
        look="no rate meets it",
    )


# --- issue 18: a checked free-text answer (h18b) -----------------------------------------------
def test_relaxing_the_target(lab):
    """relaxing_the_target() makes the right choice, and its reason names why."""
    module = lab("exercises_08")
    explained(
        module.relaxing_the_target(),
        choices=module.MORE_TRAFFIC,
        expected="very little",
        ideas={
            "how busy the server already is": (
                "saturat",
                "capacity",
                "utilis",
                "utiliz",
                "busy",
                "89",
                "95",
                "close to 1",
                "near 1",
                "rho",
                "ρ",
                "full",
            ),
            "what each extra request a second costs there (waiting)": (
                "wait",
                "queue",
                "delay",
                "expensive",
                "cost",
            ),
        },
        given="relax the target from 100 ms to 200 ms; how much more traffic?",
    )
