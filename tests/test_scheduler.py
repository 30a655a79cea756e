"""The batching policies, pinned exactly on virtual time.

Most tests use a profile with round numbers: every step costs 10 ms, whatever it holds,
because prefill and decode are both just the 10 ms floor of reading the weights. Then a
request of N output tokens alone takes N steps = N x 10 ms, and the timelines are easy to
check by hand. It has no API-server cost either (`with_api_server_cost(0)`): these tests pin
the engine's decisions; tests/test_api_server.py pins the front end's cost.
"""

import pytest

from inferlab import InvalidRequestError, simulate
from inferlab.engine import Scheduler, SchedulerConfig, Sequence
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
).with_api_server_cost(0)


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


def test_a_static_batch_larger_than_the_token_budget_still_rides_together():
    """8 prompts of 10 tokens, a 32-token budget: the batch of 8 is admitted over three steps
    (its prefills chunked), and the ninth request waits until all eight are done."""
    done = simulate([(0.0, 10, 3)] * 9, FLAT_10MS, batching="static", max_num_seqs=8,
                    max_num_batched_tokens=32)  # fmt: skip
    first_eight = done[:8]
    assert max(seq.admitted_s for seq in first_eight) < min(s.finished_s for s in first_eight)
    assert done[8].admitted_s == pytest.approx(max(seq.finished_s for seq in first_eight))


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

    With chunked prefill (the default) that step is one pass that decodes A and prefills C: 10 ms,
    so C's first token comes at 30 ms and its last at 40 ms, and A finishes on time at 100 ms.
    """
    requests = [(0.0, 10, 10), (0.0, 10, 2), (0.0, 10, 2)]
    a, b, c = simulate(requests, FLAT_10MS, batching="continuous", max_num_seqs=2)
    assert _finish_ms([a, b, c]) == [100, 20, 40]
    assert (c.admitted_s, c.first_token_s) == (pytest.approx(0.02), pytest.approx(0.03))


def test_without_chunked_prefill_a_newcomer_stalls_the_running():
    """vLLM 0.x: step 20-30 ms prefills C alone and A gets no token, so A's 10 tokens take 11
    steps (110 ms): every running sequence pays for each newcomer's prefill."""
    requests = [(0.0, 10, 10), (0.0, 10, 2), (0.0, 10, 2)]
    a, b, c = simulate(requests, FLAT_10MS, max_num_seqs=2, enable_chunked_prefill=False)
    assert _finish_ms([a, b, c]) == [110, 20, 40]


def test_continuous_joins_a_running_batch_mid_flight():
    """A runs alone from 0; B arrives at 25 ms and is admitted at the next step start, 30 ms.

    Step 30-40 ms decodes A and prefills B in one pass; step 40-50 ms finishes both.
    """
    a, b = simulate([(0.0, 10, 5), (0.025, 10, 2)], FLAT_10MS, batching="continuous")
    assert b.admitted_s == pytest.approx(0.03)
    assert _finish_ms([a, b]) == [50, 50]


def test_kv_blocks_are_allocated_as_tokens_arrive_and_the_newest_is_preempted():
    """A 52-token pool of 4-token blocks (13 blocks, 12 of them usable: block 0 is the null
    block, as in vLLM); four requests of 10 + 5 tokens.

    All four start: 10 prompt tokens take 3 blocks each, the pool is full. The step at 30 ms
    computes each one's 13th token, which needs a 4th block, so D, the newest, is preempted and
    its 3 blocks go to the others. A, B and C finish at 50 ms; D then recomputes its 10 + 3
    tokens in one step (50-60 ms) and samples its last token at 70 ms.
    """
    done = simulate([(0.0, 10, 5)] * 4, FLAT_10MS, kv_capacity_tokens=52, block_size=4)
    assert _finish_ms(done) == [50, 50, 50, 70]
    assert [seq.preemptions for seq in done] == [0, 0, 0, 1]


def test_the_queue_is_fifo_so_a_big_request_is_not_starved():
    """The big one (30 KV tokens) heads the queue; the small one behind it may not overtake."""
    requests = [(0.0, 10, 5), (0.001, 20, 10), (0.002, 2, 2)]
    first, big, small = simulate(requests, FLAT_10MS, kv_capacity_tokens=48)  # 2 usable blocks
    assert small.admitted_s >= big.admitted_s


def test_the_token_budget_chunks_a_long_prompt():
    """A 1000-token prompt with a 256-token budget: chunks of 256, 256, 256, 232, one a step,
    so its first token comes after 4 steps (40 ms), not in one."""
    (seq,) = simulate([(0.0, 1000, 1)], FLAT_10MS, max_num_batched_tokens=256)
    assert seq.first_token_s == pytest.approx(0.04)


def test_chunked_steps_decode_beside_a_long_prefill():
    """Real profile. A decodes alone; B (3000 tokens) arrives at 50 ms. With a 512-token budget A
    keeps a token every step (mixed steps of 511 prefill + 1 decode token, ~25 ms each); without
    chunked prefill A gets nothing until B's whole prefill (~86 ms) is done."""
    requests = [(0.0, 10, 50), (0.05, 3000, 5)]
    chunked = simulate(requests, H100_LLAMA3_8B, max_num_batched_tokens=512)
    whole = simulate(requests, H100_LLAMA3_8B, enable_chunked_prefill=False)
    assert chunked[1].first_token_s > whole[1].first_token_s  # TTFT pays for chunking ...
    gap_ms = {name: _longest_gap_ms(run[0]) for name, run in (("c", chunked), ("w", whole))}
    assert gap_ms["c"] < 30 < 80 < gap_ms["w"]  # ... and ITL gains


def _longest_gap_ms(seq):
    times = seq.token_times_s
    return max(later - earlier for earlier, later in zip(times, times[1:], strict=False)) * 1000


def test_step_cost_is_prefill_of_newcomers_plus_decode_of_the_running():
    """Real profile, one request of 100 prompt tokens and 2 output tokens:

    step 1 = prefill([100]) = max(8.4149, 2.6114 + 0.025444·100 + 5.214e-7·100²) = 8.4149 ms
    step 2 = decode([101]) = 8.4149 + 0.008186 + 4.154e-5·101 = 8.4273 ms; total 16.8422 ms
    """
    (seq,) = simulate([(0.0, 100, 2)], H100_LLAMA3_8B, api_server_cost=0)
    assert seq.first_token_s * 1000 == pytest.approx(8.4149)
    assert seq.finished_s * 1000 == pytest.approx(16.8422, abs=1e-4)


def test_requests_that_can_never_fit_are_refused_at_once():
    with pytest.raises(InvalidRequestError, match="maximum context length is 8192"):
        simulate([(0.0, 8000, 500)], H100_LLAMA3_8B)
    with pytest.raises(InvalidRequestError, match="cache holds only 80"):
        # 6 blocks of 16, one of them the null block
        simulate([(0.0, 90, 20)], H100_LLAMA3_8B, kv_capacity_tokens=100)


@pytest.mark.parametrize(
    "bad",
    [
        {"max_num_seqs": 0},
        {"kv_capacity_tokens": 0},
        {"max_num_batched_tokens": 0},
        {"block_size": 0},
        {"num_gpu_blocks_override": 0},
    ],
)
def test_limits_are_validated(bad):
    with pytest.raises(ValueError, match=">= 1"):
        simulate([], H100_LLAMA3_8B, **bad)


@pytest.mark.parametrize("utilization", [0.0, 1.5, float("nan")])
def test_gpu_memory_utilization_is_a_share(utilization):
    with pytest.raises(ValueError, match="gpu_memory_utilization"):
        simulate([], H100_LLAMA3_8B, gpu_memory_utilization=utilization)


def test_without_chunked_prefill_the_budget_must_hold_a_whole_prompt():
    with pytest.raises(ValueError, match="smaller than max_model_len"):
        simulate([], H100_LLAMA3_8B, enable_chunked_prefill=False, max_num_batched_tokens=2048)


# ---------------------------------------------------------------------------------------------
# The KV pool and prefix caching


def test_the_pool_is_sized_from_gpu_memory_as_vllm_sizes_it():
    """(79.6 GiB × 0.9 - 14.96 GiB of weights - 1.5 GiB of activations) / 128 KiB a token
    = 452,034 tokens = 28,252 blocks of 16; at 0.5 only (39.8 - 16.46) GiB are left, less
    the part block and the null block."""
    scheduler = Scheduler(H100_LLAMA3_8B)
    assert scheduler.pool.num_blocks == 452_034 // 16
    half = Scheduler(H100_LLAMA3_8B, SchedulerConfig(gpu_memory_utilization=0.5))
    assert half.kv_capacity == pytest.approx((39.8 - 16.46) * 2**30 / 131_072, abs=32)


def test_less_memory_means_preemptions():
    """64 requests of 500 + 500 tokens need 64 × 1000 = 64,000 KV tokens at their longest.
    A 0.3 share leaves (23.88 - 16.46) GiB = 60,784 tokens: they start, then some are
    preempted and recomputed; at 0.9 none is."""
    requests = [(0.0, 500, 500)] * 64
    roomy = Scheduler(H100_LLAMA3_8B)
    simulate(requests, H100_LLAMA3_8B, scheduler=roomy)
    tight = Scheduler(H100_LLAMA3_8B, SchedulerConfig(gpu_memory_utilization=0.3))
    simulate(requests, H100_LLAMA3_8B, scheduler=tight)
    assert (roomy.num_preemptions, tight.num_preemptions > 0) == (0, True)


SYSTEM = "You are a careful assistant who answers in short sentences. " * 8  # 11 × 8 tokens


def test_a_shared_prefix_is_computed_once():
    """An 88-token system prompt + a 5-token question = 93 tokens, 5 full blocks of 16.

    The first request misses; the second, after it, finds the 5 blocks (80 tokens) cached and
    prefills only 13 tokens. Queries count every prompt token (93 + 93), hits the 80.
    """
    requests = [(0.0, SYSTEM + "What is a token?", 2), (1.0, SYSTEM + "What is a batch?", 2)]
    scheduler = Scheduler(H100_LLAMA3_8B, SchedulerConfig(enable_prefix_caching=True))
    first, second = simulate(requests, H100_LLAMA3_8B, scheduler=scheduler)
    assert (first.num_cached_tokens, second.num_cached_tokens) == (0, 80)
    stats = scheduler.prefix_cache_stats
    assert (stats.queries, stats.hits) == (186, 80)


def test_the_second_run_of_a_benchmark_hits_the_cache_until_it_is_reset():
    """The same 20 distinct prompts twice on one server: the second run finds every full block
    cached, so its TTFT is lower. After reset_prefix_cache() it is back to a cold run. The pure
    engine's TTFT (no API-server cost, which the cache cannot save) falls by more than 3x."""
    prompts = [(i * 0.1, f"Question {i}: " + SYSTEM * 20, 4) for i in range(20)]
    engine_only = H100_LLAMA3_8B.with_api_server_cost(0)
    scheduler = Scheduler(engine_only, SchedulerConfig(enable_prefix_caching=True))

    def mean_ttft_ms():
        done = simulate(prompts, H100_LLAMA3_8B, scheduler=scheduler)
        return sum(seq.first_token_s - seq.arrival_s for seq in done) / len(done) * 1000

    cold, warm = mean_ttft_ms(), mean_ttft_ms()
    assert scheduler.reset_prefix_cache()
    assert warm < cold / 3
    assert mean_ttft_ms() == pytest.approx(cold, rel=0.01)


def test_the_cache_cannot_be_reset_while_blocks_are_in_use():
    scheduler = Scheduler(H100_LLAMA3_8B, SchedulerConfig(enable_prefix_caching=True))
    scheduler.add(Sequence(prompt_tokens=40, max_tokens=4))
    scheduler.plan_step(0.0)
    assert scheduler.reset_prefix_cache() is False


def test_free_cached_blocks_are_evicted_least_recently_used_first():
    """A pool of 4 blocks of 2 tokens (and block 0, the null block). A (5 tokens) caches blocks
    1 and 2 and frees them, then B (3 tokens) caches block 4. The free queue is now
    [2, 1, 3, 4]: A's blocks first (freed earlier), and A's tail before its head. C (1 token)
    takes block 2: A's first block survives, so A hits 2 tokens when it comes back."""
    config = SchedulerConfig(enable_prefix_caching=True, num_gpu_blocks_override=5, block_size=2)
    scheduler = Scheduler(FLAT_10MS, config)
    runs = {}
    for name, ids in (("a", [1, 2, 3, 4, 5]), ("b", [7, 8, 9]), ("c", [11])):
        (runs[name],) = simulate([(0.0, ids, 1)], FLAT_10MS, scheduler=scheduler)
    assert scheduler.pool.block_hash[2] is None  # evicted for C
    assert scheduler.pool.block_hash[4] is not None  # B's block: freed later, still cached
    (a_again,) = simulate([(0.0, [1, 2, 3, 4, 5], 1)], FLAT_10MS, scheduler=scheduler)
    assert (runs["a"].num_cached_tokens, a_again.num_cached_tokens) == (0, 2)


def test_block_zero_is_the_null_block_and_holds_no_tokens():
    """vLLM's BlockPool takes block 0 off the free queue as its null block: a pool of 5 blocks
    of 4 tokens holds 16 tokens, and its usage counts against 4 blocks."""
    scheduler = Scheduler(FLAT_10MS, SchedulerConfig(num_gpu_blocks_override=5, block_size=4))
    assert (scheduler.pool.num_blocks, scheduler.kv_capacity) == (5, 16)
    scheduler.pool.allocate(2)
    assert scheduler.pool.usage == 0.5


def test_a_preempted_request_coming_back_is_not_a_second_prefix_cache_query():
    """The preemption story above, with prefix caching on: D is preempted and recomputed, but
    the queries count each prompt once (vLLM files re-admissions under preempted_queries)."""
    scheduler = Scheduler(
        FLAT_10MS,
        SchedulerConfig(kv_capacity_tokens=52, block_size=4, enable_prefix_caching=True),
    )
    done = simulate([(0.0, 10, 5)] * 4, FLAT_10MS, scheduler=scheduler)
    assert sum(seq.preemptions for seq in done) == 1
    assert scheduler.prefix_cache_stats.queries == 4 * 10
