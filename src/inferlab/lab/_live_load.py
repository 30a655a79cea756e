"""Live load for the dashboard: Poisson arrivals on a thread of their own, changeable while running.

The load must not share the kernel's event loop: widget callbacks and view refreshes run there,
and a busy load generator would make the sliders feel stuck. Its own thread and loop keep both
responsive; the rate and the output length are plain attributes the sliders set.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time

import httpx

from ._live_stats import LiveWindow

MAX_IN_FLIGHT = 2000  # the load's own bound: past it, arrivals count as dropped


class LoadThread:
    """Open-loop Poisson arrivals on their own thread and event loop; rate and length live."""

    def __init__(self, url: str, model: str, window: LiveWindow, rate: float, tokens: int):
        self.url, self.model, self.window = url, model, window
        self.rate, self.output_tokens = rate, tokens
        self._loop = asyncio.new_event_loop()
        # subtle: created here, not in the thread, so stop() works even before the thread runs;
        # call_soon_threadsafe queues the set() until the loop starts.
        self._stopping = asyncio.Event()
        self._thread = threading.Thread(target=self._run, name="inferlab load", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        try:
            self._loop.run_until_complete(self._main())
        finally:
            self._loop.close()

    def stop(self) -> None:
        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(10)

    async def _main(self) -> None:
        pools = [
            httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=64)) for _ in range(8)
        ]  # small pools: httpx's cost per request grows with a pool
        in_flight: set[asyncio.Task[None]] = set()
        rng, index = random.Random(0), 0
        try:
            while not self._stopping.is_set():
                try:  # the arrival schedule, and an early wake-up when asked to stop
                    await asyncio.wait_for(self._stopping.wait(), rng.expovariate(self.rate))
                except asyncio.TimeoutError:
                    pass
                if len(in_flight) >= MAX_IN_FLIGHT:
                    self.window.add(0.0, ok=False)
                    continue
                task = asyncio.ensure_future(self._one(pools[index % len(pools)], index))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
                index += 1
        finally:
            for task in list(in_flight):
                task.cancel()
            await asyncio.gather(*in_flight, return_exceptions=True)
            for pool in pools:
                await pool.aclose()

    async def _one(self, http: httpx.AsyncClient, index: int) -> None:
        body = {
            "model": self.model,
            "prompt": f"Live request {index}",
            "max_tokens": self.output_tokens,
            "ignore_eos": True,
        }
        started = time.perf_counter()
        try:
            ok = (await http.post(f"{self.url}/completions", json=body)).status_code == 200
        except httpx.HTTPError:
            ok = False
        self.window.add(time.perf_counter() - started, ok)
