"""The live dashboard without a browser: its windowed statistics, and its controls set from code."""

import threading
from collections import Counter

import pytest

import inferlab
from inferlab.lab._dashboard_views import SloPoint, best_point, flush_regime, slo_html
from inferlab.lab._live_stats import CounterWindow, LiveSnapshot, LiveWindow
from inferlab.lab.widgets import BatchingDashboard


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_live_window_textbook():
    """Window 5 s, 10 s since start: 20 successes in the last 5 s -> 4 req/s; 3 drops."""
    clock = FakeClock()
    window = LiveWindow(window_s=5.0, clock=clock)
    for i in range(10):  # these finish in the first 5 s and fall out of the window
        clock.now = i * 0.5
        window.add(9.0, ok=True)
    for i in range(23):
        clock.now = 5.1 + i * 0.2
        window.add(0.1 if i < 20 else 0.0, ok=i < 20)
    clock.now = 10.0
    snapshot = window.snapshot()
    assert snapshot.throughput == pytest.approx(4.0)
    assert (snapshot.completed, snapshot.dropped, snapshot.dropped_total) == (20, 3, 3)
    assert snapshot.p99_s == pytest.approx(0.1)


def test_counter_window_reports_what_was_gained_in_the_window():
    clock = FakeClock()
    window = CounterWindow(window_s=5.0, clock=clock)
    window.update(Counter({8: 10}))
    clock.now = 6.0
    window.update(Counter({8: 12, 1: 3}))
    clock.now = 11.5
    assert window.update(Counter({8: 12, 1: 7})) == Counter({1: 4})


def snapshot(p99_s, *, completed=100, waiting=0, on_schedule=1.0):
    return LiveSnapshot(
        throughput=completed / 5,
        p50_s=p99_s / 2,
        p99_s=p99_s,
        completed=completed,
        dropped=0,
        dropped_total=0,
        sent_rate=20.0 * on_schedule,
        on_schedule=on_schedule,
        lag_p99_s=0.001,
        waiting=waiting,
        oldest_waiting_s=p99_s if waiting else 0.0,
    )


def test_the_best_point_is_the_fastest_that_honestly_meets_the_slo():
    """Target 0.5 s at 20 req/s offered. Batch 64 has the best p99 of all, but its load
    generator kept to only 60% of its schedule: not the rate offered, so it does not count.
    Batch 32 measured 10 requests: too few. Batch 8 meets; batch 1 misses (its queue, counted
    at its age)."""
    points = [
        SloPoint.measured(1, 0.01, snapshot(2.0, waiting=40), 20.0, 0.5),
        SloPoint.measured(8, 0.01, snapshot(0.4), 20.0, 0.5),
        SloPoint.measured(32, 0.01, snapshot(0.1, completed=10), 20.0, 0.5),
        SloPoint.measured(64, 0.2, snapshot(0.05, completed=200, on_schedule=0.6), 20.0, 0.5),
    ]
    assert [p.meets for p in points] == [False, True, False, False]
    assert points[0].samples == 140 and "over" in points[0].why
    assert "fell behind" in points[3].why and "only 10" in points[2].why
    assert best_point(points, p99_target_s=0.5).max_batch_size == 8
    assert best_point(points, p99_target_s=0.05) is None
    assert "no setting met it" in slo_html(points[:1], 0.5)


def test_textbook_a_load_generator_falling_behind_its_schedule():
    """11 sends 1 s apart, each 0.1 s later against its schedule than the one before: sent
    over 10 s what was due over 9 s -> 90% on schedule. Skipped arrivals count as not sent."""
    clock = FakeClock()
    window = LiveWindow(window_s=60.0, clock=clock)
    for i in range(11):
        clock.now = float(i)
        window.sent(lag_s=0.1 * i)
    assert window.snapshot().on_schedule == pytest.approx(0.9)
    window.skipped(9)
    assert window.snapshot().on_schedule == pytest.approx(0.9 * 10 / 19)


def test_the_window_counts_requests_still_waiting_at_their_age():
    """Ten answered in 0.1 s, and one sent 3 s ago still waiting: p99 near 3 s, not 0.1 s."""
    clock = FakeClock()
    window = LiveWindow(window_s=5.0, clock=clock)
    stuck = window.sent(lag_s=0.002)
    for _ in range(10):
        clock.now += 0.1
        key = window.sent()
        clock.now += 0.1
        window.add(0.1, ok=True, key=key)
    clock.now = 3.0
    s = window.snapshot()
    assert (s.completed, s.waiting, s.samples) == (10, 1, 11)
    assert s.oldest_waiting_s == pytest.approx(3.0) and s.p99_s > 2.5
    assert s.sent_rate == pytest.approx(11 / 3.0) and s.lag_p99_s == pytest.approx(0.002, abs=3e-4)
    window.reset(keep_waiting=True)  # after a warm-up: the old request still counts
    assert window.snapshot().waiting == 1
    window.forget(stuck)
    assert window.snapshot().waiting == 0


@pytest.mark.parametrize(
    ("idle", "in_flight", "inert"),
    [(True, 1, True), (False, 1, False), (True, 4, False)],
)
def test_the_flush_regime_says_when_the_interval_can_delay_a_batch(idle, in_flight, inert):
    regime = flush_regime({"dispatch_when_idle": idle, "max_concurrent_batches": in_flight})
    assert regime.startswith("inert") == inert


@pytest.fixture
def dashboard(live_server):
    # The server runs 100 times faster than an H100: 0.5 req/s of H100 time is 50 a second here
    board = BatchingDashboard(live_server.base_url, arrival_rate=0.5, output_tokens=8, window_s=30)
    yield board
    board.close()


def _wait_for_completions(board, count):
    done = threading.Event()
    add = board.window.add

    def counting_add(latency_s, ok, key=None):
        add(latency_s, ok, key)
        if board.window.snapshot().completed >= count:
            done.set()

    board.window.add = counting_add
    return done


def test_sliders_reconfigure_the_running_proxy_at_once(dashboard):
    dashboard.set(max_batch_size=3, flush_interval_s=0.05)  # 50 ms of H100 time
    settings = dashboard.proxy.configure()  # read back over the proxy's admin API, wall time
    assert dashboard.clock.time_scale == 0.01
    assert (settings["max_batch_size"], settings["batch_wait_timeout_s"]) == (3, 0.0005)
    dashboard.refresh()
    assert "flush 50 ms" in dashboard.numbers.value  # shown in H100 time again
    assert dashboard.policy.disabled  # an external server: no knob for its batching policy


def test_the_regime_switch_turns_the_proxys_idle_dispatch_and_batches_in_flight(dashboard):
    """The defaults: idle dispatch, one batch in flight, and the flush interval inert. The
    switch and the knob reach the running proxy, and the readout says the interval now acts."""
    dashboard.refresh()
    assert dashboard.flush_regime.startswith("inert")
    dashboard.set(dispatch_when_idle=False, max_concurrent_batches=4)
    settings = dashboard.proxy.configure()
    assert (settings["dispatch_when_idle"], settings["max_concurrent_batches"]) == (False, 4)
    dashboard.refresh()
    assert dashboard.flush_regime.startswith("acts")
    assert "no idle dispatch, 4 in flight at most" in dashboard.numbers.value
    with pytest.raises(TypeError, match="no control named"):
        dashboard.set(dispatch_when_busy=True)


def test_load_flows_and_the_numbers_move(dashboard):
    done = _wait_for_completions(dashboard, 10)
    dashboard.start()
    assert done.wait(30), "no requests completed through the dashboard's proxy"
    snapshot = dashboard.refresh()
    assert snapshot.completed >= 10 and snapshot.throughput > 0
    assert "req/s" in dashboard.numbers.value and "batch sizes" in dashboard.bars.value
    dashboard.stop()
    assert dashboard.run_button.description == "start"


def test_a_new_dashboard_closes_the_old_one(live_server):
    first = BatchingDashboard(live_server.base_url)
    second = BatchingDashboard(live_server.base_url)
    try:
        assert not first.proxy.running and second.proxy.running
        assert BatchingDashboard._live == [second]
    finally:
        second.close()
    assert BatchingDashboard._live == []


def test_the_policy_control_switches_the_embedded_servers_scheduler():
    board = BatchingDashboard()
    try:
        board.set(policy="static")
        assert inferlab.embedded_model().configure()["batching"] == "static"
    finally:
        board.set(policy="continuous")
        board.close()
