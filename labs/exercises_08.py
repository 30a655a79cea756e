"""Exercises for lesson 08: queueing, SLOs and error budgets."""

from __future__ import annotations


def md1_mean_latency_s(service_s: float, utilisation: float) -> float:
    """Mean time in an M/D/1 system (Poisson arrivals, fixed service time, one server): the
    service time plus the mean wait, utilisation * service_s / (2 * (1 - utilisation)).
    Raise ValueError for a utilisation outside [0, 1): at 1 or more the queue grows forever."""
    # TODO: check 0 <= rho < 1; D + rho*D / (2(1-rho))
    raise NotImplementedError(
        'TODO in labs/exercises_08.py: check 0 <= rho < 1; D + rho*D / (2(1-rho))'
    )


def burn_rate(missed: int, total: int, objective: float) -> float:
    """How fast requests that missed the SLO spend the error budget: the share missed divided
    by the share allowed (1 - objective). 1.0 spends the budget in exactly its window.

    burn_rate(30, 1000, 0.99) -> 3.0
    """
    # TODO: missed / total over 1 - objective
    raise NotImplementedError(
        'TODO in labs/exercises_08.py: missed / total over 1 - objective'
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
