"""The embedded server's time scale, chosen from what the host costs (costs injected here, so
nothing depends on how fast or busy this machine is)."""

import pytest

from inferlab import ModelClock
from inferlab.lab import runtime, speed_check
from inferlab.lab.speed_check import BUDGET, LADDER, HostCosts, ScaleChoice, choose_time_scale

STEP_S = 0.008  # a decode step of about the 8B model's, at H100 speed


@pytest.mark.parametrize(
    ("costs", "expected"),
    [
        # 0.02 ms a token: 2.5% of a 0.8 ms step at 0.1: the fastest rung fits
        (HostCosts(request_s=0.0, step_s=0.00002), 0.1),
        # 2 ms a request spread over 64 tokens: 0.031 ms a token, 3.9% of a step at 0.1
        (HostCosts(request_s=0.002, step_s=0.0), 0.1),
        # 0.06 ms a token: 7.5% at 0.1, 3.75% at 0.2
        (HostCosts(request_s=0.0, step_s=0.00006), 0.2),
        # 0.15 ms a token: 9.4% at 0.2, 3.75% at 0.5
        (HostCosts(request_s=0.0064, step_s=0.00005), 0.5),
        # 0.3 ms a token: 7.5% at 0.5, 3.75% at 1
        (HostCosts(request_s=0.0, step_s=0.0003), 1.0),
    ],
)
def test_the_fastest_scale_within_the_budget_is_chosen(costs, expected):
    choice = choose_time_scale(costs, decode_step_s=STEP_S)
    assert choice.time_scale == expected and choice.within_budget
    assert choice.share(expected) <= BUDGET
    faster = [scale for scale in LADDER if scale < expected]
    assert all(choice.share(scale) > BUDGET for scale in faster)


def test_a_machine_too_busy_even_for_real_speed_runs_at_real_speed_and_says_so():
    choice = choose_time_scale(HostCosts(request_s=0.05, step_s=0.001), decode_step_s=STEP_S)
    assert choice.time_scale == 1.0 and not choice.within_budget
    assert "even then the host adds more than 5%" in choice.explain()


def test_the_explanation_shows_what_was_measured_and_each_rung():
    explained = choose_time_scale(HostCosts(0.002, 0.00006), decode_step_s=STEP_S).explain()
    assert "2.000 ms" in explained and "0.060 ms" in explained  # the two measured costs
    assert explained.count("time_scale") == len(LADDER) + 1
    # 0.031 + 0.06 ms a token: 11% of a step at 0.1, 5.7% at 0.2, 2.3% at 0.5
    assert explained.splitlines()[-1].startswith("chosen: time_scale 0.5")


def test_a_request_s_cost_spreads_over_a_typical_answer():
    costs = HostCosts(request_s=0.0064, step_s=0.0001)
    assert costs.per_token_s == pytest.approx(0.0001 + 0.0064 / speed_check.TOKENS_PER_ANSWER)


@pytest.fixture
def fresh_kernel(monkeypatch):
    """As if in a new kernel: no embedded server yet, no choice made; stops what starts."""
    monkeypatch.delenv("INFERLAB_BASE_URL", raising=False)
    monkeypatch.setattr(runtime, "_embedded", None)
    monkeypatch.setattr(runtime, "_choice", None)
    yield
    if runtime._embedded is not None:
        runtime._embedded.stop()


def test_the_embedded_server_runs_at_the_measured_choice_and_reports_it(monkeypatch, fresh_kernel):
    monkeypatch.delenv("INFERLAB_TIME_SCALE", raising=False)
    measured = []

    def fake_measure(base_url):
        measured.append(ModelClock.of_server(base_url).time_scale)  # what it measured at
        return HostCosts(request_s=0.0, step_s=0.00006)  # 0.2 for the 8B model

    monkeypatch.setattr(runtime, "measure_host_costs", fake_measure)
    choice = runtime.time_scale_choice()
    assert measured == [speed_check.PROBE_SCALE]
    assert choice.source == "measured" and choice.time_scale == 0.2
    url = runtime.base_url()
    assert ModelClock.of_server(url).time_scale == 0.2  # the server itself says so
    assert runtime.model_clock().time_scale == 0.2 == runtime.time_scale()
    assert runtime.time_scale_choice() is choice and measured == [speed_check.PROBE_SCALE]


def test_inferlab_time_scale_overrides_the_measurement(monkeypatch, fresh_kernel):
    monkeypatch.setenv("INFERLAB_TIME_SCALE", "0.25")

    def no_measuring(base_url):
        raise AssertionError("an override must not measure")

    monkeypatch.setattr(runtime, "measure_host_costs", no_measuring)
    choice = runtime.time_scale_choice()
    assert choice == ScaleChoice(0.25, "INFERLAB_TIME_SCALE")
    assert "set by INFERLAB_TIME_SCALE" in choice.explain()
    assert ModelClock.of_server(runtime.base_url()).time_scale == 0.25


def test_an_external_server_has_nothing_to_choose(monkeypatch, live_server):
    monkeypatch.setenv("INFERLAB_BASE_URL", live_server.base_url)
    assert runtime.time_scale_choice().time_scale == 1.0
    assert "nothing to choose" in runtime.time_scale_choice().explain()
