"""Can the load tools load? AsyncClient and the load generator against httpx's own transport,
side by side, on a server so cheap that the client is what is measured.

    python benchmarks/load_tools.py            # about two minutes
    python benchmarks/load_tools.py --quick

The server is a few lines of asyncio in a process of its own: a fixed completion for a plain
request; for a stream, one chunk every 50 ms for 8 chunks. Three runs each, medians, with the
load average, since on a shared two-core machine the client shares its core with others.

1. open loop at 2,000 req/s: offered, sent and answered per second, client CPU per request;
2. 500 requests at once through a pool of 50 connections (more in flight than connections);
3. 1,000 concurrent streams: how long opening them took, and the whole span against the
   400 ms the server takes per stream.
Not here: aiohttp, which this environment does not install; httpx's default transport is the
"before" each row is measured against.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

import httpx
from _harness import free_port

from inferlab import AsyncClient
from inferlab.load import Workload, fixed, run_load

CHUNKS, CHUNK_GAP_S = 8, 0.05
_PLAIN = json.dumps(
    {
        "id": "x",
        "object": "text_completion",
        "model": "m",
        "choices": [{"index": 0, "text": " hi", "finish_reason": "length"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }
).encode()


# ---------------------------------------------------------------------------------------------
# The trivial server (run with --serve PORT)


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":")[1])
    return 0


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                (
                    int(h.split(b":")[1])
                    for h in head.split(b"\r\n")
                    if h.lower().startswith(b"content-length:")
                ),
                0,
            )
            body = await reader.readexactly(length)
            if head.startswith(b"GET /v1/models"):
                payload = b'{"object":"list","data":[{"id":"m","object":"model"}]}'
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(payload), payload)
                )
            elif b'"stream": true' in body or b'"stream":true' in body:
                await _stream(writer)
            else:
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(_PLAIN), _PLAIN)
                )
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def _stream(writer: asyncio.StreamWriter) -> None:
    writer.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    for _ in range(CHUNKS):
        await asyncio.sleep(CHUNK_GAP_S)
        event = b'data: {"choices":[{"index":0,"text":" hi"}]}\n\n'
        writer.write(b"%x\r\n%s\r\n" % (len(event), event))
    done = b"data: [DONE]\n\n"
    writer.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(done), done))


def serve(port: int) -> None:
    import uvloop

    async def main() -> None:
        server = await asyncio.start_server(_handle, "127.0.0.1", port, backlog=4096)
        async with server:
            await server.serve_forever()

    uvloop.run(main())


# ---------------------------------------------------------------------------------------------
# Clients under test: each is (name, make a `send(stream) -> awaitable`, close)

Send = Callable[[bool], Awaitable[object]]


def _httpx_default(url: str, connections: int) -> tuple[Send, Callable[[], Awaitable[None]]]:
    http = httpx.AsyncClient(timeout=600, limits=httpx.Limits(max_connections=connections))
    body = {"model": "m", "prompt": "p", "max_tokens": 1}

    async def send(stream: bool) -> object:
        if not stream:
            return (await http.post(url + "/completions", json=body)).json()
        async with http.stream("POST", url + "/completions", json={**body, "stream": True}) as r:
            return [line async for line in r.aiter_lines()]

    return send, http.aclose


def _async_client(url: str, connections: int) -> tuple[Send, Callable[[], Awaitable[None]]]:
    client = AsyncClient(url, model="m", max_connections=connections)

    async def send(stream: bool) -> object:
        return await client.complete("p", max_tokens=1, stream=stream)

    return send, client.aclose


CLIENTS = {"httpx default transport": _httpx_default, "AsyncClient": _async_client}


async def _open_loop(send: Send, rate: float, duration_s: float) -> dict[str, float]:
    """Send at `rate` per second on a fixed schedule; how many went, and how many came back."""
    count = int(rate * duration_s)
    cpu, started = time.process_time(), time.perf_counter()
    tasks = []
    for i in range(count):
        await asyncio.sleep(max(0.0, started + i / rate - time.perf_counter()))
        tasks.append(asyncio.ensure_future(send(False)))
    sent_s = time.perf_counter() - started
    results = await asyncio.gather(*tasks, return_exceptions=True)
    done_s = time.perf_counter() - started
    failed = sum(isinstance(r, BaseException) for r in results)
    return {
        "sent/s": count / sent_s,
        "answered/s": (count - failed) / done_s,
        "late s": sent_s - duration_s,
        "CPU ms/req": (time.process_time() - cpu) / count * 1000,
        "failed": failed,
    }


async def _burst(send: Send, count: int, stream: bool) -> dict[str, float]:
    cpu, started = time.process_time(), time.perf_counter()
    tasks = [asyncio.ensure_future(send(stream)) for _ in range(count)]
    results = await asyncio.gather(*tasks, return_exceptions=True)
    span_s = time.perf_counter() - started
    return {
        "span s": span_s,
        "answered/s": sum(not isinstance(r, BaseException) for r in results) / span_s,
        "CPU ms/req": (time.process_time() - cpu) / count * 1000,
        "failed": sum(isinstance(r, BaseException) for r in results),
    }


async def _loadgen(url: str, rate: float, duration_s: float) -> dict[str, float]:
    count = int(rate * duration_s)
    workload = Workload(num_requests=count, prompt_tokens=fixed(4), output_tokens=fixed(1))
    cpu = time.process_time()
    run = await run_load(url, workload, request_rate=rate, model="m")
    late = max(r.scheduled_s for r in run.records) - run.started_s - duration_s
    sent = max(r.sent_s for r in run.records) - run.started_s
    ok = sum(r.ok for r in run.records)
    return {
        "sent/s": count / sent,
        "answered/s": ok / (run.ended_s - run.started_s),
        "late s": max(late, sent - duration_s),
        "CPU ms/req": (time.process_time() - cpu) / count * 1000,
        "failed": count - ok,
    }


def _median_of(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def _row(name: str, figures: dict[str, float]) -> str:
    return f"  {name:26}" + "".join(f" {key} {value:8.2f} " for key, value in figures.items())


def _measure(make: Callable[[], Awaitable[dict[str, float]]], repeats: int) -> dict[str, float]:
    return _median_of([asyncio.run(make()) for _ in range(repeats)])


def main(quick: bool) -> None:
    port = free_port()
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(port)])
    url = f"http://127.0.0.1:{port}/v1"
    repeats, duration_s = (1, 1.0) if quick else (3, 2.0)
    try:
        for _ in range(100):  # up within a second or two; a plain TCP check
            try:
                httpx.get(url + "/models", timeout=1.0)
                break
            except httpx.HTTPError:
                time.sleep(0.05)
        print(f"load average at start: {os.getloadavg()[0]:.1f} (2 cores)\n")
        print(f"1. open loop, 2,000 req/s offered for {duration_s:g} s, median of {repeats}:")
        for name, make in CLIENTS.items():

            async def run_open(make=make) -> dict[str, float]:
                send, close = make(url, 1000)
                try:
                    return await _open_loop(send, 2000.0, duration_s)
                finally:
                    await close()

            print(_row(name, _measure(run_open, repeats)))
        print(
            _row(
                "run_load (load generator)",
                _measure(lambda: _loadgen(url, 2000.0, duration_s), repeats),
            )
        )
        print("\n2. 500 requests at once through 50 connections:")
        for name, make in CLIENTS.items():

            async def run_pool(make=make) -> dict[str, float]:
                send, close = make(url, 50)
                try:
                    return await _burst(send, 500, stream=False)
                finally:
                    await close()

            print(_row(name, _measure(run_pool, repeats)))
        ideal = CHUNKS * CHUNK_GAP_S
        print(
            f"\n3. 1,000 concurrent streams of {CHUNKS} chunks (the server alone: {ideal:.2f} s):"
        )
        for name, make in CLIENTS.items():

            async def run_streams(make=make) -> dict[str, float]:
                send, close = make(url, 1000)
                try:
                    return await _burst(send, 1000, stream=True)
                finally:
                    await close()

            print(_row(name, _measure(run_streams, repeats)))
        print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
    else:
        main(args.quick)
