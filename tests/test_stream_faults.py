"""Faults that lesson 03 and 08 inject (network jitter, a stream broken after the 200), and the
lesson helpers that measure streams (lab/streaming.py) and job results (lab/collecting.py)."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse

from inferlab import AsyncClient, ServerThread, create_app
from inferlab.errors import APIStatusError
from inferlab.jobs import SQLiteJobStore, create_jobs_app
from inferlab.lab import collecting, streaming
from inferlab.serve import Faults

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("jitter_s", -0.1),
        ("jitter_s", math.nan),
        ("jitter_s", math.inf),
        ("break_rate", 1.5),
        ("break_after_chunks", -1),
        ("break_after_chunks", 2.5),
        ("break_after_chunks", True),
    ],
)
def test_fault_settings_out_of_range_are_refused(setting, value):
    with pytest.raises(ValueError, match=setting):
        Faults().update(**{setting: value})


def test_jitter_is_exponential_with_the_mean_asked_for():
    """2,000 seeded draws of mean 0.02 s: their mean is within 10% of it, and the p99 is
    near 4.6 times the mean, as an exponential's is (-ln 0.01 = 4.6)."""
    faults = Faults(jitter_s=0.02, seed=7)
    draws = sorted(faults.jitter_draw_s() for _ in range(2000))
    assert statistics.mean(draws) == pytest.approx(0.02, rel=0.1)
    assert draws[int(0.99 * len(draws))] == pytest.approx(4.6 * 0.02, rel=0.25)
    assert Faults().jitter_draw_s() == 0.0


async def test_a_broken_stream_keeps_its_200_and_carries_the_error_in_stream():
    faults = Faults(break_rate=1.0, break_after_chunks=5, seed=0)
    with ServerThread(create_app(time_scale=0.01, faults=faults)) as server:
        body = {"prompt": "x", "max_tokens": 40, "ignore_eos": True, "stream": True}
        async with httpx.AsyncClient() as http:
            async with http.stream("POST", f"{server.base_url}/completions", json=body) as reply:
                lines = [line async for line in reply.aiter_lines() if line]
            plain = await http.post(
                f"{server.base_url}/completions", json={"prompt": "x", "max_tokens": 3}
            )
        async with AsyncClient(server.base_url) as client:
            with pytest.raises(APIStatusError, match="mid-answer"):
                await client.complete("x", max_tokens=40, ignore_eos=True, stream=True)
        model = server.app.state.service.model
    assert reply.status_code == 200
    assert len(lines) == 7 and '"error"' in lines[5] and lines[6] == "data: [DONE]"
    assert plain.status_code == 200 and plain.json()["usage"]["completion_tokens"] == 3
    assert model.num_running == 0  # the app stopped at the cut: no tokens for nobody


async def test_sse_and_websocket_runs_count_bytes_and_connections(live_server):
    prompts = [f"p{i}" for i in range(4)]
    before = await streaming.generated_tokens(live_server.base_url)
    sse = await streaming.over_sse(live_server.base_url, prompts, max_tokens=5, ignore_eos=True)
    ws = await streaming.over_websocket(
        live_server.base_url, prompts, max_tokens=5, ignore_eos=True
    )
    after = await streaming.generated_tokens(live_server.base_url)
    assert [a.text for a in sse.answers] == [a.text for a in ws.answers]
    assert (sse.connections, ws.connections) == (4, 1)
    assert sse.bytes_received > 0 and ws.bytes_received > 0 and sse.tokens == ws.tokens == 20
    assert after - before >= 40 and sse.itl_p50_s >= 0 and ws.ttft_p50_s >= 0
    await streaming.engine_idle(live_server.base_url)


async def test_only_a_server_with_vllms_token_counter_counts_tokens(live_server):
    """03's hang-up cell reads it: the embedded server has it; llama-server without --metrics
    (501 Not Implemented) and vLLM with --disable-log-stats (no vllm: families) have not."""
    async with AsyncClient(live_server.base_url) as client:
        await client.complete("x", max_tokens=2)  # the counter appears on its first increment
    assert await streaming.counts_tokens(live_server.base_url)
    for status, text in (
        (501, "metrics disabled"),
        (200, "# TYPE process_cpu_seconds_total counter\n"),
    ):
        app = FastAPI()
        app.add_api_route("/metrics", lambda s=status, t=text: PlainTextResponse(t, s))
        with ServerThread(app) as other:
            assert not await streaming.counts_tokens(other.base_url)


@pytest.mark.skipif(not streaming.nginx_available(), reason="nginx is not installed")
async def test_nginx_passes_a_stream_through(live_server):
    with streaming.nginx(live_server.base_url, buffering=False) as proxied:
        async with AsyncClient(proxied) as client:
            answer = await client.complete("x", max_tokens=4, ignore_eos=True, stream=True)
    assert answer.completion_tokens == 4


async def test_every_way_of_collecting_learns_every_result(live_server, tmp_path: Path):
    store = SQLiteJobStore(tmp_path / "jobs.db")
    with ServerThread(create_jobs_app(live_server.base_url, store=store, workers=2)) as jobs:
        body = {"request": {"prompt": "x", "max_tokens": 2}}
        for way in ("poll", "long-poll", "events"):
            async with httpx.AsyncClient() as http:
                ids = [(await http.post(f"{jobs.base_url}/jobs", json=body)).json()["id"]]
            seen = await collecting.collect(jobs.base_url, way, ids, interval_s=0.001)
            assert len(seen.extra_latency_s) == 1 and seen.requests >= 1
        acks = await collecting.ack_latencies_s(jobs.base_url, [body] * 3)
    assert len(acks) == 3 and all(ack > 0 for ack in acks)
    with pytest.raises(ValueError, match="way must be"):
        await collecting.collect(jobs.base_url, "carrier pigeon", ["x"])
