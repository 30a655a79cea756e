"""Load runs against real servers on loopback: what is sent, recorded and summed up.

Nothing here compares wall-clock figures: how closely a live run agrees with simulate() is
measured by benchmarks/loadgen_fidelity.py, which prints it, since a busy machine can push
wall-clock times past any tolerance.
"""

import asyncio
import random

import pytest

from inferlab import ServerThread, create_app
from inferlab.load.loadgen import run_load
from inferlab.load.workloads import Lengths, Workload, exponential, fixed, uniform
from inferlab.serve.faults import Faults

TIME_SCALE = 0.5
TOLERANCE = 0.2


@pytest.fixture(scope="module")
def half_speed_server():
    with ServerThread(create_app(time_scale=TIME_SCALE)) as server:
        yield server


def test_workloads_are_seeded_and_prompts_have_the_asked_length():
    workload = Workload(num_requests=5, prompt_tokens=uniform(10, 20), seed=7)
    first, again = workload.requests(), workload.requests()
    assert first == again
    from inferlab import count_tokens

    assert all(count_tokens(r.prompt) == r.prompt_tokens for r in first)
    assert len({r.prompt for r in first}) == 5


def test_exponential_lengths_have_the_asked_mean_and_cap():
    """Anyscale's shape: mean 128, capped at 1024 (the cap trims the mean very slightly)."""
    rng = random.Random(0)
    samples = [exponential(128, 1024).sample(rng) for _ in range(20_000)]
    assert max(samples) <= 1024 and 120 < sum(samples) / len(samples) < 136


@pytest.mark.parametrize(
    ("text", "expected"),
    [("64", fixed(64)), ("uniform:8:16", uniform(8, 16)), ("exp:128:512", exponential(128, 512))],
)
def test_length_specs_parse(text, expected):
    assert Lengths.parse(text) == expected


def test_errors_are_recorded_not_raised():
    with ServerThread(create_app(time_scale=0.01, faults=Faults(fail_rate=1.0))) as failing:
        run = asyncio.run(run_load(failing.base_url, Workload(num_requests=5)))
    summary = run.summary()
    assert summary.failed == 5 and summary.errors == {"APIStatusError": 5}


def test_a_run_stops_at_its_time_limit_even_if_the_server_never_answers():
    faults = Faults(stall_rate=1.0, stall_s=60.0)
    with ServerThread(create_app(time_scale=0.01, faults=faults)) as stalled:
        run = asyncio.run(run_load(stalled.base_url, Workload(num_requests=5), time_limit_s=0.5))
        faults.update(stall_rate=0.0)
    assert len(run.records) == 5
    assert {r.error_type for r in run.records} == {"TimeLimitExceeded"}


def test_requests_still_waiting_for_a_slot_at_the_time_limit_are_recorded_too():
    """max_concurrency 2, five requests, a server that never answers: two are sent and cut off,
    three never leave; every one has its record, and those three say why."""
    faults = Faults(stall_rate=1.0, stall_s=60.0)
    with ServerThread(create_app(time_scale=0.01, faults=faults)) as stalled:
        run = asyncio.run(
            run_load(
                stalled.base_url,
                Workload(num_requests=5),
                request_rate=float("inf"),
                max_concurrency=2,
                time_limit_s=0.5,
            )
        )
        faults.update(stall_rate=0.0)
    assert sorted(r.index for r in run.records) == [0, 1, 2, 3, 4]
    assert {r.error_type for r in run.records} == {"TimeLimitExceeded"}
    never_sent = [r for r in run.records if "before a slot was free" in r.error]
    assert len(never_sent) == 3
    assert all(r.sent_s - r.scheduled_s >= 0.4 for r in never_sent)  # their lag, kept


def test_modes_are_checked():
    with pytest.raises(ValueError, match="mode must be"):
        asyncio.run(run_load("http://127.0.0.1:9/v1", Workload(), mode="carrier-pigeon"))


def test_through_the_job_api_each_record_has_its_acknowledgement_before_its_result(
    half_speed_server, tmp_path
):
    from inferlab.jobs import SQLiteJobStore, create_jobs_app

    app = create_jobs_app(
        half_speed_server.base_url, store=SQLiteJobStore(tmp_path / "j.db"), workers=8
    )
    with ServerThread(app) as jobs:
        run = asyncio.run(
            run_load(jobs.base_url, Workload(num_requests=12, output_tokens=fixed(8)), mode="jobs")
        )
    summary = run.summary()
    assert summary.failed == 0 and summary.output_throughput > 0
    assert all(r.sent_s < r.acked_s < r.done_s and r.output_tokens == 8 for r in run.records)
    assert summary.ack is not None and summary.ack.p50 < summary.e2e.p50
    assert "ack" in summary.table()


def test_arrival_gaps_have_the_asked_rate_and_burstiness_sets_their_spread():
    """Gamma gaps with shape k: mean 1/rate, squared coefficient of variation 1/k (Poisson: 1)."""
    import itertools
    import statistics

    from inferlab.load.workloads import arrival_times

    for burstiness in (1.0, 0.25):
        times = arrival_times(20_000, 10.0, burstiness=burstiness, seed=4)
        gaps = [b - a for a, b in itertools.pairwise(times)]
        mean = statistics.fmean(gaps)
        assert times[0] == 0.0 and mean == pytest.approx(0.1, rel=0.05)
        assert statistics.pvariance(gaps) / mean**2 == pytest.approx(1 / burstiness, rel=0.1)
