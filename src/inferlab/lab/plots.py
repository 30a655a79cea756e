"""Figures for the course: latency CDFs, throughput against latency, request timelines.

Every function returns a matplotlib `Figure` and never shows it: in a notebook (with
`%matplotlib inline`) the figure shows when a cell returns it, and a script can `savefig` it.
Figures are made without pyplot, so nothing piles up in global state across re-runs. One style
throughout: milliseconds for latency, units on every axis, a light grid, a colour-blind-safe
palette (Okabe-Ito).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..engine.scheduler import Sequence as SimulatedSequence
from ..load.clock import REAL_TIME, ModelClock
from ..load.metrics import RequestResult
from ..wire.timing import Timing

if TYPE_CHECKING:  # only a type here: figures do not need the job API loaded
    from ..jobs.client import QueueSample

PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")


def _figure(width: float = 6.4, height: float = 3.6, columns: int = 1) -> tuple[Figure, list[Axes]]:
    figure = Figure(figsize=(width, height), layout="constrained")
    axes = figure.subplots(1, columns, squeeze=False)[0]
    for ax in axes:
        ax.grid(True, alpha=0.3)
        ax.spines[["top", "right"]].set_visible(False)
    return figure, list(axes)


def latency_cdf(
    latencies_s: Mapping[str, Sequence[float]], *, title: str = "Latency distribution"
) -> Figure:
    """One CDF line per label: {"static": [...], "continuous": [...]} -> a Figure.

    Read it across: the x where a line reaches 0.99 is that run's p99.
    """
    figure, (ax,) = _figure()
    for index, (label, values) in enumerate(latencies_s.items()):
        colour = PALETTE[index % len(PALETTE)]  # cycle: never drop a line past the eighth
        ordered = sorted(v * 1000 for v in values)
        fractions = [(i + 1) / len(ordered) for i in range(len(ordered))]
        ax.step(ordered, fractions, where="post", color=colour, label=label, linewidth=1.8)
    for q in (0.5, 0.99):
        ax.axhline(q, color="grey", linestyle=":", linewidth=1)
        ax.annotate(
            f"p{int(q * 100)}",
            (0, q),
            xycoords=("axes fraction", "data"),
            xytext=(2, 2),
            textcoords="offset points",
            color="grey",
            fontsize=8,
        )
    ax.set(xlabel="latency (ms)", ylabel="fraction of requests", ylim=(0, 1.02), title=title)
    ax.legend(frameon=False)
    return figure


def throughput_latency(
    curves: Mapping[str, Sequence[tuple[float, float, float]]],
    *,
    title: str = "Throughput against latency as load rises",
) -> Figure:
    """Per label, points (throughput req/s, p50 latency s, p99 latency s), in order of load.

    The knee of each curve is where the server saturates: more load buys no more throughput,
    only more waiting.
    """
    figure, (ax,) = _figure()
    for index, (label, points) in enumerate(curves.items()):
        colour = PALETTE[index % len(PALETTE)]
        throughput = [p[0] for p in points]
        ax.plot(throughput, [p[1] * 1000 for p in points], "o-", color=colour, label=f"{label} p50")
        ax.plot(
            throughput,
            [p[2] * 1000 for p in points],
            "s--",
            color=colour,
            alpha=0.7,
            label=f"{label} p99",
        )
    ax.set(xlabel="throughput (requests/s)", ylabel="latency (ms)", title=title)
    ax.set_ylim(bottom=0)  # from zero, so a small rise looks small
    ax.legend(frameon=False, fontsize=8)
    return figure


def batch_size_tradeoff(
    batch_sizes: Sequence[int],
    throughput: Sequence[float],
    latency_s: Sequence[float],
    *,
    throughput_label: str = "throughput (tokens/s)",
    latency_label: str = "latency (ms)",
    title: str = "Bigger batches: more throughput, more latency",
) -> Figure:
    """Throughput (left axis) and latency (right axis) against batch size, log-scaled. Both
    axes start at zero, so that a line's rise reads as the ratio it is."""
    figure, (ax,) = _figure()
    ax.plot(batch_sizes, throughput, "o-", color=PALETTE[0])
    ax.set(xlabel="batch size (sequences)", ylabel=throughput_label, title=title, xscale="log")
    ax.set_xticks(list(batch_sizes), [str(b) for b in batch_sizes])
    ax.yaxis.label.set_color(PALETTE[0])
    right: Axes = ax.twinx()
    right.plot(batch_sizes, [s * 1000 for s in latency_s], "s--", color=PALETTE[3])
    right.set_ylabel(latency_label, color=PALETTE[3])
    right.spines[["top"]].set_visible(False)
    ax.set_ylim(bottom=0)
    right.set_ylim(bottom=0)
    return figure


def latency_vs_load(
    utilisation: Sequence[float],
    measured_s: Mapping[str, Sequence[float]],
    *,
    predicted_s: Mapping[str, tuple[Sequence[float], Sequence[float]]] | None = None,
    title: str = "Latency as load approaches capacity",
) -> Figure:
    """Measured latencies (points, one series per label) against utilisation (0 to 1), with
    predicted curves drawn as lines: `predicted_s` maps a label to (utilisations, seconds)."""
    figure, (ax,) = _figure()
    for index, (label, values) in enumerate(measured_s.items()):
        colour = PALETTE[index % len(PALETTE)]
        ax.plot(utilisation, [v * 1000 for v in values], "o", color=colour, label=label)
    for index, (label, (xs, ys)) in enumerate((predicted_s or {}).items()):
        colour = PALETTE[(index + len(measured_s)) % len(PALETTE)]
        ax.plot(xs, [y * 1000 for y in ys], "-", color=colour, label=label)
    ax.set(xlabel="utilisation (arrival rate / capacity)", ylabel="latency (ms)", title=title)
    ax.set_xlim(0, 1)
    ax.set_ylim(bottom=0)
    ax.legend(frameon=False, loc="upper left")
    return figure


def roofline(
    batch_sizes: Sequence[int],
    measured_ms: Sequence[float],
    *,
    memory_ms: float,
    compute_ms_per_sequence: float,
    memory_ms_per_sequence: float = 0.0,
    title: str = "Decode step time against batch size",
) -> Figure:
    """Measured step times over the two floors a step cannot beat: reading memory (every weight
    once, `memory_ms`, plus each sequence's KV cache, `memory_ms_per_sequence`) and doing every
    sequence's arithmetic (`compute_ms_per_sequence` each). Where the floors cross, batching
    stops being free."""
    figure, (ax,) = _figure()
    sizes = list(batch_sizes)
    ax.plot(sizes, list(measured_ms), "o-", color=PALETTE[0], label="measured (H100)")
    ax.plot(sizes, [memory_ms] * len(sizes), ":", color=PALETTE[2], label="reading the weights")
    if memory_ms_per_sequence > 0:
        memory = [memory_ms + memory_ms_per_sequence * b for b in sizes]
        ax.plot(sizes, memory, "-.", color=PALETTE[1], label="weights and KV caches")
    compute = [compute_ms_per_sequence * b for b in sizes]
    ax.plot(sizes, compute, "--", color=PALETTE[3], label="arithmetic")
    ax.set(xlabel="batch size (sequences)", ylabel="step time (ms)", title=title)
    ax.set(xscale="log", yscale="log")
    ax.set_xticks(sizes, [str(b) for b in sizes])
    ax.legend(frameon=False)
    return figure


def request_timeline(
    requests: Sequence[SimulatedSequence | RequestResult],
    *,
    title: str = "Request timeline",
    max_requests: int = 60,
) -> Figure:
    """One bar per request: waiting (light) then being served (dark), coloured by the batch it
    rode in. Takes simulate() output (which knows batches) or load-run records (which do not).

    Look for head-of-line blocking: with static batching, short requests finish early but the
    next ones still wait for the longest request of the batch.
    """
    rows = [_timeline_row(r) for r in list(requests)[:max_requests]]
    start = min(row[0] for row in rows) if rows else 0.0
    figure, (ax,) = _figure(7.0, max(2.5, 0.16 * len(rows) + 1.2))
    batches = sorted({row[3] for row in rows if row[3] is not None})
    for y, (arrived, admitted, finished, batch) in enumerate(rows):
        colour = PALETTE[batches.index(batch) % len(PALETTE)] if batch is not None else PALETTE[0]
        ax.barh(
            y,
            (admitted - arrived) * 1000,
            left=(arrived - start) * 1000,
            color=colour,
            alpha=0.25,
            height=0.8,
        )
        ax.barh(
            y,
            (finished - admitted) * 1000,
            left=(admitted - start) * 1000,
            color=colour,
            height=0.8,
        )
    ax.invert_yaxis()
    ax.set(xlabel="time (ms)     light: waiting, dark: being served", ylabel="request", title=title)
    return figure


def _timeline_row(
    request: SimulatedSequence | RequestResult,
) -> tuple[float, float, float, int | None]:
    if isinstance(request, RequestResult):
        return request.scheduled_s, request.sent_s, request.done_s, None
    admitted = request.admitted_s if request.admitted_s is not None else request.arrival_s
    finished = request.finished_s if request.finished_s is not None else admitted
    return request.arrival_s, admitted, finished, request.batch_id


def ttft_vs_e2e(records: Sequence[RequestResult], *, title: str = "First token vs last") -> Figure:
    """Each request as a point: time to first token against end-to-end latency.

    Points far right but low are what streaming is for: a long answer that starts quickly.
    """
    figure, (ax,) = _figure(4.8, 4.0)
    good = [r for r in records if r.ok]
    ax.scatter(
        [r.e2e_latency_s * 1000 for r in good],
        [r.ttft_s * 1000 for r in good],
        s=14,
        color=PALETTE[0],
        alpha=0.7,
    )
    top = max([r.e2e_latency_s * 1000 for r in good], default=1.0)
    ax.plot([0, top], [0, top], color="grey", linestyle=":", linewidth=1, label="TTFT = e2e")
    ax.set(xlabel="end-to-end latency (ms)", ylabel="time to first token (ms)", title=title)
    ax.legend(frameon=False, fontsize=8)
    return figure


def inter_token_gaps(
    streams: Mapping[str, Timing], *, title: str = "Gaps between tokens"
) -> Figure:
    """For each labelled streamed request, the gap before each token after the first.

    A steady line is the decode step; a spike is a step that also prefilled newcomers.
    """
    figure, (ax,) = _figure()
    for index, (label, record) in enumerate(streams.items()):
        gaps = [gap * 1000 for gap in record.itl_s]
        ax.plot(
            range(2, len(gaps) + 2),
            gaps,
            color=PALETTE[index % len(PALETTE)],
            label=label,
            linewidth=1.5,
        )
    ax.set(xlabel="token number", ylabel="gap before this token (ms)", title=title, ylim=(0, None))
    ax.legend(frameon=False)
    return figure


def spans(
    rows: Sequence[tuple[str, float, float]], *, title: str = "One request, traced"
) -> Figure:
    """One bar per (label, start_s, end_s), in order, times in seconds from the first start:
    a trace as tracing tools draw it, each stage a span on its own line."""
    start = min((row[1] for row in rows), default=0.0)
    figure, (ax,) = _figure(7.0, max(2.0, 0.35 * len(rows) + 1.0))
    for y, (_label, begin_s, end_s) in enumerate(rows):
        ax.barh(
            y,
            (end_s - begin_s) * 1000,
            left=(begin_s - start) * 1000,
            color=PALETTE[y % len(PALETTE)],
            height=0.6,
        )
    ax.set_yticks(range(len(rows)), [row[0] for row in rows])
    ax.invert_yaxis()
    ax.set(xlabel="time since submitted (ms)", title=title)
    return figure


def token_arrivals(
    streams: Mapping[str, Timing],
    *,
    clock: ModelClock = REAL_TIME,
    title: str = "When tokens arrived",
) -> Figure:
    """For each labelled stream, how many text chunks had arrived by each moment (ms after
    sending, in the model time of `clock`). A staircase is a stream; one vertical jump is a
    buffered one."""
    figure, (ax,) = _figure()
    for index, (label, timing) in enumerate(streams.items()):
        times_ms = [clock.model_ms(t - timing.sent_s) for t in timing.token_times_s]
        ax.step(
            [0.0, *times_ms],
            range(len(times_ms) + 1),
            where="post",
            color=PALETTE[index % len(PALETTE)],
            label=label,
            linewidth=1.5,
        )
    ax.set(xlabel="time since sent (ms)", ylabel="chunks received", title=title, xlim=(0, None))
    ax.legend(frameon=False)
    return figure


def queue_depth(
    samples: Sequence[QueueSample],
    *,
    marks: Sequence[tuple[float, str]] = (),
    clock: ModelClock = REAL_TIME,
    title: str = "Queue depth over time",
) -> Figure:
    """Jobs waiting and running, and workers, over time (`watch_queue` samples); `marks` draws a
    labelled vertical line at each (time, label). Times (wall seconds) are drawn in the model
    time of `clock`."""
    figure, (ax,) = _figure(width=7.2)
    times = [clock.model_s(s.t_s) for s in samples]
    ax.fill_between(times, [s.queued for s in samples], step="post", alpha=0.25, color=PALETTE[0])
    ax.step(times, [s.queued for s in samples], where="post", color=PALETTE[0], label="queued")
    ax.step(times, [s.running for s in samples], where="post", color=PALETTE[2], label="running")
    ax.step(
        times,
        [s.workers for s in samples],
        where="post",
        color=PALETTE[3],
        linestyle="--",
        label="workers",
    )
    for index, (at_s, label) in enumerate(marks):
        ax.axvline(clock.model_s(at_s), color="grey", linestyle=":", linewidth=1)
        ax.annotate(
            label,
            (clock.model_s(at_s), 1 - 0.08 * (index % 3 + 1)),
            xycoords=("data", "axes fraction"),
            xytext=(3, 0),
            textcoords="offset points",
            color="dimgrey",
            fontsize=8,
        )
    ax.set(xlabel="time (s)", ylabel="jobs", title=title)
    ax.set_ylim(bottom=0)
    ax.legend(frameon=False, loc="center right")
    return figure


def token_timeline(
    sequences: Sequence[SimulatedSequence],
    *,
    title: str = "When each token came out",
    labels: Sequence[str] | None = None,
) -> Figure:
    """One row per simulate() sequence, a tick at each token it sampled (simulated time).

    Look for a gap across every row at once: a step that computed a long prefill, during which
    no running sequence got a token (prefill-decode interference).
    """
    figure, (ax,) = _figure(7.0, max(2.2, 0.3 * len(sequences) + 1.2))
    for row, seq in enumerate(sequences):
        times_ms = [t * 1000 for t in seq.token_times_s]
        colour = PALETTE[3] if seq.prompt_tokens > 1000 else PALETTE[0]
        ax.plot(times_ms, [row] * len(times_ms), "|", color=colour, markersize=9)
        ax.plot(seq.arrival_s * 1000, row, ">", color="grey", markersize=5)
    ax.set_yticks(range(len(sequences)), labels or [f"{s.prompt_tokens} in" for s in sequences])
    ax.invert_yaxis()
    ax.set(xlabel="time (ms)     ▸ arrival, | a token", title=title)
    return figure


def knob_sweep(
    values: Sequence[float],
    left: Mapping[str, Sequence[float]],
    right: Mapping[str, Sequence[float]],
    *,
    xlabel: str,
    left_label: str,
    right_label: str,
    title: str = "",
    log_x: bool = False,
) -> Figure:
    """Two y axes over one knob: e.g. TTFT (left) and ITL (right) as the token budget moves.

    Each mapping is {label: one y per value}; left lines are solid, right lines dashed.
    """
    figure, (ax,) = _figure(6.4, 3.6)
    twin = ax.twinx()
    for index, (label, ys) in enumerate(left.items()):
        ax.plot(values, ys, "o-", color=PALETTE[index], label=label, linewidth=1.8)
    for index, (label, ys) in enumerate(right.items(), start=len(left)):
        twin.plot(values, ys, "s--", color=PALETTE[index], label=label, linewidth=1.5)
    if log_x:
        ax.set_xscale("log", base=2)
        ax.set_xticks(list(values), [f"{v:g}" for v in values])
    ax.set(xlabel=xlabel, ylabel=left_label, title=title, ylim=(0, None))
    twin.set(ylabel=right_label, ylim=(0, None))
    twin.spines[["top"]].set_visible(False)
    lines = ax.get_legend_handles_labels()
    more = twin.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], frameon=False, fontsize=8, loc="upper center")
    return figure
