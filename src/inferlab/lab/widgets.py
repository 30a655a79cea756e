"""BatchingDashboard: move a slider, watch throughput and latency answer, live.

    dashboard = BatchingDashboard()      # a batching proxy in front of the model server
    dashboard                            # shows the controls and live views
    dashboard.start()                    # load starts flowing; move the sliders

Load arrives on its own thread (Poisson, at the arrival-rate slider's rate) and goes through a
real batching proxy to the model server; every slider change reconfigures the running proxy at
once. The views refresh twice a second from a sliding window, each number with a sparkline of
its last ten seconds. Creating a new dashboard closes the old one, so re-running the cell
leaves no thread, task or server behind.

Every figure, the flush interval and the arrival rate are in the model's ("H100") time: the
dashboard converts with the server's own clock (`ModelClock`), wherever the server runs.

Two regimes of the flush interval, both a switch away. With "dispatch when idle" on and one
batch in flight at most (the proxy's defaults), a batch goes the moment the last one returns,
and the flush interval never delays anything: that slider is inert, and the dashboard says so.
Turn idle dispatch off, or allow more batches in flight, and the interval decides how long a
batch waits to fill: then it moves batch sizes and latency.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from typing import Any, ClassVar

import httpx
import ipywidgets as widgets

from ..load.clock import ModelClock
from ._dashboard_views import (
    SloPoint,
    bars_html,
    best_point,
    flush_regime,
    mean_batch_size,
    numbers_html,
    slo_html,
)
from ._live_load import LoadThread
from ._live_stats import CounterWindow, History, LiveSnapshot, LiveWindow
from .runtime import base_url as default_base_url
from .runtime import embedded_model
from .servers import start_proxy

__all__ = ["BatchingDashboard", "SloPoint", "best_point"]


def _control(kind: Any, value: Any, description: str, **options: Any) -> Any:
    """One control in the dashboard's column; sliders act when let go, not while dragged."""
    if kind in (widgets.IntSlider, widgets.FloatSlider, widgets.FloatLogSlider):
        options.setdefault("min", 1)
        options["continuous_update"] = False
    return kind(
        value=value,
        description=description,
        style={"description_width": "150px"},
        layout=widgets.Layout(width="420px"),
        **options,
    )


def _sizes_of(stats: dict[str, Any]) -> Counter[int]:
    return Counter({int(size): count for size, count in stats["batch_sizes"].items()})


class BatchingDashboard:
    """Controls, live views and an SLO finder over a running proxy and model server."""

    _live: ClassVar[list[BatchingDashboard]] = []

    def __init__(
        self,
        base_url: str | None = None,
        *,
        window_s: float = 5.0,
        refresh_s: float = 0.5,
        arrival_rate: float = 20.0,
        output_tokens: int = 32,
    ):
        for old in list(BatchingDashboard._live):  # a re-run cell: stop what the last one left
            old.close()
        self.upstream = base_url or default_base_url()
        self.clock = ModelClock.of_server(self.upstream)  # wall <-> H100 time, in one place
        self.model = embedded_model() if base_url is None else None
        self.refresh_s = refresh_s
        self.window = LiveWindow(window_s)
        self.history = History(length=max(2, round(10 / refresh_s)))  # the last ten seconds
        self._sizes, self._reasons = CounterWindow(window_s), CounterWindow(window_s)
        # The proxy runs in a process of its own, as the model server does: the kernel runs
        # only the load and these views, and reads the proxy's counters over its admin API.
        self.proxy = start_proxy(
            self.upstream,
            max_batch_size=8,
            batch_wait_timeout_s=self.clock.wall_s(0.01),
            max_queue_size=1000,
            request_timeout_s=30,
        )
        self.proxy_server = self.proxy  # where the load is sent
        self._stats: dict[str, Any] = self.proxy.stats()
        self._model_name = httpx.get(f"{self.upstream}/models", timeout=10).json()["data"][0]["id"]
        self._load: LoadThread | None = None
        self._refresher: asyncio.Task[None] | None = None
        self.last: LiveSnapshot | None = None
        self.mean_batch_size = 0.0  # over the window, as of the last refresh
        self.flush_reasons: dict[str, int] = {}  # likewise: why the window's batches were sent
        self.flush_regime = ""  # likewise: can the flush interval delay a batch right now?
        self._build_widgets(arrival_rate, output_tokens)
        BatchingDashboard._live.append(self)

    # ---------------------------------------------------------------------------------------
    # Controls: each change applies to the running system at once

    def _build_widgets(self, arrival_rate: float, output_tokens: int) -> None:
        self.batch_size = _control(widgets.IntSlider, 8, "max batch size", min=1, max=64)
        self.flush_interval = _control(
            widgets.FloatLogSlider,
            0.01,
            "flush interval (s)",
            base=10,
            min=-4,
            max=math.log10(2),
            readout_format=".4f",
        )
        self.idle_dispatch = _control(widgets.Checkbox, True, "dispatch when idle")
        self.concurrent_batches = _control(widgets.IntSlider, 1, "batches in flight", max=16)
        self.arrival_rate = _control(
            widgets.FloatSlider, arrival_rate, "arrivals (req/s)", min=1, max=300, step=1
        )
        self.output_tokens = _control(
            widgets.IntSlider, output_tokens, "output tokens", min=4, max=256
        )
        self.policy = _control(
            widgets.Dropdown,
            self.model.configure()["batching"] if self.model else "continuous",
            "server batching",
            options=["none", "static", "continuous"],
            disabled=self.model is None,
        )
        self.run_button = widgets.ToggleButton(False, description="start", icon="play")
        self.numbers = widgets.HTML(layout=widgets.Layout(height="440px"))  # 12 rows, no jumps
        self.bars = widgets.HTML(layout=widgets.Layout(height="150px"))
        self.slo = widgets.HTML()
        self.batch_size.observe(lambda c: self.proxy.configure(max_batch_size=c["new"]), "value")
        self.flush_interval.observe(
            lambda c: self.proxy.configure(batch_wait_timeout_s=self.clock.wall_s(c["new"])),
            "value",
        )
        self.idle_dispatch.observe(
            lambda c: self.proxy.configure(dispatch_when_idle=c["new"]), "value"
        )
        self.concurrent_batches.observe(
            lambda c: self.proxy.configure(max_concurrent_batches=c["new"]), "value"
        )
        self.arrival_rate.observe(
            lambda c: self._set_load(rate=self.clock.wall_rate(c["new"])), "value"
        )
        self.output_tokens.observe(lambda c: self._set_load(output_tokens=c["new"]), "value")
        self.policy.observe(self._on_policy, "value")
        self.run_button.observe(lambda c: self.start() if c["new"] else self.stop(), "value")
        controls = widgets.VBox(
            [
                self.batch_size,
                self.flush_interval,
                self.idle_dispatch,
                self.concurrent_batches,
                self.arrival_rate,
                self.output_tokens,
                self.policy,
                self.run_button,
            ],
            # subtle: a flex row shrinks its children to fit a narrow output area, and the
            # sliders, whose width is fixed, were then cut off on the left (descriptions gone).
            # Never shrink the controls; let the numbers wrap below them instead.
            layout=widgets.Layout(flex="0 0 auto", width="440px"),
        )
        row = widgets.HBox([controls, self.numbers], layout=widgets.Layout(flex_flow="row wrap"))
        self.widget = widgets.VBox([row, self.bars, self.slo])
        self.widget.add_class("inferlab-dashboard")
        self.refresh()

    def _set_load(self, **changes: Any) -> None:
        if self._load is not None:
            for name, value in changes.items():
                setattr(self._load, name, value)

    def _on_policy(self, change: dict[str, Any]) -> None:
        if self.model is not None:
            self.model.configure(batching=change["new"])

    def set(self, **values: Any) -> None:
        """Set controls from code, as a person would: `set(max_batch_size=1)`,
        `set(dispatch_when_idle=False, max_concurrent_batches=4)`; an unknown name raises."""
        names = {
            "max_batch_size": self.batch_size,
            "flush_interval_s": self.flush_interval,
            "dispatch_when_idle": self.idle_dispatch,
            "max_concurrent_batches": self.concurrent_batches,
            "arrival_rate": self.arrival_rate,
            "output_tokens": self.output_tokens,
            "policy": self.policy,
        }
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise TypeError(f"no control named {unknown[0]!r}; there are {sorted(names)}")
        for name, value in values.items():
            names[name].value = value

    # ---------------------------------------------------------------------------------------
    # Running

    def start(self) -> None:
        if self._load is None:
            self.window.reset()
            self.history.clear()
            self._load = LoadThread(
                self.proxy_server.base_url,
                self._model_name,
                self.window,
                self.clock.wall_rate(self.arrival_rate.value),
                self.output_tokens.value,
            )
            self._load.start()
        try:
            loop = asyncio.get_running_loop()  # a notebook: refresh on the kernel's loop
        except RuntimeError:
            loop = None
        if loop is not None and self._refresher is None:
            self._refresher = loop.create_task(self._refresh_forever())
        self.run_button.value, self.run_button.description = True, "stop"

    @property
    def queue_depth(self) -> int:
        """Requests waiting in the proxy, as of the last refresh."""
        return int(self._stats["pending"])

    def restart_load(self) -> None:
        """Begin again from an empty queue: the old load's callers hang up, and the proxy drops
        what they left queued, so one setting's backlog does not spill into the next."""
        if self._load is not None:
            self._load.stop()
            self._load = None
        stats = self.proxy.stats()  # count batches from here on
        self._sizes.update(_sizes_of(stats), restart=True)
        self._reasons.update(Counter(stats["flush_reasons"]), restart=True)
        self.start()

    def stop(self) -> None:
        if self._load is not None:
            self._load.stop()
            self._load = None
        if self._refresher is not None:
            self._refresher.cancel()
            self._refresher = None
        self.run_button.value, self.run_button.description = False, "start"
        self.refresh()

    def close(self) -> None:
        """Stop the load, the refresh and the proxy; the dashboard is done."""
        self.stop()
        self.proxy.stop()  # it answers what is queued, with errors, before it goes
        if self in BatchingDashboard._live:
            BatchingDashboard._live.remove(self)

    async def _refresh_forever(self) -> None:
        while True:
            self.refresh()
            await asyncio.sleep(self.refresh_s)  # the refresh rate of the view, not a wait

    # ---------------------------------------------------------------------------------------
    # Views

    def refresh(self) -> LiveSnapshot:
        snapshot = self.window.snapshot().in_model_time(self.clock)
        stats = self._stats = self.proxy.stats()
        sizes = self._sizes.update(_sizes_of(stats))
        reasons = self._reasons.update(Counter(stats["flush_reasons"]))
        settings = self.proxy.configure()  # no change: the settings as they are, wall time
        settings["batch_wait_timeout_s"] = self.clock.model_s(settings["batch_wait_timeout_s"])
        self.mean_batch_size = mean_batch_size(sizes)
        if self._load is not None:  # a stopped dashboard's numbers do not change: no history
            self.history.add(
                sent=snapshot.sent_rate,
                lag=snapshot.lag_p99_s,
                throughput=snapshot.throughput,
                p50=snapshot.p50_s,
                p99=snapshot.p99_s,
                batch=self.mean_batch_size,
                queue=stats["pending"],
                in_flight=stats["in_flight"],
                waiting=snapshot.waiting,
            )
        self.numbers.value = numbers_html(
            snapshot, stats, sizes, settings, self.arrival_rate.value, self.history
        )
        self.flush_regime = flush_regime(settings)
        self.flush_reasons = dict(reasons)
        self.bars.value = bars_html(sizes, reasons)
        self.last = snapshot
        return snapshot

    async def find_slo(
        self,
        p99_target_s: float,
        *,
        batch_sizes: tuple[int, ...] = (1, 4, 16, 64),
        flush_intervals_s: tuple[float, ...] = (0.002, 0.02, 0.2),
        seconds_each: float = 2.0,
        warmup_s: float = 0.5,
    ) -> list[SloPoint]:
        """Try each setting under the current load: `warmup_s` to settle (not measured),
        then `seconds_each` measured (seconds of your time, not the model's). A setting meets
        the target only if its p99 (the requests still queued counted at their age) is within
        it, on at least 20 requests, at the arrival rate really offered. Shows the table and
        the highest throughput that meets."""
        before = (self.batch_size.value, self.flush_interval.value)
        started_here = self._load is None
        self.start()
        points = []
        try:
            for batch in batch_sizes:
                for interval in flush_intervals_s:
                    self.set(max_batch_size=batch, flush_interval_s=interval)
                    self.restart_load()
                    if self._load is not None:  # its thread may take a moment to start
                        await asyncio.to_thread(self._load.ready.wait, 10)
                    await asyncio.sleep(warmup_s)  # let the queue settle under this setting
                    self.window.reset(keep_waiting=True)  # measure from here, queue included
                    await asyncio.sleep(seconds_each)  # measure this setting for a while
                    snapshot = self.window.snapshot().in_model_time(self.clock)
                    offered = self.arrival_rate.value
                    points.append(
                        SloPoint.measured(batch, interval, snapshot, offered, p99_target_s)
                    )
        finally:
            self.set(max_batch_size=before[0], flush_interval_s=before[1])
            if started_here:
                self.stop()
        self.slo.value = slo_html(points, p99_target_s)
        return points

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)  # type: ignore[no-untyped-call]
