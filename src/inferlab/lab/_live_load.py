"""Live load for the dashboard: Poisson arrivals on a thread of their own, changeable while running.

The load must not share the kernel's event loop: widget callbacks and view refreshes run there,
and a busy load generator would make the sliders feel stuck. Its own thread and loop keep both
responsive; the rate and the output length are plain attributes the sliders set.

Arrivals follow a schedule (each one a random gap after the one before it was *due*, not after
it was sent), so a load generator that falls behind catches up rather than quietly offering
less, and how late it sent each request is recorded: on a busy laptop, 300 requests a second
asked may be 50 sent, and the dashboard says so.
"""

from __future__ import annotations

import asyncio
import functools
import random
import ssl
import threading
import time

import httpx

from ._live_stats import LiveWindow

MAX_IN_FLIGHT = 2000  # the load's own bound: past it, arrivals count as dropped
MAX_LAG_S = 1.0  # further behind its schedule than this, the load gives up catching up


@functools.cache
def _tls_context() -> ssl.SSLContext:
    return ssl.create_default_context()


class LoadThread:
    """Open-loop Poisson arrivals on their own thread and event loop; rate and length live."""

    def __init__(self, url: str, model: str, window: LiveWindow, rate: float, tokens: int):
        self.url, self.model, self.window = url, model, window
        self._rate, self.output_tokens = rate, tokens
        self._rate_changed = False
        self._loop = asyncio.new_event_loop()
        # subtle: created here, not in the thread, so stop() works even before the thread runs;
        # call_soon_threadsafe queues the set() until the loop starts.
        self._stopping = asyncio.Event()
        self._thread = threading.Thread(target=self._run, name="inferlab load", daemon=True)
        self.ready = threading.Event()  # set once requests start to flow

    @property
    def rate(self) -> float:
        return self._rate

    @rate.setter
    def rate(self, value: float) -> None:
        self._rate = value
        self._rate_changed = True  # the schedule starts afresh: no catching up at a new rate

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
        tls = _tls_context()  # one, not one per pool: loading certificates takes a while
        pools = [
            httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=64), verify=tls)
            for _ in range(8)
        ]  # small pools: httpx's cost per request grows with a pool
        self.ready.set()
        in_flight: set[asyncio.Task[None]] = set()
        rng, index = random.Random(0), 0
        loop = asyncio.get_running_loop()
        due = loop.time()
        try:
            while not self._stopping.is_set():
                behind_s = loop.time() - due
                if self._rate_changed or behind_s > MAX_LAG_S:
                    # a new rate, or hopelessly behind: start the schedule afresh from now, and
                    # count what was skipped, so the dashboard can say it was not all sent
                    if not self._rate_changed:
                        self.window.skipped(round(behind_s * self._rate))
                    self._rate_changed, due = False, loop.time()
                due += rng.expovariate(self._rate)
                wait_s = due - loop.time()
                if wait_s > 0:
                    try:  # the arrival schedule, and an early wake-up when asked to stop
                        await asyncio.wait_for(self._stopping.wait(), wait_s)
                    except asyncio.TimeoutError:
                        pass
                else:
                    await asyncio.sleep(0)  # behind schedule: let the answers in, then catch up
                if len(in_flight) >= MAX_IN_FLIGHT:
                    self.window.add(0.0, ok=False)
                    continue
                key = self.window.sent(lag_s=max(0.0, loop.time() - due))
                task = asyncio.ensure_future(self._one(pools[index % len(pools)], index, key))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
                index += 1
        finally:
            for task in list(in_flight):
                task.cancel()
            await asyncio.gather(*in_flight, return_exceptions=True)
            for pool in pools:
                await pool.aclose()

    async def _one(self, http: httpx.AsyncClient, index: int, key: int) -> None:
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
        except asyncio.CancelledError:
            self.window.forget(key)  # stopped: this caller hung up and will never be answered
            raise
        self.window.add(time.perf_counter() - started, ok, key)
