"""How good is MicroBatcher? Figures and ratios side by side, on the workload batchers are
usually measured with: a handler that takes 20 ms + 1 ms per item, batches of up to 8, a 10 ms
wait. One accelerator runs one batch at a time, so the ceiling is 8 / 0.028 s = 285.7 req/s.

    python benchmarks/batching.py            # about three minutes on two cores
    python benchmarks/batching.py --quick    # shorter runs, about a minute

Compared: MicroBatcher; a fixed-tick batcher (wakes every 10 ms and takes what is queued, the
lab's starting design); no batching (each request its own handler call); and, over HTTP, the
batching proxy in front of the embedded server against calling that server directly.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import time
from collections.abc import Awaitable, Callable

import httpx
from _harness import cpu_s, free_port, spawn, stop, wait_until_up

from inferlab import MicroBatcher

BATCH, WAIT_S, FIXED_S, PER_ITEM_S = 8, 0.010, 0.020, 0.001
CEILING = BATCH / (FIXED_S + BATCH * PER_ITEM_S)

Submit = Callable[[int], Awaitable[int]]


class Accelerator:
    """The handler: 20 ms + 1 ms per item, one call at a time (a GPU runs one batch).

    It also records how long its calls really took: asyncio.sleep overshoots by up to a
    millisecond (epoll rounds timeouts), which no batcher can win back.
    """

    def __init__(self) -> None:
        self._busy = asyncio.Lock()
        self.durations: list[tuple[int, float]] = []  # (items, seconds) per call

    async def __call__(self, items: list[int]) -> list[int]:
        async with self._busy:
            started = time.perf_counter()
            await asyncio.sleep(FIXED_S + PER_ITEM_S * len(items))
            self.durations.append((len(items), time.perf_counter() - started))
        return items

    def mean_overshoot_s(self) -> float:
        """How much longer than 20 ms + 1 ms/item its calls took, on average."""
        return statistics.mean(s - FIXED_S - PER_ITEM_S * n for n, s in self.durations)

    def measured_ceiling(self) -> float:
        """Requests per second if full batches ran back to back at their measured duration."""
        full = [seconds for size, seconds in self.durations if size == BATCH]
        return BATCH / statistics.mean(full) if full else float("nan")


class FixedTickBatcher:
    """The naive design: a loop wakes every tick, even when idle, and takes what is queued."""

    def __init__(self, handler: Callable[[list[int]], Awaitable[list[int]]]):
        self.handler = handler
        self.accelerator = handler
        self.queue: list[tuple[int, asyncio.Future[int]]] = []
        self.task = asyncio.ensure_future(self._loop())

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(WAIT_S)
            batch, self.queue = self.queue[:BATCH], self.queue[BATCH:]
            if batch:
                results = await self.handler([item for item, _ in batch])
                for (_, future), result in zip(batch, results, strict=True):
                    future.set_result(result)

    async def submit(self, item: int) -> int:
        future = asyncio.get_running_loop().create_future()
        self.queue.append((item, future))
        return await future


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# ---------------------------------------------------------------------------------------------
# The three loads


async def closed_loop(submit: Submit, callers: int, per_caller: int) -> float:
    """Requests per second with `callers` each sending `per_caller` requests back to back."""

    async def caller() -> None:
        for i in range(per_caller):
            await submit(i)

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(callers)))
    return callers * per_caller / (time.perf_counter() - started)


async def single_caller(submit: Submit, requests: int) -> float:
    """Mean latency of one caller alone, in ms."""
    latencies = []
    for i in range(requests):
        started = time.perf_counter()
        await submit(i)
        latencies.append(time.perf_counter() - started)
    return statistics.mean(latencies) * 1000


async def open_loop(submit: Submit, rate: float, duration_s: float) -> tuple[float, float, int]:
    """Poisson arrivals at `rate`/s: (p50 ms, p99 ms, requests that failed)."""
    latencies: list[float] = []
    failures = 0

    async def one(i: int) -> None:
        nonlocal failures
        started = time.perf_counter()
        try:
            await submit(i)
            latencies.append(time.perf_counter() - started)
        except Exception:
            failures += 1

    tasks, started = [], time.perf_counter()
    for next_s in poisson_arrivals(rate, duration_s):
        await asyncio.sleep(max(0.0, started + next_s - time.perf_counter()))
        tasks.append(asyncio.ensure_future(one(len(tasks))))
    await asyncio.gather(*tasks)
    return percentile(latencies, 0.5) * 1000, percentile(latencies, 0.99) * 1000, failures


def poisson_arrivals(rate: float, duration_s: float) -> list[float]:
    """The arrival times open_loop() uses: the same seed, so the same requests."""
    rng, times, next_s = random.Random(0), [], 0.0
    while next_s < duration_s:
        times.append(next_s)
        next_s += rng.expovariate(rate)
    return times


def ideal_p99_ms(rate: float, duration_s: float, overshoot_s: float) -> float:
    """The open-loop p99 of an ideal batcher, simulated on the same arrivals: no CPU cost, and
    whenever the accelerator is free it takes everything queued (up to a batch). A call lasts
    20 ms + 1 ms/item + `overshoot_s`. This is the floor any batcher in this harness stands on."""
    arrivals, latencies, free_s, i = poisson_arrivals(rate, duration_s), [], 0.0, 0
    while i < len(arrivals):
        start_s = max(free_s, arrivals[i])
        end = i + 1
        while end < len(arrivals) and end - i < BATCH and arrivals[end] <= start_s:
            end += 1
        free_s = start_s + FIXED_S + PER_ITEM_S * (end - i) + overshoot_s
        latencies += [free_s - arrival for arrival in arrivals[i:end]]
        i = end
    return percentile(latencies, 0.99) * 1000


def idle_cpu_ms_per_s(make: Callable[[], object] | None, seconds: float = 3.0) -> float:
    """CPU ms per second while the batcher exists, has served, and nothing arrives.
    With `make` None: an event loop with no batcher at all, the baseline to subtract."""

    async def run() -> float:
        holder = make() if make is not None else None
        submit = getattr(holder, "submit", None)
        if submit is not None:
            await asyncio.gather(*(submit(i) for i in range(20)))  # used, then left idle
        await asyncio.sleep(0.05)
        cpu = time.process_time()
        await asyncio.sleep(seconds)
        used = time.process_time() - cpu
        task = getattr(holder, "task", None)
        if task is not None:
            task.cancel()
        return used / seconds * 1000

    return asyncio.run(run())


# ---------------------------------------------------------------------------------------------


def accelerator_of(holder: object) -> Accelerator:
    accelerator = getattr(holder, "accelerator", holder)
    assert isinstance(accelerator, Accelerator)
    return accelerator


def designs() -> dict[str, Callable[[], tuple[Submit, object]]]:
    def micro(in_flight: int = 1) -> tuple[Submit, object]:
        accelerator = Accelerator()
        batcher = MicroBatcher(
            accelerator,
            max_batch_size=BATCH,
            batch_wait_timeout_s=WAIT_S,
            max_concurrent_batches=in_flight,
        )
        batcher.accelerator = accelerator  # type: ignore[attr-defined]
        return batcher.submit, batcher

    def fixed_tick() -> tuple[Submit, object]:
        batcher = FixedTickBatcher(Accelerator())
        return batcher.submit, batcher

    def unbatched() -> tuple[Submit, object]:
        accelerator = Accelerator()

        async def submit(item: int) -> int:
            return (await accelerator([item]))[0]

        return submit, accelerator

    return {
        "MicroBatcher": micro,
        "  2 in flight": lambda: micro(2),
        "fixed tick": fixed_tick,
        "no batching": unbatched,
    }


def in_process_table(quick: bool) -> None:
    callers, per_caller = (100, 5) if quick else (200, 10)
    duration_s = 4.0 if quick else 10.0
    print(
        f"Workload: 20 ms + 1 ms/item, batch {BATCH}, wait {WAIT_S * 1000:.0f} ms; "
        f"ceiling {CEILING:.1f} req/s\n"
    )
    baseline = idle_cpu_ms_per_s(None)
    header = (
        "design",
        "closed req/s",
        "of ceiling",
        "of measured",
        "single ms",
        "over 21ms",
        "p50 ms @150/s",
        "p99 ms",
        "failed",
        "idle CPU ms/s",
    )
    print("{:13} {:>12} {:>10} {:>11} {:>9} {:>9} {:>13} {:>7} {:>6} {:>13}".format(*header))
    micro_p99 = micro_overshoot_s = float("nan")
    for name, make in designs().items():

        async def measure(
            make=make, name=name
        ) -> tuple[float, float, float, tuple[float, float, int]]:
            submit, holder = make()
            throughput = await closed_loop(submit, callers, per_caller)
            ceiling = accelerator_of(holder).measured_ceiling()
            single = await single_caller(make()[0], 50)
            submit, holder = make()
            tail = await open_loop(submit, 150.0, duration_s)
            nonlocal micro_overshoot_s
            if name == "MicroBatcher":
                micro_overshoot_s = accelerator_of(holder).mean_overshoot_s()
            return throughput, ceiling, single, tail

        throughput, measured, single_ms, (p50, p99, failed) = asyncio.run(measure())
        if name == "MicroBatcher":
            micro_p99 = p99
        idle = idle_cpu_ms_per_s(lambda make=make: make()[1]) - baseline
        print(
            f"{name:13} {throughput:>12.1f} {throughput / CEILING:>10.3f} "
            f"{throughput / measured:>11.3f} {single_ms:>9.2f} {single_ms - 21:>+9.2f} "
            f"{p50:>13.1f} {p99:>7.1f} {failed:>6} {idle:>+13.3f}"
        )
    exact = ideal_p99_ms(150.0, duration_s, 0.0)
    real = ideal_p99_ms(150.0, duration_s, micro_overshoot_s)
    print(
        f"\nAn ideal batcher on the same arrivals (simulated: no CPU, takes all that is queued "
        f"when the accelerator frees): p99 {exact:.1f} ms with exact 20 + 1 ms/item calls, "
        f"{real:.1f} ms with the {micro_overshoot_s * 1000:.2f} ms a call the sleeps overshot "
        f"in MicroBatcher's run; MicroBatcher's p99 is {micro_p99 / real:.3f} of that."
    )
    print("'of measured': against 8 / (mean measured duration of a full batch).")
    print(f"'idle CPU': minus the {baseline:.3f} ms/s a bare event loop spends on its own.")


# ---------------------------------------------------------------------------------------------
# Over HTTP: proxy vs direct, at low load


def http_table(quick: bool) -> None:
    """The proxy's cost at H100 speed and against a server that answers at once.

    Read the CPU figures of the two together. At H100 speed each process sleeps some 37 ms
    between requests, and on a virtual machine a process woken after a sleep runs its next
    request slower (cold caches, a core brought out of its idle state): the server's own CPU a
    request grows with it, by about as much as the proxy's, though neither does more work. Most
    of what the proxy adds at H100 speed beyond the second line is that, not its code.
    """
    print(f"\nload average: {os.getloadavg()[0]:.1f} (2 cores: above 2, processes wait for one)")
    for time_scale in (1.0, 0.001):
        http_comparison(quick, time_scale)


def http_comparison(quick: bool, time_scale: float) -> None:
    """Direct and via the proxy in alternating blocks of 10, so that both see the same
    machine; three runs, the median of each."""
    server_port, proxy_port = free_port(), free_port()
    direct_url = f"http://127.0.0.1:{server_port}/v1"
    proxy_url = f"http://127.0.0.1:{proxy_port}/v1"
    server = spawn("serve", "--port", str(server_port), "--time-scale", str(time_scale))
    proxy = spawn("proxy", "--upstream", direct_url, "--port", str(proxy_port))
    try:
        wait_until_up(direct_url, server)
        wait_until_up(proxy_url, proxy)
        requests = 30 if quick else 100
        body = {"prompt": "Hello", "max_tokens": 4, "ignore_eos": True}
        runs: dict[str, list[float]] = {
            "direct": [],
            "via proxy": [],
            "proxy CPU": [],
            "server CPU": [],
        }
        with httpx.Client(timeout=30) as client:
            for url in (direct_url, proxy_url):  # warm both: connections, first batch
                for _ in range(10):
                    client.post(url + "/completions", json=body).raise_for_status()
            for _ in range(3):
                latencies: dict[str, list[float]] = {"direct": [], "via proxy": []}
                proxy_cpu_s = server_cpu_s = 0.0
                for _ in range(requests // 10):
                    for name, url in (("direct", direct_url), ("via proxy", proxy_url)):
                        cpu_before, server_before = cpu_s(proxy), cpu_s(server)
                        for _ in range(10):
                            started = time.perf_counter()
                            client.post(url + "/completions", json=body).raise_for_status()
                            latencies[name].append(time.perf_counter() - started)
                        if name == "via proxy":
                            proxy_cpu_s += cpu_s(proxy) - cpu_before
                        else:
                            server_cpu_s += cpu_s(server) - server_before
                for name, values in latencies.items():
                    runs[name].append(statistics.median(values) * 1000)
                runs["proxy CPU"].append(proxy_cpu_s / len(latencies["via proxy"]) * 1000)
                runs["server CPU"].append(server_cpu_s / len(latencies["direct"]) * 1000)
        direct, via = statistics.median(runs["direct"]), statistics.median(runs["via proxy"])
        adds = [v - d for d, v in zip(runs["direct"], runs["via proxy"], strict=True)]
        print(
            f"\nOver HTTP, one caller, 4 tokens, embedded server at time_scale {time_scale}, "
            f"median of 3 runs of {requests} each:"
        )
        print(
            f"  direct {direct:.2f} ms, via proxy {via:.2f} ms, proxy adds "
            f"{statistics.median(adds):+.2f} ms (runs: {', '.join(f'{a:+.2f}' for a in adds)}); "
            f"the proxy's own CPU {statistics.median(runs['proxy CPU']):.2f} ms a request, "
            f"the server's {statistics.median(runs['server CPU']):.2f} ms (direct requests)"
        )
    finally:
        stop(proxy, server)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    in_process_table(args.quick)
    http_table(args.quick)
