"""BatchingDashboard: move a slider, watch throughput and latency answer, live.

    dashboard = BatchingDashboard()      # a batching proxy in front of the model server
    dashboard                            # shows the controls and live views
    dashboard.start()                    # load starts flowing; move the sliders

Load arrives on its own thread (Poisson, at the arrival-rate slider's rate) and goes through a
real batching proxy to the model server; every slider change reconfigures the running proxy at
once. The views refresh twice a second from a sliding window. Creating a new dashboard closes
the old one, so re-running the cell leaves no thread, task or server behind.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from typing import Any, ClassVar

import httpx
import ipywidgets as widgets

from ..proxy.app import create_proxy_app
from ..serve.hosting import ServerThread
from ._dashboard_views import (
    SloPoint,
    bars_html,
    best_point,
    mean_batch_size,
    numbers_html,
    slo_html,
)
from ._live_load import LoadThread
from ._live_stats import CounterWindow, LiveSnapshot, LiveWindow
from .runtime import base_url as default_base_url
from .runtime import embedded_model

__all__ = ["BatchingDashboard", "SloPoint", "best_point"]


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
        self.model = embedded_model() if base_url is None else None
        self.refresh_s = refresh_s
        self.window = LiveWindow(window_s)
        self._sizes, self._reasons = CounterWindow(window_s), CounterWindow(window_s)
        app = create_proxy_app(
            self.upstream,
            max_batch_size=8,
            batch_wait_timeout_s=0.01,
            max_queue_size=1000,
            request_timeout_s=30,
        )
        self.proxy_server = ServerThread(app).start()
        self.proxy = app.state.proxy
        self._model_name = httpx.get(f"{self.upstream}/models", timeout=10).json()["data"][0]["id"]
        self._load: LoadThread | None = None
        self._refresher: asyncio.Task[None] | None = None
        self.last: LiveSnapshot | None = None
        self.mean_batch_size = 0.0  # over the window, as of the last refresh
        self.flush_reasons: dict[str, int] = {}  # likewise: why the window's batches were sent
        self._build_widgets(arrival_rate, output_tokens)
        BatchingDashboard._live.append(self)

    # ---------------------------------------------------------------------------------------
    # Controls: each change applies to the running system at once

    def _build_widgets(self, arrival_rate: float, output_tokens: int) -> None:
        style = {"description_width": "150px"}
        wide = widgets.Layout(width="420px")
        self.batch_size = widgets.IntSlider(
            8,
            min=1,
            max=64,
            description="max batch size",
            style=style,
            layout=wide,
            continuous_update=False,
        )
        self.flush_interval = widgets.FloatLogSlider(
            0.01,
            base=10,
            min=-4,
            max=math.log10(2),
            description="flush interval (s)",
            readout_format=".4f",
            style=style,
            layout=wide,
            continuous_update=False,
        )
        self.arrival_rate = widgets.FloatSlider(
            arrival_rate,
            min=1,
            max=300,
            step=1,
            description="arrivals (req/s)",
            style=style,
            layout=wide,
            continuous_update=False,
        )
        self.output_tokens = widgets.IntSlider(
            output_tokens,
            min=4,
            max=256,
            description="output tokens",
            style=style,
            layout=wide,
            continuous_update=False,
        )
        policy = self.model.configure()["batching"] if self.model else "continuous"
        self.policy = widgets.Dropdown(
            options=["none", "static", "continuous"],
            value=policy,
            description="server batching",
            style=style,
            disabled=self.model is None,
            layout=wide,
        )
        self.run_button = widgets.ToggleButton(False, description="start", icon="play")
        self.numbers = widgets.HTML(layout=widgets.Layout(height="300px"))  # 9 rows, no jumps
        self.bars = widgets.HTML(layout=widgets.Layout(height="150px"))
        self.slo = widgets.HTML()
        self.batch_size.observe(lambda c: self.proxy.configure(max_batch_size=c["new"]), "value")
        self.flush_interval.observe(
            lambda c: self.proxy.configure(batch_wait_timeout_s=c["new"]), "value"
        )
        self.arrival_rate.observe(lambda c: self._set_load(rate=c["new"]), "value")
        self.output_tokens.observe(lambda c: self._set_load(output_tokens=c["new"]), "value")
        self.policy.observe(self._on_policy, "value")
        self.run_button.observe(lambda c: self.start() if c["new"] else self.stop(), "value")
        controls = widgets.VBox(
            [
                self.batch_size,
                self.flush_interval,
                self.arrival_rate,
                self.output_tokens,
                self.policy,
                self.run_button,
            ]
        )
        self.widget = widgets.VBox([widgets.HBox([controls, self.numbers]), self.bars, self.slo])
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
        """Set controls from code, as a person would: `set(max_batch_size=1)`."""
        names = {
            "max_batch_size": self.batch_size,
            "flush_interval_s": self.flush_interval,
            "arrival_rate": self.arrival_rate,
            "output_tokens": self.output_tokens,
            "policy": self.policy,
        }
        for name, value in values.items():
            names[name].value = value

    # ---------------------------------------------------------------------------------------
    # Running

    def start(self) -> None:
        if self._load is None:
            self.window.reset()
            self._load = LoadThread(
                self.proxy_server.base_url,
                self._model_name,
                self.window,
                self.arrival_rate.value,
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

    def restart_load(self) -> None:
        """Begin again from an empty queue: the old load's callers hang up, and the proxy drops
        what they left queued, so one setting's backlog does not spill into the next."""
        if self._load is not None:
            self._load.stop()
            self._load = None
        stats = self.proxy.completions.stats  # count batches from here on
        self._sizes.update(Counter(stats.batch_sizes), restart=True)
        self._reasons.update(Counter(stats.flush_reasons), restart=True)
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
        self.proxy.close_from_thread()  # answer what is queued before the server goes
        self.proxy_server.stop()
        if self in BatchingDashboard._live:
            BatchingDashboard._live.remove(self)

    async def _refresh_forever(self) -> None:
        while True:
            self.refresh()
            await asyncio.sleep(self.refresh_s)  # the refresh rate of the view, not a wait

    # ---------------------------------------------------------------------------------------
    # Views

    def refresh(self) -> LiveSnapshot:
        snapshot = self.window.snapshot()
        stats = self.proxy.completions.stats
        sizes = self._sizes.update(Counter(stats.batch_sizes))
        reasons = self._reasons.update(Counter(stats.flush_reasons))
        settings = self.proxy.completions.settings
        described = (
            f"batch {settings.max_batch_size}, flush {settings.batch_wait_timeout_s * 1000:g} ms"
        )
        self.numbers.value = numbers_html(
            snapshot,
            self.proxy.completions.pending,
            self.proxy.completions.in_flight,
            sizes,
            described,
        )
        self.mean_batch_size = mean_batch_size(sizes)
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
    ) -> list[SloPoint]:
        """Try each setting for `seconds_each` under the current load; show the frontier and
        the highest throughput whose p99 meets the target."""
        before = (self.batch_size.value, self.flush_interval.value)
        started_here = self._load is None
        self.start()
        points = []
        try:
            for batch in batch_sizes:
                for interval in flush_intervals_s:
                    self.set(max_batch_size=batch, flush_interval_s=interval)
                    self.restart_load()
                    await asyncio.sleep(seconds_each)  # measure this setting for a while
                    snap = self.window.snapshot()
                    points.append(SloPoint(batch, interval, snap.throughput, snap.p99_s))
        finally:
            self.set(max_batch_size=before[0], flush_interval_s=before[1])
            if started_here:
                self.stop()
        self.slo.value = slo_html(points, p99_target_s)
        return points

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)
