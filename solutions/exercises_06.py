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
    # BEGIN SOLUTION (keep what meets the target; choose among them as the docstring says)
    meeting = [s for s in measured if s.p99_s <= p99_target_s]
    return max(meeting, key=lambda s: (s.throughput, -s.p99_s), default=None)
    # END SOLUTION


def pareto_front(measured: list[Setting]) -> list[Setting]:
    """The settings no other setting beats on both counts (at least as much throughput and at
    most as much p99, better on one), sorted by p99: the only ones worth choosing between."""

    # BEGIN SOLUTION (drop every setting another one beats; order what is left)
    def beaten(s: Setting) -> bool:
        return any(
            t.throughput >= s.throughput
            and t.p99_s <= s.p99_s
            and t != s
            and (t.throughput > s.throughput or t.p99_s < s.p99_s)
            for t in measured
        )

    return sorted((s for s in measured if not beaten(s)), key=lambda s: s.p99_s)
    # END SOLUTION
