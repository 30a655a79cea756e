"""The honest probe (warm-up, the queue at its age, achieved rate, sample size) and the search
for the highest rate that meets a p99 SLO, driven by a fake measurement: no server, no clock."""

import math

import pytest

from inferlab.load.metrics import RequestResult
from inferlab.load.probes import Probe, judge, sent_rate
from inferlab.load.slo_search import RateSearch, find_max_rate, probe_rate

pytestmark = pytest.mark.anyio


def record(index, scheduled, latency, *, sent=None, error_type=None):
    sent = scheduled if sent is None else sent
    ok = error_type is None
    return RequestResult(
        index=index,
        scheduled_s=scheduled,
        sent_s=sent,
        done_s=sent + latency,
        ok=ok,
        error_type=error_type,
    )


def steady(n, rate, latency, *, start=0.0, lag_per_request=0.0):
    return [
        record(i, start + i / rate, latency, sent=start + i / rate + i * lag_per_request)
        for i in range(n)
    ]


def test_sent_rate_counts_gaps():
    assert sent_rate([0.0, 0.5, 1.0, 1.5]) == 2.0
    assert math.isnan(sent_rate([1.0]))


def test_textbook_the_queue_still_waiting_counts_at_its_age():
    """97 finished in 0.2 s and 3 cut off at the end after 0.9 s: a p99 over the finished alone
    says 0.2 s and meets 0.5 s; counted at their age it is 0.9 s, and it misses."""
    records = steady(97, 10.0, 0.2)
    records += [record(97 + i, 9.7 + i / 10, 0.9, error_type="TimeLimitExceeded") for i in range(3)]
    probe = judge(records, offered_rate=10.0, p99_target_s=0.5)
    assert (probe.samples, probe.still_waiting) == (100, 3)
    assert probe.p99_s == pytest.approx(0.9)
    assert not probe.meets and "p99 over" in probe.why
    finished_only = judge(records[:97], offered_rate=10.0, p99_target_s=0.5)
    assert finished_only.meets  # what the old finder saw


def test_the_warm_up_is_left_out():
    """The first 2 s (a cold start: 5 s latencies) are not measured; the rest is 0.1 s."""
    records = [record(i, i / 10, 5.0 if i < 20 else 0.1) for i in range(100)]
    probe = judge(records, offered_rate=10.0, p99_target_s=0.5, warmup_s=2.0)
    assert probe.samples == 80 and probe.meets
    assert not judge(records, offered_rate=10.0, p99_target_s=0.5).meets


def test_a_load_generator_that_falls_behind_never_meets():
    """300 req/s asked, each send 15 ms later than the last one's lag: ~55 req/s went out."""
    records = steady(100, 300.0, 0.05, lag_per_request=0.015)
    probe = judge(records, offered_rate=300.0, p99_target_s=0.5)
    assert probe.p99_s < 0.5 and not probe.meets
    assert probe.achieved_rate == pytest.approx(1 / (1 / 300 + 0.015), rel=1e-6)
    assert "fell behind" in probe.why
    assert probe.lag_p99_s == pytest.approx(0.015 * 98.01, rel=1e-3)


def test_achieved_is_judged_against_the_schedule_not_the_nominal_rate():
    """A random schedule that came out 15% slow is the load's doing, not the generator's."""
    records = steady(100, 8.5, 0.1)  # asked 10 req/s; the draws gave 8.5; all sent on time
    probe = judge(records, offered_rate=10.0, p99_target_s=0.5)
    assert probe.meets and probe.achieved_rate == pytest.approx(10.0)
    assert probe.scheduled_rate == pytest.approx(8.5)


def test_failures_count_as_misses_and_small_samples_do_not_meet():
    records = steady(98, 10.0, 0.1) + [
        record(98 + i, 9.8 + i / 10, 0.01, error_type="APIStatusError") for i in range(2)
    ]
    probe = judge(records, offered_rate=10.0, p99_target_s=0.5)
    assert probe.failed == 2 and math.isinf(probe.p99_s) and not probe.meets
    few = judge(steady(10, 10.0, 0.1), offered_rate=10.0, p99_target_s=0.5)
    assert not few.meets and "only 10" in few.why
    assert "n=10" in few.line()


def fake_server(capacity, probes_seen):
    """A server whose p99 stays low up to `capacity` req/s and blows up past it."""

    async def measure(rate):
        probes_seen.append(rate)
        p99 = 0.1 if rate <= capacity else 5.0
        return Probe(
            offered_rate=rate,
            achieved_rate=rate,
            scheduled_rate=rate,
            p99_s=p99,
            samples=100,
            still_waiting=0 if p99 < 1 else 30,
            failed=0,
            lag_p99_s=0.001,
            p99_target_s=0.5,
            meets=p99 <= 0.5,
            why="fake",
        )

    return measure


async def test_textbook_search_brackets_then_bisects():
    """Capacity 20: 8 meets, 16 meets, 32 misses; 22.6 misses, 19.0 meets, 20.7 misses: 19.0
    and 20.7 are 9% apart, within 10%: the answer is 19.0 req/s."""
    seen = []
    search = await find_max_rate(fake_server(20, seen), start_rate=8, tolerance=0.1)
    assert [round(rate, 1) for rate in seen] == [8, 16, 32, 22.6, 19.0, 20.7]
    assert search.best.offered_rate == pytest.approx(math.sqrt(16 * math.sqrt(16 * 32)))
    assert search.why_stopped.startswith("bracketed")
    report = search.report()
    assert report.count("probe ") == 6 and "stopped: bracketed" in report


async def test_search_halves_down_from_a_start_that_misses():
    seen = []
    search = await find_max_rate(fake_server(3, seen), start_rate=16, tolerance=0.5)
    assert seen[:4] == [16, 8, 4, 2]
    assert 2 <= search.best.offered_rate <= 3


@pytest.mark.parametrize(
    ("capacity", "said"),
    [(1000, "ceiling of 64 req/s still meets"), (0.1, "floor of 2 req/s already misses")],
)
async def test_search_stops_at_the_edges_of_its_range_and_says_so(capacity, said):
    search = await find_max_rate(fake_server(capacity, []), start_rate=8, min_rate=2, max_rate=64)
    assert said in search.why_stopped
    assert (search.best is None) == (capacity < 1)


async def test_search_stops_when_the_probe_budget_is_spent():
    seen = []
    search = await find_max_rate(fake_server(20, seen), start_rate=8, tolerance=0.001, max_probes=5)
    assert len(seen) == 5 and "budget of 5 probes" in search.why_stopped
    assert "between" in search.why_stopped


def test_a_lucky_probe_above_a_miss_is_not_the_answer():
    """Noise: 16 missed but 32 met. The answer stays below the lowest rate that missed."""

    def probe(rate, meets):
        return Probe(rate, rate, rate, 0.1 if meets else 2.0, 100, 0, 0, 0.0, 0.5, meets, "-")

    search = RateSearch([probe(8, True), probe(16, False), probe(32, True)])
    assert search.best.offered_rate == 8 and search.lowest_miss == 16


async def test_search_arguments_are_checked():
    with pytest.raises(ValueError, match="min_rate"):
        await find_max_rate(fake_server(1, []), start_rate=8, min_rate=10)


async def test_a_real_probe_against_the_server_meets_a_generous_target(live_server):
    probe = await probe_rate(
        live_server.base_url, 40.0, p99_target_s=5.0, warmup_s=0.25, measure_s=1.0
    )
    assert probe.samples >= 35 and probe.still_waiting == 0
    assert probe.p99_s < 5.0 and probe.offered_rate == 40.0


def test_the_probe_follows_the_load_generators_own_schedule():
    """probe_rate stops the run after the last *scheduled* arrival: the same random stream."""
    import asyncio

    from inferlab.load.loadgen import run_open_loop
    from inferlab.load.workloads import Workload, arrival_times

    sent = []

    async def send(request, scheduled_s):
        sent.append(scheduled_s)
        return record(request.index, scheduled_s, 0.0)

    planned = Workload(30, seed=4).requests()
    asyncio.run(run_open_loop(send, planned, request_rate=1000.0, seed=4))
    times = arrival_times(30, 1000.0, seed=4)
    assert [t - sent[0] for t in sent] == pytest.approx(times, abs=1e-9)


async def test_a_probe_in_model_time_offers_the_rate_per_model_second(live_server):
    """The server runs 100 times faster than an H100: 0.4 req/s of H100 time is 40 a second of
    ours, and the probe's p99 and rates come back in H100 time."""
    from inferlab.load.clock import ModelClock

    clock = ModelClock(0.01)
    probe = await probe_rate(
        live_server.base_url, 0.4, p99_target_s=500.0, warmup_s=25, measure_s=100, clock=clock
    )
    assert probe.samples >= 35 and probe.meets
    assert probe.achieved_rate == pytest.approx(0.4, rel=0.1)
    assert probe.p99_s > 0.1  # H100 seconds: a 16-token answer takes well over 100 ms
