"""The batching policies, pinned exactly on virtual time.

Most tests use a profile with round numbers: every step costs 10 ms, whatever it holds,
because prefill and decode are both just the 10 ms floor of reading the weights. Then a
request of N output tokens alone takes N steps = N x 10 ms, and the timelines are easy to
check by hand.
"""

import pytest

from inferlab import InvalidRequestError, simulate
from inferlab.engine.profiles import H100_LLAMA3_8B

FLAT_10MS = H100_LLAMA3_8B.with_overrides(
    name="flat-10ms",
    decode_fixed_ms=10.0,
    decode_per_seq_ms=0.0,
    decode_compute_per_seq_ms=0.0,
    decode_per_context_token_ms=0.0,
    prefill_floor_ms=10.0,
    prefill_fixed_ms=0.0,
    prefill_per_token_ms=0.0,
    prefill_attention_ms=0.0,
)


def _finish_ms(sequences):
    return [round(seq.finished_s * 1000, 6) for seq in sequences]


def test_none_runs_one_request_at_a_time():
    """8 requests of 3 tokens at t=0: each takes 30 ms, strictly one after another."""
    done = simulate([(0.0, 10, 3)] * 8, FLAT_10MS, batching="none")
    assert _finish_ms(done) == [30, 60, 90, 120, 150, 180, 210, 240]


def test_static_admits_a_new_batch_only_when_the_previous_one_is_done():
    """8 requests, batches of 4: 4 finish at 30 ms (steps at 10, 20, 30), the next 4 at 60 ms."""
    done = simulate([(0.0, 10, 3)] * 8, FLAT_10MS, batching="static", max_num_seqs=4)
    assert _finish_ms(done) == [30] * 4 + [60] * 4
    assert [seq.admitted_s for seq in done] == [0.0] * 4 + [0.03] * 4


def test_static_batching_suffers_head_of_line_blocking():
    """A (10 tokens) and B (2 tokens) share a static batch; C must wait for A, not only for B.

    A: 0-100 ms. B: 0-20 ms. C is admitted at 100 ms and takes 2 steps: done at 120 ms.
    """
    requests = [(0.0, 10, 10), (0.0, 10, 2), (0.0, 10, 2)]
    a, b, c = simulate(requests, FLAT_10MS, batching="static", max_num_seqs=2)
    assert _finish_ms([a, b, c]) == [100, 20, 120]
    assert c.admitted_s == pytest.approx(0.1)


def test_continuous_admits_as_soon_as_a_slot_frees():
    """Same requests with continuous batching: C joins at 20 ms, the step after B leaves.

    That step prefills C and decodes A: 10 + 10 = 20 ms, so C's first token comes at 40 ms and
    its last at 50 ms. Notice that A pays for C's admission: 10 tokens now take 110 ms, not 100.
    """
    requests = [(0.0, 10, 10), (0.0, 10, 2), (0.0, 10, 2)]
    a, b, c = simulate(requests, FLAT_10MS, batching="continuous", max_num_seqs=2)
    assert _finish_ms([a, b, c]) == [110, 20, 50]
    assert (c.admitted_s, c.first_token_s) == (pytest.approx(0.02), pytest.approx(0.04))


def test_continuous_joins_a_running_batch_mid_flight():
    """A runs alone from 0; B arrives at 25 ms and is admitted at the next step start, 30 ms.

    Step 30-50 ms prefills B and decodes A; step 50-60 ms finishes both.
    """
    a, b = simulate([(0.0, 10, 5), (0.025, 10, 2)], FLAT_10MS, batching="continuous")
    assert b.admitted_s == pytest.approx(0.03)
    assert _finish_ms([a, b]) == [60, 60]


def test_kv_capacity_limits_the_batch():
    """Each request reserves 10 + 5 = 15 tokens; a 40-token cache fits two at a time."""
    done = simulate([(0.0, 10, 5)] * 4, FLAT_10MS, batching="continuous", kv_capacity_tokens=40)
    assert _finish_ms(done) == [50, 50, 100, 100]


def test_the_queue_is_fifo_so_a_big_request_is_not_starved():
    """The big one (30 KV tokens) heads the queue; the small one behind it may not overtake."""
    requests = [(0.0, 10, 5), (0.001, 20, 10), (0.002, 2, 2)]
    first, big, small = simulate(requests, FLAT_10MS, kv_capacity_tokens=40)
    assert big.admitted_s == pytest.approx(first.finished_s)
    assert small.admitted_s >= big.admitted_s


def test_step_cost_is_prefill_of_newcomers_plus_decode_of_the_running():
    """Real profile, one request of 100 prompt tokens and 2 output tokens:

    step 1 = prefill([100]) = max(8.4149, 2.6114 + 0.025444·100 + 5.214e-7·100²) = 8.4149 ms
    step 2 = decode([101]) = 8.4149 + 0.008186 + 4.154e-5·101 = 8.4273 ms; total 16.8422 ms
    """
    (seq,) = simulate([(0.0, 100, 2)], H100_LLAMA3_8B)
    assert seq.first_token_s * 1000 == pytest.approx(8.4149)
    assert seq.finished_s * 1000 == pytest.approx(16.8422, abs=1e-4)


def test_requests_that_can_never_fit_are_refused_at_once():
    with pytest.raises(InvalidRequestError, match="maximum context length is 8192"):
        simulate([(0.0, 8000, 500)], H100_LLAMA3_8B)
    with pytest.raises(InvalidRequestError, match="cache holds only 100"):
        simulate([(0.0, 90, 20)], H100_LLAMA3_8B, kv_capacity_tokens=100)


@pytest.mark.parametrize("bad", [{"max_num_seqs": 0}, {"kv_capacity_tokens": 0}])
def test_limits_are_validated(bad):
    with pytest.raises(ValueError, match=">= 1"):
        simulate([], H100_LLAMA3_8B, **bad)
