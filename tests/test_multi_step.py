"""Multi-step scheduling (engine/multi_step.py): tokens leave in bursts, so ITL and TPOT part.

The textbook case, on the measured profile with the API server's cost off: one request of 100
prompt tokens and 13 output tokens. Its prefill step gives token 1 at 8.41 ms; then decode steps
of ~8.43 ms. With N=1 a token leaves every step. With N=4 the next 12 leave in three bursts of
4, at the ends of steps 5, 9 and 13: the same last-token time, so the same TPOT, but inside a
burst the gap is 0 and between bursts it is 4 steps (~33.7 ms).
"""

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from inferlab import SimulatedModel, create_app, simulate
from inferlab.cli.main import build_parser
from inferlab.engine import SchedulerConfig
from inferlab.engine.clock import VirtualClock
from inferlab.engine.profiles import H100_LLAMA3_8B
from inferlab.serve.settings import ServerSettings

pytestmark = pytest.mark.anyio
ENGINE = H100_LLAMA3_8B.with_api_server_cost(0)


def _gaps_ms(times):
    return [(later - earlier) * 1000 for earlier, later in zip(times, times[1:], strict=False)]


def _tpot_s(seq):
    return (seq.finished_s - seq.first_token_s) / (seq.generated - 1)


def test_tokens_leave_in_bursts_of_n_with_the_same_tpot():
    (single,) = simulate([(0.0, 100, 13)], ENGINE)
    (burst,) = simulate([(0.0, 100, 13)], ENGINE, num_scheduler_steps=4)
    assert burst.generated == single.generated == 13
    times = burst.token_times_s
    assert [len(set(times[i : i + 4])) for i in (1, 5, 9)] == [1, 1, 1]  # three bursts of 4
    assert len(set(times)) == 4  # the prefill's token, then the three bursts
    assert _tpot_s(burst) == pytest.approx(_tpot_s(single))
    gaps = _gaps_ms(times[1:])
    step_ms = max(_gaps_ms(single.token_times_s))
    assert max(gaps) > 3.9 * step_ms and sorted(gaps)[: 9] == [0.0] * 9  # fmt: skip
    assert max(_gaps_ms(single.token_times_s)) < 8.5  # N=1: one step between tokens


def test_a_burst_stops_where_the_sequence_does_and_newcomers_wait_for_it():
    """6 tokens with N=4: 1 from the prefill, a burst of 4, then a burst of just 1. A request
    arriving during the first burst starts its prefill only after that burst ends."""
    first, second = simulate([(0.0, 100, 6), (0.010, 20, 2)], ENGINE, num_scheduler_steps=4)
    assert first.generated == 6 and len(set(first.token_times_s)) == 3
    burst_end = first.token_times_s[1]
    assert second.admitted_s == pytest.approx(burst_end)
    (alone,) = simulate([(0.010, 20, 2)], ENGINE)
    assert second.first_token_s - second.arrival_s > alone.first_token_s - alone.arrival_s


async def test_the_server_streams_bursts_and_vllm_itl_sees_them():
    """On virtual time the model hands out its tokens with their step's end time: 1 + 4 + 4 + 4.
    vLLM's inter_token_latency histogram gets 12 gaps, 9 of them 0 (below its 10 ms bucket)."""
    model = SimulatedModel(clock=VirtualClock(), api_server_cost=0, num_scheduler_steps=4)
    times = [t.time_s async for t in model.generate("word " * 100, max_tokens=13, ignore_eos=True)]
    assert [len(set(times[i : i + 4])) for i in (1, 5, 9)] == [1, 1, 1]
    (predicted,) = simulate([(0.0, 100, 13)], ENGINE, num_scheduler_steps=4)
    assert times == pytest.approx(predicted.token_times_s)
    await model.aclose()

    model = SimulatedModel(clock=VirtualClock(), name="llama", num_scheduler_steps=4)
    transport = httpx.ASGITransport(app=create_app(model))
    body = {"prompt": "word " * 100, "max_tokens": 13, "ignore_eos": True, "stream": True}
    async with httpx.AsyncClient(transport=transport, base_url="http://inferlab.test") as client:
        streamed = (await client.post("/v1/completions", json=body)).text
        metrics = (await client.get("/metrics")).text
    assert streamed.count('"text"') == 13
    buckets = {
        sample.labels["le"]: sample.value
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
        if sample.name == "vllm:inter_token_latency_seconds_bucket"
    }
    assert buckets["+Inf"] == 12 and buckets["0.01"] == 9


def test_the_setting_has_vllms_name_and_is_checked():
    args = build_parser().parse_args(["serve", "--num-scheduler-steps", "8"])
    assert ServerSettings.from_arguments(args).num_scheduler_steps == 8
    assert ServerSettings().num_scheduler_steps == SchedulerConfig().num_scheduler_steps == 1
    with pytest.raises(ValueError, match="num_scheduler_steps must be >= 1"):
        SchedulerConfig(num_scheduler_steps=0)
    with pytest.raises(ValueError, match="num_scheduler_steps must be >= 1"):
        ServerSettings(num_scheduler_steps=0).check()
