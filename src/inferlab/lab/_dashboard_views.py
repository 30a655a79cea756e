"""The dashboard's views, as HTML: numbers with their recent history, bar charts, the SLO
finder's table, and a sentence on whether the flush interval can matter at all right now.

HTML rather than matplotlib because it redraws twice a second: replacing an HTML widget's value
does not flicker, and a few divs cost far less to render than a figure.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

from ..load.history import sparkline
from ..load.probes import verdict
from ._live_stats import History, LiveSnapshot


@dataclass(frozen=True)
class SloPoint:
    """One setting the SLO finder tried, measured after a warm-up, and its honest verdict."""

    max_batch_size: int
    batch_wait_timeout_s: float
    throughput: float
    p99_s: float  # the queue still waiting counted at its age
    samples: int = 0  # requests behind the p99
    offered_rate: float = math.nan
    sent_rate: float = math.nan  # what the load generator really sent
    meets: bool = False
    why: str = ""

    @classmethod
    def measured(
        cls, max_batch_size: int, interval_s: float, s: LiveSnapshot, offered: float, target: float
    ) -> SloPoint:
        meets, why = verdict(
            p99_s=s.p99_s,
            samples=s.samples,
            achieved_rate=offered * s.on_schedule,
            offered_rate=offered,
            p99_target_s=target,
        )
        return cls(
            max_batch_size,
            interval_s,
            s.throughput,
            s.p99_s,
            s.samples,
            offered,
            s.sent_rate,
            meets,
            why,
        )


def best_point(points: list[SloPoint], p99_target_s: float) -> SloPoint | None:
    """The highest throughput among settings that met the target: their p99 within it, at the
    rate really offered, on enough requests (`SloPoint.meets`)."""
    meeting = [p for p in points if p.meets and p.p99_s <= p99_target_s]
    return max(meeting, key=lambda p: p.throughput, default=None)


def flush_regime(settings: dict[str, Any]) -> str:
    """Whether the flush interval can delay a batch under these settings, in a sentence.

    flush_regime({"dispatch_when_idle": True, "max_concurrent_batches": 1, ...})
    -> "inert: ..." (a batch goes whenever the one in flight returns; nothing waits for it)
    """
    if settings["dispatch_when_idle"] and settings["max_concurrent_batches"] == 1:
        return "inert: each batch goes when the last returns"
    if settings["dispatch_when_idle"]:
        return "acts: a batch waits for it while one is in flight"
    return "acts: a batch waits for it unless full"


def mean_batch_size(sizes: Counter[Any]) -> float:
    batches = sum(sizes.values())
    return sum(size * n for size, n in sizes.items()) / batches if batches else 0.0


def _ms(seconds: float) -> str:
    return "-" if math.isnan(seconds) else f"{seconds * 1000:.0f} ms"


def numbers_html(
    s: LiveSnapshot,
    stats: dict[str, Any],
    sizes: Counter[Any],
    settings: dict[str, Any],
    offered_rate: float,
    history: History,
) -> str:
    """The live numbers, each with a sparkline of its last refreshes (oldest on the left)."""
    described = (
        f"batch {settings['max_batch_size']}, flush {settings['batch_wait_timeout_s'] * 1000:.3g} "
        f"ms, {'idle dispatch' if settings['dispatch_when_idle'] else 'no idle dispatch'}, "
        f"{settings['max_concurrent_batches']} in flight at most"
    )
    behind = "" if s.on_schedule >= 0.9 else f", {1 - s.on_schedule:.0%} behind"
    rows = [
        ("proxy settings", described, None),
        ("flush interval", flush_regime(settings), None),
        ("offered / sent", f"{offered_rate:g} / {s.sent_rate:.1f} req/s{behind}", "sent"),
        ("generator lag p99", _ms(s.lag_p99_s), "lag"),
        ("throughput", f"{s.throughput:.1f} req/s", "throughput"),
        ("p50 latency", _ms(s.p50_s), "p50"),
        ("p99 latency", f"{_ms(s.p99_s)} (n={s.samples})", "p99"),
        ("mean batch size", f"{mean_batch_size(sizes):.1f}", "batch"),
        ("queue depth", str(stats["pending"]), "queue"),
        ("batches in flight", str(stats["in_flight"]), "in_flight"),
        ("waiting (oldest)", f"{s.waiting} ({_ms(s.oldest_waiting_s)})", "waiting"),
        ("dropped (window / total)", f"{s.dropped} / {s.dropped_total}", None),
    ]
    cells = "".join(
        f"<tr><td>{name}</td><td class='inferlab-{name.split()[0]}' "
        f"style='text-align:right;padding-left:1em'><b>{value}</b></td>"
        f"<td style='padding-left:1em;color:#0072B2'>"
        f"{sparkline(history.of(figure)) if figure else ''}</td></tr>"
        for name, value, figure in rows
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
        f"<td>{p.batch_wait_timeout_s * 1000:g} ms</td><td>{p.sent_rate:.1f}</td>"
        f"<td>{p.throughput:.1f}</td><td>{_ms(p.p99_s)}</td><td>{p.samples}</td>"
        f"<td>{'meets' if p.meets else 'misses'}: {p.why}</td></tr>"
        for p in points
    )
    offered = f" at {points[0].offered_rate:g} req/s offered" if points else ""
    verdict_text = (
        f"best within p99 {_ms(p99_target_s)}{offered}: batch {best.max_batch_size}, "
        f"flush {best.batch_wait_timeout_s * 1000:g} ms"
        if best
        else "no setting met it"
    )
    return (
        f"<p><b>SLO finder</b>: {verdict_text}</p><table style='font-family:monospace'>"
        "<tr><th>batch</th><th>flush</th><th>sent req/s</th><th>done req/s</th><th>p99</th>"
        f"<th>n</th><th>verdict</th></tr>{rows}</table>"
    )
