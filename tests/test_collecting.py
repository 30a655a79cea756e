"""lab/collecting.py's trace of one job: queue and worker spans, and the engine's own span."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from inferlab import ServerThread
from inferlab.jobs import SQLiteJobStore, create_jobs_app
from inferlab.lab import collecting

pytestmark = pytest.mark.anyio


def job(status: str, attempts: int, **fields: object) -> dict[str, object]:
    return {"status": status, "attempts": attempts, "created_at": 100.0, **fields}


def test_a_retried_job_traced_with_the_engines_own_span():
    """Seen queued at 100.05, running at 100.1, queued again at 100.2 (a 500), running at 100.3,
    succeeded at 100.9 (finished_at 100.8). The engine, at time_scale 2, took 0.3 simulated s,
    0.05 of them to the first token: in wall seconds 0.6, ending at 100.8, so 100.2 to 100.3 to
    first token and 100.3 to 100.8 decoding."""
    engine = {"queue_s": 0.01, "prefill_s": 0.04, "ttft_s": 0.05, "e2e_latency_s": 0.3}
    result = {"engine_timing": {**engine, "output_tokens": 16, "time_scale": 2.0}}
    states = [
        (100.05, job("queued", 0)),
        (100.1, job("running", 1)),
        (100.2, job("queued", 1)),
        (100.3, job("running", 2)),
        (100.9, job("succeeded", 2, finished_at=100.8, result=result)),
    ]
    spans = collecting.job_trace(states)
    assert [label for label, _, _ in spans] == [
        "queue (attempt 1)",
        "worker (attempt 1)",
        "queue (attempt 2)",
        "worker (attempt 2)",
        "engine: to first token",
        "engine: decode",
    ]
    assert spans[0][1:] == (100.0, 100.1)  # from the submission, not from when it was seen
    assert spans[3][1:] == (100.3, 100.9)
    assert spans[4][1:] == pytest.approx((100.2, 100.3))
    assert spans[5][1:] == pytest.approx((100.3, 100.8))


def test_a_job_without_the_engines_account_has_no_engine_span():
    """Another server's answer carries no engine_timing: the trace is queue and worker only."""
    states = [
        (100.0, job("queued", 0)),
        (100.1, job("running", 1)),
        (100.5, job("succeeded", 1, finished_at=100.4, result={"choices": []})),
    ]
    assert [label for label, _, _ in collecting.job_trace(states)] == [
        "queue (attempt 1)",
        "worker (attempt 1)",
    ]


async def test_a_real_jobs_trace_carries_the_engine_span(live_server, tmp_path: Path):
    """A job run by the job server on the model server: its events end with a result whose
    engine span lasts the engine's e2e latency, converted to wall time, and ends at finished_at."""
    store = SQLiteJobStore(tmp_path / "jobs.db")
    with ServerThread(create_jobs_app(live_server.base_url, store=store, workers=1)) as jobs:
        body = {"request": {"prompt": "Trace me", "max_tokens": 4, "ignore_eos": True}}
        async with httpx.AsyncClient(timeout=30) as http:
            job_id = (await http.post(f"{jobs.base_url}/jobs", json=body)).json()["id"]
            url = f"{jobs.base_url}/jobs/{job_id}"
            states = [(0.0, change) async for change in collecting.job_events(http, url)]
    final = states[-1][1]
    engine = final["result"]["engine_timing"]
    spans = dict((label, (start, end)) for label, start, end in collecting.job_trace(states))
    start, end = spans["engine: decode"]
    assert end == final["finished_at"]
    assert end - spans["engine: to first token"][0] == pytest.approx(
        engine["e2e_latency_s"] * engine["time_scale"],
        abs=1e-6,  # epoch seconds in a float
    )
