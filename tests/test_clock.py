"""The model clock: wall time to model ("H100") time and back, in one place."""

import asyncio

import pytest

from inferlab import ModelClock, ServerThread, create_app
from inferlab.engine.timing import EngineTiming
from inferlab.load import REAL_TIME, RequestResult, Workload, fixed, run_load, summarize
from inferlab.load.loadgen import LoadRun


def _record(scale: float) -> RequestResult:
    """A streamed request on a server at `scale`: 100 ms to its first token, 4 tokens 10 ms
    apart after it, all in model time; the engine's own account agrees exactly."""
    model_times = [0.1, 0.11, 0.12, 0.13]
    return RequestResult(
        index=0,
        scheduled_s=0.0,
        sent_s=0.0,
        first_token_s=0.1 * scale,
        done_s=0.13 * scale,
        token_times_s=[t * scale for t in model_times],
        output_tokens=4,
        engine=EngineTiming(0.0, 0.1, 0.1, 0.13, 4, time_scale=scale),
    )


def test_conversions_go_both_ways_and_undo_each_other():
    clock = ModelClock(time_scale=0.2)
    assert clock.model_s(0.1) == pytest.approx(0.5) and clock.model_ms(0.1) == pytest.approx(500)
    assert clock.wall_s(0.5) == pytest.approx(0.1)
    assert clock.wall_rate(8.0) == pytest.approx(40.0)  # 8 per H100 second: 40 per wall second
    assert clock.model_rate(40.0) == pytest.approx(8.0)
    assert clock.model_s(clock.wall_s(1.234)) == pytest.approx(1.234)


def test_a_real_server_s_clock_changes_nothing():
    record = _record(1.0)
    assert REAL_TIME.timing(record) == record
    assert REAL_TIME.model_ms(0.25) == 250 and REAL_TIME.wall_rate(3.0) == 3.0


@pytest.mark.parametrize("bad", [0.0, -1.0])
def test_a_clock_needs_a_positive_scale(bad):
    with pytest.raises(ValueError, match="time_scale must be > 0"):
        ModelClock(time_scale=bad)


def test_a_record_in_model_time_reads_its_metrics_in_model_seconds():
    clock = ModelClock(time_scale=0.1)
    record = clock.timing(_record(0.1))
    assert record.ttft_s == pytest.approx(0.1) and record.e2e_latency_s == pytest.approx(0.13)
    assert record.tpot_s == pytest.approx(0.01)
    assert record.itl_s == pytest.approx([0.01, 0.01, 0.01])
    assert record.engine is not None and record.engine.time_scale == 1.0
    assert isinstance(record, RequestResult) and record.index == 0  # bookkeeping kept


def test_the_drift_guard_agrees_before_and_after_conversion():
    """Converted records carry an engine account on the same clock, so drift is unchanged."""
    clock = ModelClock(time_scale=0.1)
    wall, model = summarize([_record(0.1)]), summarize(clock.timings([_record(0.1)]))
    assert wall.drift is not None and model.drift is not None
    assert model.drift.relative == pytest.approx(wall.drift.relative, abs=1e-9)
    assert model.drift.client_e2e_s == pytest.approx(0.13)


def test_a_summary_converts_latencies_down_and_rates_up():
    """Two requests over 1 wall second at scale 0.5: 2 req/s wall is 1 req/s of model time,
    and a 0.065 s wall latency is 0.13 s of model time."""
    clock = ModelClock(time_scale=0.5)
    wall = summarize([_record(0.5), _record(0.5)], duration_s=1.0)
    model = wall.in_model_time(clock)
    assert model.request_throughput == pytest.approx(1.0)
    assert model.duration_s == pytest.approx(2.0)
    assert model.e2e.p50 == pytest.approx(0.13) and model.ttft.p99 == pytest.approx(0.1)
    direct = summarize(clock.timings([_record(0.5), _record(0.5)]), duration_s=2.0)
    assert model.e2e == direct.e2e and model.request_throughput == direct.request_throughput


def test_a_run_converts_once():
    clock = ModelClock(time_scale=0.5)
    run = LoadRun([_record(0.5)], started_s=0.0, ended_s=1.0, in_flight_samples=[1])
    once = run.in_model_time(clock)
    assert once.ended_s == pytest.approx(2.0) and once.clock is clock
    assert once.in_model_time(clock) is once


def test_a_clock_reads_the_scale_the_server_reports():
    with ServerThread(create_app(time_scale=0.25)) as server:
        assert ModelClock.of_server(server.base_url).time_scale == 0.25
    assert ModelClock.of_server("http://127.0.0.1:9/v1").time_scale == 1.0  # nothing there


def test_a_server_with_a_key_is_asked_with_it():
    """/admin/engine is behind the server's key: asked without it, the answer was a 401, and
    the clock said 1, so `bench --find-max-rate --api-key` offered wall-time rates as H100 ones
    (ten times too few at time_scale 0.1)."""
    with ServerThread(create_app(time_scale=0.25, api_key="sesame")) as server:
        assert ModelClock.of_server(server.base_url, api_key="sesame").time_scale == 0.25


def test_run_load_with_a_clock_offers_the_rate_in_model_time():
    """8 requests at 20 per model second on a server ten times faster than an H100 arrive
    0.05 model seconds apart on average, 5 ms of wall time: the run's schedule, read back in
    model time, spans what the seeded gaps say, and every record is in model seconds."""
    clock = ModelClock(time_scale=0.1)
    workload = Workload(num_requests=8, prompt_tokens=fixed(16), output_tokens=fixed(4))
    with ServerThread(create_app(time_scale=0.1)) as server:
        run = asyncio.run(run_load(server.base_url, workload, request_rate=20.0, clock=clock))
        wall = asyncio.run(run_load(server.base_url, workload, request_rate=200.0))
    model_span = run.records[-1].scheduled_s - run.records[0].scheduled_s
    wall_span = wall.records[-1].scheduled_s - wall.records[0].scheduled_s
    # Same seed, same gaps: the planned schedule is exact, whatever the machine does.
    assert model_span == pytest.approx(clock.model_s(wall_span), rel=1e-6)
    assert run.clock is clock and all(r.engine and r.engine.time_scale == 1.0 for r in run.records)
    summary = run.summary()
    assert summary.drift is not None and summary.drift.engine_e2e_s > 0
    assert summary.drift.time_scale == 0.1  # its advice names the server's real scale


def test_a_drifted_run_in_model_time_still_suggests_a_slower_scale():
    record = _record(0.1)
    record.done_s *= 2  # the client waited twice what the engine spent
    run = LoadRun([record], 0.0, 1.0, []).in_model_time(ModelClock(time_scale=0.1))
    warning = run.summary().drift.warning
    assert warning is not None and "a slower time scale than 0.1" in warning
