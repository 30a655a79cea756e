"""Exercises for lesson 06: choosing settings from measurements."""

from __future__ import annotations

from typing import NamedTuple


class Setting(NamedTuple):
    max_batch_size: int
    flush_interval_s: float
    throughput: float  # requests per second
    p99_s: float


def best_setting(measured: list[Setting], p99_target_s: float) -> Setting | None:
    """Of the settings whose p99 meets the target, the one with the highest throughput; on a tie,
    the one with the lower p99 (more room under the target). None if none meets it."""
    # TODO: keep what meets the target; choose among them as the docstring says
    raise NotImplementedError(
        'TODO in labs/exercises_06.py: keep what meets the target; choose among them as the docstring says'
    )


def pareto_front(measured: list[Setting]) -> list[Setting]:
    """The settings no other setting beats on both counts (at least as much throughput and at
    most as much p99, better on one), sorted by p99: the only ones worth choosing between."""

    # TODO: drop every setting another one beats; order what is left
    raise NotImplementedError(
        'TODO in labs/exercises_06.py: drop every setting another one beats; order what is left'
    )
