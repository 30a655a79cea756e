"""Soak the batching proxy: 1,000 concurrent clients for 60 s while the upstream misbehaves.

    python benchmarks/proxy_soak.py                    # 1,000 clients, 60 s (loopback only)
    python benchmarks/proxy_soak.py --clients 200 --duration-s 15

The embedded server (its own process) goes through four phases, changed while it runs:
healthy; failing 20% of requests (500); stalling 10% for 3 s (past the proxy's 2 s deadline);
healthy again. Each client sends requests back to back, a fifth of them streamed. The claim
under test: every request ends with a result or a clear error (200, 429, 502 or 504; for a
stream that started, [DONE] or an error event), none is lost and none hangs. The loop is
bounded in time and stops by itself; every address is 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import random
import sys
import time

import httpx
from _harness import free_port, spawn, stop, wait_until_up

UPSTREAM_PORT, PROXY_PORT = free_port(), free_port()
CLEAR = {"200", "429", "502", "504", "stream-error"}  # stream-error: an error event, then [DONE]
CLIENTS_PER_POOL = 25  # httpx's pool does O(connections) work per request: keep pools small
HANG_S = 30.0  # a request with no answer after this long counts as hung (the deadline is 2 s)
PHASES = [  # (share of the run, fault settings)
    (0.25, {"fail_rate": 0.0, "stall_rate": 0.0}),
    (0.25, {"fail_rate": 0.2, "stall_rate": 0.0}),
    (0.25, {"fail_rate": 0.0, "stall_rate": 0.1, "stall_s": 3.0}),
    (0.25, {"fail_rate": 0.0, "stall_rate": 0.0}),
]


async def one_request(http: httpx.AsyncClient, url: str, rng: random.Random) -> str:
    """The outcome of one request: its status, 'stream-error', or 'hung' / 'broken'."""
    stream = rng.random() < 0.2
    body = {"prompt": f"soak {rng.random()}", "max_tokens": 8, "stream": stream}
    try:
        return await asyncio.wait_for(_attempt(http, url, body), HANG_S)
    except asyncio.TimeoutError:
        return "hung"
    except httpx.HTTPError as exc:
        return f"broken ({type(exc).__name__})"


async def _attempt(http: httpx.AsyncClient, url: str, body: dict) -> str:
    if not body["stream"]:
        return str((await http.post(url, json=body)).status_code)
    async with http.stream("POST", url, json=body) as response:
        if response.status_code != 200:
            await response.aread()
            return str(response.status_code)
        last, saw_error = "", False
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                last, saw_error = line, saw_error or line.startswith('data: {"error"')
        if last != "data: [DONE]":
            return "broken"  # a stream that ended without [DONE]
        return "stream-error" if saw_error else "200"


async def client(
    http: httpx.AsyncClient, url: str, seed: int, stop_at: float, outcomes: collections.Counter[str]
) -> None:
    rng = random.Random(seed)
    while time.monotonic() < stop_at:
        outcomes[await one_request(http, url, rng)] += 1


async def run_phases(upstream: str, duration_s: float) -> None:
    async with httpx.AsyncClient() as http:
        for share, faults in PHASES:
            (await http.put(f"{upstream}/admin/faults", json=faults)).raise_for_status()
            print(f"  phase: {faults}", flush=True)
            await asyncio.sleep(share * duration_s)  # the schedule of the run itself


async def soak(clients: int, duration_s: float) -> collections.Counter[str]:
    upstream = f"http://127.0.0.1:{UPSTREAM_PORT}"
    url = f"http://127.0.0.1:{PROXY_PORT}/v1/completions"
    outcomes: collections.Counter[str] = collections.Counter()
    limits = httpx.Limits(max_connections=CLIENTS_PER_POOL + 5)
    pools = [
        httpx.AsyncClient(limits=limits, timeout=HANG_S + 5)
        for _ in range(0, clients, CLIENTS_PER_POOL)
    ]
    stop_at = time.monotonic() + duration_s
    try:
        await asyncio.gather(
            run_phases(upstream, duration_s),
            *(
                client(pools[seed // CLIENTS_PER_POOL], url, seed, stop_at, outcomes)
                for seed in range(clients)
            ),
        )
    finally:
        for pool in pools:
            await pool.aclose()
    return outcomes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--duration-s", type=float, default=60.0)
    args = parser.parse_args()
    server = spawn("serve", "--port", str(UPSTREAM_PORT), "--max-num-seqs", "1024")
    proxy = spawn(
        "proxy",
        "--upstream",
        f"http://127.0.0.1:{UPSTREAM_PORT}/v1",
        "--port",
        str(PROXY_PORT),
        "--max-batch-size",
        "64",
        "--batch-wait-timeout-s",
        "0.01",
        "--max-concurrent-batches",
        "4",
        "--max-queue-size",
        "500",
        "--request-timeout-s",
        "2",
    )
    try:
        for port in (UPSTREAM_PORT, PROXY_PORT):
            wait_until_up(f"http://127.0.0.1:{port}")
        print(f"{args.clients} clients for {args.duration_s:.0f} s through the proxy:")
        started = time.monotonic()
        outcomes = asyncio.run(soak(args.clients, args.duration_s))
        elapsed = time.monotonic() - started
        metrics = httpx.get(f"http://127.0.0.1:{PROXY_PORT}/metrics").text
    finally:
        stop(proxy, server)
    total = sum(outcomes.values())
    unclear = {k: v for k, v in outcomes.items() if k not in CLEAR}
    print(f"\n{total} requests in {elapsed:.0f} s ({total / elapsed:.0f}/s):")
    for outcome, count in sorted(outcomes.items()):
        print(f"  {outcome:>14}: {count:7} ({count / total:.1%})")
    print("\nproxy's own counts:")
    for line in metrics.splitlines():
        if line.startswith(("inferlab_proxy:requests_total", "inferlab_proxy:batches_total")):
            print("  " + line)
    verdict = (
        "every request got a result or a clear error"
        if not unclear
        else f"NOT OK: {json.dumps(unclear)}"
    )
    print(f"\nverdict: {verdict}")
    return 0 if not unclear else 1


if __name__ == "__main__":
    sys.exit(main())
