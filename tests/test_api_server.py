"""The API server's own cost (engine/api_server.py): it moves times, never decisions.

The textbook numbers: 10 ms a request, 7.5 µs a prompt token before the engine, 7.5 µs an
output token after each step. One request of 100 prompt tokens and 2 output tokens reaches
the queue at 10.75 ms; each of its two tokens leaves 7.5 µs after its step.
"""

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from inferlab import SimulatedModel, create_app, simulate
from inferlab.engine import ApiServerCost
from inferlab.engine.clock import VirtualClock
from inferlab.engine.profiles import H100_LLAMA3_8B
from inferlab.serve.settings import ServerSettings

pytestmark = pytest.mark.anyio


def test_a_lone_request_pays_the_front_end_before_and_after_the_engine():
    """TTFT = 10.75 ms (HTTP + 100 tokens tokenized) + the prefill step + 7.5 µs delivery; the
    decode step after it is the same with or without the cost, so the TPOT is too."""
    (on,) = simulate([(0.0, 100, 2)], H100_LLAMA3_8B)
    (off,) = simulate([(0.0, 100, 2)], H100_LLAMA3_8B, api_server_cost=0)
    assert on.queued_s == pytest.approx(0.01075) and off.queued_s == 0.0
    assert (on.first_token_s - off.first_token_s) * 1000 == pytest.approx(10.75 + 0.0075)
    assert on.finished_s - on.first_token_s == pytest.approx(off.finished_s - off.first_token_s)
    (twice,) = simulate([(0.0, 100, 2)], H100_LLAMA3_8B, api_server_cost=2)
    assert (twice.first_token_s - off.first_token_s) * 1000 == pytest.approx(2 * 10.7575)


def test_the_cost_changes_no_scheduling_decision():
    """Eight equal requests at once in a pool too small for all of them, prefix caching on: the
    same admissions, preemptions and cache hits with the cost as without; only times move."""
    requests = [(0.0, "shared words " * 40 + f"question {i}", 60) for i in range(8)]
    runs = {
        cost: simulate(
            requests,
            H100_LLAMA3_8B,
            num_gpu_blocks_override=40,
            enable_prefix_caching=True,
            api_server_cost=cost,
        )
        for cost in (0, 1)
    }

    def decisions(done):
        return [(s.batch_id, s.preemptions, s.num_cached_tokens, s.generated) for s in done]

    assert decisions(runs[0]) == decisions(runs[1])
    assert sum(seq.preemptions for seq in runs[1]) > 0  # the pool was tight enough to matter
    assert all(a.finished_s > b.finished_s for a, b in zip(runs[1], runs[0], strict=True))


def test_the_cost_is_validated_and_can_be_turned_off():
    assert ApiServerCost().scaled(0) == ApiServerCost(0.0, 0.0)
    with pytest.raises(ValueError, match="api_server_cost must be >= 0"):
        simulate([], H100_LLAMA3_8B, api_server_cost=-1)
    with pytest.raises(ValueError, match="api_server_cost must be >= 0"):
        ServerSettings(api_server_cost=-0.5).check()
    model = SimulatedModel(api_server_cost=0)
    assert model.profile.api_server == ApiServerCost(0.0, 0.0)


def _histogram_sums(text):
    sums = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.endswith("_sum"):
                sums[sample.name] = sample.value
    return sums


@pytest.mark.parametrize("cost", [0, 1])
async def test_server_timings_and_vllm_metrics_include_it_as_simulate_does(cost):
    """One request on virtual time: the response's account and vLLM's TTFT histogram equal
    simulate()'s TTFT, the API server's share is its own field, and vLLM's queue time (which
    starts in the engine core's queue) leaves it out."""
    model = SimulatedModel(clock=VirtualClock(), name="llama", api_server_cost=cost)
    prompt = " ".join(["word"] * 100)
    body = {"prompt": prompt, "max_tokens": 2, "ignore_eos": True}
    transport = httpx.ASGITransport(app=create_app(model))
    async with httpx.AsyncClient(transport=transport, base_url="http://inferlab.test") as client:
        answer = (await client.post("/v1/completions", json=body)).json()
        sums = _histogram_sums((await client.get("/metrics")).text)
    (predicted,) = simulate([(0.0, 100, 2)], H100_LLAMA3_8B, api_server_cost=cost)
    timing = answer["engine_timing"]
    assert timing["api_server_s"] == pytest.approx(predicted.queued_s)
    assert timing["queue_s"] == 0.0
    assert timing["ttft_s"] == pytest.approx(predicted.first_token_s)
    assert sums["vllm:time_to_first_token_seconds_sum"] == pytest.approx(predicted.first_token_s)
    assert sums["vllm:e2e_request_latency_seconds_sum"] == pytest.approx(predicted.finished_s)
    assert sums["vllm:request_queue_time_seconds_sum"] == 0.0


def test_requests_reach_the_engine_in_the_order_they_arrived():
    """A 4,000-token prompt at 0 s takes 10 + 30 = 40 ms of front end; a 10-token one at 1 ms
    would be done at 11.1 ms, but waits for the first (one event loop takes them in turn)."""
    long_first, short_next = simulate([(0.0, 4000, 1), (0.001, 10, 1)], H100_LLAMA3_8B)
    assert long_first.queued_s == pytest.approx(0.040)
    assert short_next.queued_s == long_first.queued_s
    assert short_next.batch_id == long_first.batch_id  # so they still share a step
