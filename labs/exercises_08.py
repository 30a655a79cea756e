"""Exercises for lesson 08: queueing, SLOs and error budgets."""

from __future__ import annotations


def md1_mean_latency_s(service_s: float, utilisation: float) -> float:
    """Mean time in an M/D/1 system (Poisson arrivals, fixed service time, one server): the
    service time plus the mean wait, utilisation * service_s / (2 * (1 - utilisation)).
    Raise ValueError for a utilisation outside [0, 1): at 1 or more the queue grows forever."""
    # TODO: refuse a utilisation no queue survives; then the lesson's M/D/1 mean
    raise NotImplementedError(
        "TODO in labs/exercises_08.py: refuse a utilisation no queue survives; then the lesson's M/D/1 mean"
    )


def burn_rate(missed: int, total: int, objective: float) -> float:
    """How fast requests that missed the SLO spend the error budget: the share missed divided
    by the share allowed (1 - objective). 1.0 spends the budget in exactly its window.

    burn_rate(30, 1000, 0.99) -> 3.0
    """
    # TODO: compare the share that missed with the share allowed to
    raise NotImplementedError(
        'TODO in labs/exercises_08.py: compare the share that missed with the share allowed to'
    )


def budget_left_hours(
    window_days: float, objective: float, burn: float, elapsed_days: float
) -> float:
    """Hours of error budget left after `elapsed_days` at burn rate `burn`: the budget is
    (1 - objective) of the window; each day at burn rate b spends b * (1 - objective) days."""
    # TODO: budget in hours minus what was spent, in hours
    raise NotImplementedError(
        'TODO in labs/exercises_08.py: budget in hours minus what was spent, in hours'
    )


def max_rate_for_mean_latency(service_s: float, target_s: float) -> float:
    """Turn the knob: the highest arrival rate (requests per second) at which an M/D/1 server
    with this service time keeps its mean latency at or under target_s. 0.0 if even an idle
    server misses the target. Graded within 0.1%: solving by hand or bisecting over
    md1_mean_latency_s() are both fine.

    max_rate_for_mean_latency(0.1, 0.15) -> 5.0   (50% busy, as md1_mean_latency_s showed)
    """
    # TODO: find the busiest utilisation that meets the target, then turn it into a rate
    raise NotImplementedError(
        'TODO in labs/exercises_08.py: find the busiest utilisation that meets the target, then turn it into a rate'
    )


# --- A checked answer, in your own words -------------------------------------------------------
MORE_TRAFFIC = ("very little", "about twice", "in proportion")


def relaxing_the_target() -> tuple[str, str]:
    """Relax the target from 100 ms to 200 ms; how much more traffic? Return (one of MORE_TRAFFIC,
    your reason in a sentence or two of your own): the grader checks the choice, and reads your
    reason for the ideas that make it right."""
    # TODO: choose from what you measured, and say why in your own words
    raise NotImplementedError(
        'TODO in labs/exercises_08.py: choose from what you measured, and say why in your own words'
    )
