"""A run's figures over time, as short text sparklines: is it steady, or still climbing?

    print(history_table(run.records))
    sent (req/s)      ▇▇█▇▇▆▇▇  19.3 .. 21.0
    p99 e2e (ms)      ▁▁▂▃▄▆▇█  120 .. 2400      <- a queue growing all run: over capacity
    lag p99 (ms)      ▁▁▁▁▁▁▁▁  0.4 .. 1.1

One number per figure hides the difference between a run that settled and one whose queue
grew from the first second to the last: the same mean can be either. A row of bars shows it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from .metrics import RequestResult, percentile

BARS = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float]) -> str:
    """One bar per value, scaled from the smallest to the largest; a gap for nan.

    sparkline([1, 2, 3, 4]) -> '▁▃▆█';  sparkline([5, 5]) -> '▄▄'
    """
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return " " * len(values)
    low, high = min(finite), max(finite)
    bars = []
    for value in values:
        if not math.isfinite(value):
            bars.append(" ")
        elif high == low:
            bars.append(BARS[len(BARS) // 2 - 1])
        else:
            bars.append(BARS[round((value - low) / (high - low) * (len(BARS) - 1))])
    return "".join(bars)


def _range(values: Sequence[float], fmt: str) -> str:
    finite = [v for v in values if math.isfinite(v)]
    return f"{min(finite):{fmt}} .. {max(finite):{fmt}}" if finite else "-"


def history_row(name: str, values: Sequence[float], fmt: str = ".1f") -> str:
    """`name  ▁▃▆█  low .. high`, the row format every history in the course uses."""
    return f"{name:<18}{sparkline(values)}  {_range(values, fmt)}"


def _bins(
    records: Sequence[RequestResult], bins: int, when: Callable[[RequestResult], float]
) -> tuple[list[list[RequestResult]], float]:
    """The records in `bins` equal slices of time, by `when` (scheduled, or sent)."""
    start = min(when(r) for r in records)
    end = max(when(r) for r in records)
    width = (end - start) / bins if end > start else 1.0
    grouped: list[list[RequestResult]] = [[] for _ in range(bins)]
    for record in records:
        grouped[min(bins - 1, int((when(record) - start) / width))].append(record)
    return grouped, width


def _per_bin(
    grouped: list[list[RequestResult]], figure: Callable[[list[RequestResult]], float]
) -> list[float]:
    return [figure(group) if group else math.nan for group in grouped]


def history_table(records: Sequence[RequestResult], *, bins: int = 12) -> str:
    """The run in `bins` equal slices: requests the load generator sent per second (by when
    they were sent), the p99 of the requests scheduled in each slice (failed or cut off at the
    end: at the time they took), and the load generator's own lag (sent - scheduled). Times
    in milliseconds, as measured."""
    if len(records) < 2:
        return "history: too few requests"
    grouped, width = _bins(records, bins, lambda r: r.scheduled_s)
    sent, sent_width = _bins(records, bins, lambda r: r.sent_s)

    def p99_ms(group: list[RequestResult]) -> float:
        return percentile([(r.done_s - r.sent_s) * 1000 for r in group], 99)

    rows = [
        history_row("sent (req/s)", [len(g) / sent_width for g in sent]),
        history_row("p99 e2e (ms)", _per_bin(grouped, p99_ms), ".0f"),
        history_row(
            "lag p99 (ms)",
            _per_bin(grouped, lambda g: percentile([r.queue_delay_s * 1000 for r in g], 99)),
        ),
    ]
    return f"history, {bins} slices of {width:.2f} s:\n" + "\n".join(rows)
