"""The dashboard's views, as HTML: numbers, bar charts and the SLO finder's table.

HTML rather than matplotlib because it redraws twice a second: replacing an HTML widget's value
does not flicker, and a few divs cost far less to render than a figure.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

from ._live_stats import LiveSnapshot


@dataclass(frozen=True)
class SloPoint:
    max_batch_size: int
    batch_wait_timeout_s: float
    throughput: float
    p99_s: float


def best_point(points: list[SloPoint], p99_target_s: float) -> SloPoint | None:
    """The highest throughput among settings whose p99 meets the target."""
    meeting = [p for p in points if not math.isnan(p.p99_s) and p.p99_s <= p99_target_s]
    return max(meeting, key=lambda p: p.throughput, default=None)


def _ms(seconds: float) -> str:
    return "-" if math.isnan(seconds) else f"{seconds * 1000:.0f} ms"


def mean_batch_size(sizes: Counter[Any]) -> float:
    batches = sum(sizes.values())
    return sum(size * n for size, n in sizes.items()) / batches if batches else 0.0


def numbers_html(
    s: LiveSnapshot, queued: int, in_flight: int, sizes: Counter[Any], settings: str
) -> str:
    mean = mean_batch_size(sizes)
    rows = [
        ("proxy settings", settings),
        ("throughput", f"{s.throughput:.1f} req/s"),
        ("p50 latency", _ms(s.p50_s)),
        ("p99 latency", _ms(s.p99_s)),
        ("mean batch size", f"{mean:.1f}"),
        ("queue depth", str(queued)),
        ("batches in flight", str(in_flight)),
        ("dropped (window / total)", f"{s.dropped} / {s.dropped_total}"),
    ]
    cells = "".join(
        f"<tr><td>{name}</td><td class='inferlab-{name.split()[0]}' "
        f"style='text-align:right;padding-left:1em'><b>{value}</b></td></tr>"
        for name, value in rows
    )
    return f"<table style='font-family:monospace'>{cells}</table>"


def bars_html(sizes: Counter[Any], reasons: Counter[Any]) -> str:
    def bars(title: str, counts: list[tuple[str, int]]) -> str:
        top = max((n for _, n in counts), default=0) or 1
        rows = "".join(
            f"<div style='display:flex;align-items:center;height:16px'>"
            f"<span style='width:70px;font-family:monospace'>{label}</span>"
            f"<span style='background:#0072B2;height:12px;width:{200 * n / top:.0f}px'></span>"
            f"<span style='margin-left:4px;font-family:monospace'>{n}</span></div>"
            for label, n in counts
        )
        return f"<div style='margin-right:24px'><b>{title}</b>{rows}</div>"

    groups = [
        ("1", 1, 1),
        ("2-3", 2, 3),
        ("4-7", 4, 7),
        ("8-15", 8, 15),
        ("16-31", 16, 31),
        ("32-64", 32, 64),
    ]
    size_counts = [
        (label, sum(n for size, n in sizes.items() if low <= size <= high))
        for label, low, high in groups
    ]
    reason_counts = [(r, reasons.get(r, 0)) for r in ("full", "timeout", "idle", "shutdown")]
    return (
        "<div style='display:flex'>"
        + bars("batch sizes (last window)", size_counts)
        + bars("why batches were sent", reason_counts)
        + "</div>"
    )


def slo_html(points: list[SloPoint], p99_target_s: float) -> str:
    best = best_point(points, p99_target_s)
    rows = "".join(
        f"<tr style='{'font-weight:bold' if p == best else ''}'><td>{p.max_batch_size}</td>"
        f"<td>{p.batch_wait_timeout_s * 1000:g} ms</td><td>{p.throughput:.1f}</td>"
        f"<td>{_ms(p.p99_s)}</td></tr>"
        for p in points
    )
    verdict = (
        f"best within p99 {_ms(p99_target_s)}: batch {best.max_batch_size}, "
        f"flush {best.batch_wait_timeout_s * 1000:g} ms"
        if best
        else "no setting met it"
    )
    return (
        f"<p><b>SLO finder</b>: {verdict}</p><table style='font-family:monospace'>"
        f"<tr><th>batch</th><th>flush</th><th>req/s</th><th>p99</th></tr>{rows}</table>"
    )
