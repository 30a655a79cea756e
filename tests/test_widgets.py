"""The live dashboard without a browser: its windowed statistics, and its controls set from code."""

import threading
from collections import Counter

import pytest

import inferlab
from inferlab.lab._dashboard_views import SloPoint, best_point
from inferlab.lab._live_stats import CounterWindow, LiveWindow
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


def test_the_best_point_is_the_fastest_within_the_slo():
    points = [
        SloPoint(1, 0.01, 5.0, 0.1),
        SloPoint(8, 0.01, 30.0, 0.4),
        SloPoint(64, 0.2, 50.0, 2.0),
    ]
    assert best_point(points, p99_target_s=0.5).max_batch_size == 8
    assert best_point(points, p99_target_s=0.05) is None


@pytest.fixture
def dashboard(live_server):
    board = BatchingDashboard(live_server.base_url, arrival_rate=50, output_tokens=8, window_s=30)
    yield board
    board.close()


def _wait_for_completions(board, count):
    done = threading.Event()
    add = board.window.add

    def counting_add(latency_s, ok):
        add(latency_s, ok)
        if board.window.snapshot().completed >= count:
            done.set()

    board.window.add = counting_add
    return done


def test_sliders_reconfigure_the_running_proxy_at_once(dashboard):
    dashboard.set(max_batch_size=3, flush_interval_s=0.05)
    settings = dashboard.proxy.completions.settings
    assert (settings.max_batch_size, settings.batch_wait_timeout_s) == (3, 0.05)
    assert dashboard.policy.disabled  # an external server: no knob for its batching policy


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
        assert not first.proxy_server.running and second.proxy_server.running
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
