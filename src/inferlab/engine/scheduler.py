"""The scheduler of the simulated accelerator: who computes which tokens in the next step.

Pure bookkeeping, no clock and no asyncio, so it is driven in real time by `SimulatedModel`
or in virtual time by `simulate()` (`virtual_time.py`), with the same decisions. As in vLLM v1
(`vllm/v1/core/sched/scheduler.py`, `Scheduler.schedule`) there is no "prefill phase" and
"decode phase": each sequence has `num_computed_tokens` of its tokens in the KV cache, and a
step computes some of the rest. One step:

    1. running sequences first, oldest first: a decode needs 1 token, an unfinished prompt
       a chunk; all draw on one budget of `max_num_batched_tokens` tokens;
    2. each needs KV blocks for its new tokens (`kv_blocks.py`); when the pool is empty, the
       newest running sequence is preempted (its blocks freed, recomputed later) and the
       scheduler tries again;
    3. then waiting sequences, first come first served, while budget, `max_num_seqs` and
       blocks last; with prefix caching their cached blocks need no compute
       (`prefix_cache.py`);
    4. the step costs one forward pass over all those tokens (`Profile.mixed_ms`); a sequence
       whose tokens are now all computed samples one more.
    5. with `num_scheduler_steps` N > 1 (vLLM 0.x), a step of decodes only runs N decode
       iterations at once and hands out N tokens a sequence together (`multi_step.py`).

With `enable_chunked_prefill=False` a step is either all prefill (whole prompts of newcomers)
or all decode, and waiting prompts go first: vLLM 0.x's default scheduler. Every running
sequence then waits out each newcomer's prefill, the stall that chunked prefill removes.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import InvalidRequestError
from .config import Batching, SchedulerConfig
from .kv_blocks import BlockPool, blocks_for
from .multi_step import extend_to_burst
from .prefix_cache import PrefixCacheStats, extend_block_hashes, longest_hit
from .profiles import Profile

_serials = itertools.count(1)


@dataclass(eq=False)
class Sequence:
    """One generation request as the scheduler sees it (times are simulated seconds)."""

    prompt_tokens: int
    max_tokens: int
    arrival_s: float = 0.0
    prompt_token_ids: list[int] | None = None  # None: unique ids, so it shares no prefix
    generated: int = 0
    queued_s: float | None = None  # reached the engine's queue, after the API server's work
    admitted_s: float | None = None  # first scheduled: the end of its queue time
    first_token_s: float | None = None
    last_token_s: float | None = None
    token_times_s: list[float] = field(default_factory=list)  # when each token was sampled
    finished_s: float | None = None
    finish_reason: str | None = None  # "length" or "stop", as in vLLM's request_success
    batch_id: int | None = None  # the step that admitted it: sequences sharing one rode together
    num_computed_tokens: int = 0  # tokens whose keys and values are in the cache
    num_cached_tokens: int = 0  # of those, how many the prefix cache gave it at admission
    preemptions: int = 0
    block_ids: list[int] = field(default_factory=list)  # its block table
    token_ids: list[int] = field(default_factory=list)  # prompt, then generated
    block_hashes: list[int] = field(default_factory=list)
    num_cached_blocks: int = 0  # leading blocks registered in the prefix cache
    _serial: int = field(default=0, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.prompt_token_ids is not None and len(self.prompt_token_ids) == self.prompt_tokens:
            self.token_ids = list(self.prompt_token_ids)
        else:  # subtle: negative ids never collide with a text's ids, nor with another's
            serial = next(_serials) << 24
            self.token_ids = [-(serial + i) for i in range(self.prompt_tokens)]
        self._serial = next(_serials) << 24  # numbers its generated tokens' ids

    @property
    def context_len(self) -> int:
        """Tokens it holds: prompt + generated (the last generated one not yet computed)."""
        return self.prompt_tokens + self.generated

    @property
    def kv_reserved(self) -> int:
        """The KV it needs at its longest: prompt + max_tokens."""
        return self.prompt_tokens + self.max_tokens

    @property
    def is_prefilling(self) -> bool:
        """Computing more than its one newest token: a prompt, or a recompute after preemption."""
        return self.generated == 0 or self.num_computed_tokens < self.context_len - 1

    def _append_token(self) -> None:
        self.generated += 1
        self.token_ids.append(-(self._serial + self.generated))


@dataclass
class Step:
    """What one step computes, and what it costs (`duration_s`, simulated seconds)."""

    index: int
    start_s: float
    duration_s: float
    scheduled: dict[Sequence, int]  # tokens computed this step, per sequence
    prefill: list[Sequence]  # sequences computing prompt (or recomputed) tokens
    decode: list[Sequence]  # sequences computing their newest token
    preempted: list[Sequence]  # sent back to the queue to make room for this step
    waiting: int  # still queued after scheduling
    kv_usage: float  # share of KV blocks in use after scheduling (vllm:kv_cache_usage_perc)
    # Those that sample a token at the end of this step: every decode, and each prefill whose
    # last chunk this is. A partial chunk yields nothing yet.
    sequences: list[Sequence] = field(default_factory=list)
    # The API server's output processing: the step's tokens reach their clients this long
    # after it ends (api_server.py). It runs beside the next step, so it delays no step.
    delivery_s: float = 0.0
    # GPU iterations this one plan runs: N for a multi-step burst (multi_step.py), else 1.
    # In a burst each sequence samples `scheduled[seq]` tokens, all delivered at its end.
    num_steps: int = 1

    @property
    def batch_size(self) -> int:
        return len(self.scheduled)

    @property
    def num_tokens(self) -> int:
        """Tokens computed in this step: what vLLM's `iteration_tokens_total` observes."""
        return sum(self.scheduled.values())


# ---------------------------------------------------------------------------------------------
# The scheduler


class Scheduler:
    """Schedules sequences step by step over a paged KV pool; see the module docstring."""

    def __init__(self, profile: Profile, config: SchedulerConfig | None = None):
        self.profile = profile
        self.config = config or SchedulerConfig()
        self.waiting: deque[Sequence] = deque()
        self.running: list[Sequence] = []
        self.steps_done = 0
        self.num_preemptions = 0
        self.prefix_cache_stats = PrefixCacheStats()
        # Static policy: the batch formed when the engine last ran empty. Its members are
        # admitted as the token budget allows; nobody else until all of them have finished.
        self._static_batch: set[Sequence] = set()
        self._check_config()
        self.pool = BlockPool(self._num_blocks())

    def _check_config(self) -> None:
        config = self.config
        if not config.enable_chunked_prefill and (
            config.max_num_batched_tokens < self.profile.max_model_len
        ):  # the same refusal as vLLM's SchedulerConfig: a whole prompt must fit one step
            raise ValueError(
                f"max_num_batched_tokens ({config.max_num_batched_tokens}) is smaller than "
                f"max_model_len ({self.profile.max_model_len}) with chunked prefill disabled: "
                "a long prompt could never be scheduled. Raise it, or enable chunked prefill."
            )

    def _num_blocks(self) -> int:
        config = self.config
        if config.num_gpu_blocks_override is not None:
            return config.num_gpu_blocks_override
        tokens = config.kv_capacity_tokens or self.profile.kv_pool_tokens(
            config.gpu_memory_utilization
        )
        if tokens < config.block_size:
            raise ValueError(
                f"no room for the KV cache: {tokens} tokens at gpu_memory_utilization="
                f"{config.gpu_memory_utilization}; raise it"
            )
        return tokens // config.block_size

    def configure(self, **changes: Any) -> None:
        """Change settings by name (`SchedulerConfig`'s fields). The batching policy and the
        limits apply from the next step; the pool's shape only while nothing holds a block."""
        config = replace(self.config, **changes)
        pool_fields: tuple[str, ...] = ("block_size", "gpu_memory_utilization")
        pool_fields += ("kv_capacity_tokens", "num_gpu_blocks_override", "enable_prefix_caching")
        reshape = any(getattr(config, f) != getattr(self.config, f) for f in pool_fields)
        if reshape and self.pool.num_free != self.pool.num_usable:
            raise RuntimeError("the KV pool can be resized only while no sequence is running")
        previous, self.config = self.config, config
        try:
            self._check_config()
        except ValueError:
            self.config = previous
            raise
        if reshape:
            self.pool = BlockPool(self._num_blocks())

    # --- convenience views ----------------------------------------------------------------

    @property
    def batching(self) -> Batching:
        return self.config.batching

    @property
    def max_num_seqs(self) -> int:
        return self.config.max_num_seqs

    @property
    def block_size(self) -> int:
        return self.config.block_size

    @property
    def kv_capacity(self) -> int:
        """Tokens the whole pool holds."""
        return self.pool.num_usable * self.config.block_size

    @property
    def kv_used_tokens(self) -> int:
        return (self.pool.num_usable - self.pool.num_free) * self.config.block_size

    def reset_prefix_cache(self) -> bool:
        """Empty the prefix cache (vLLM's POST /reset_prefix_cache); False while in use."""
        done = self.pool.reset_prefix_cache()
        self.prefix_cache_stats.resets += done
        return done

    # --- the caller's side ----------------------------------------------------------------

    def add(self, seq: Sequence, now_s: float | None = None) -> None:
        """Queue a sequence (at `now_s`, its arrival if None), or raise InvalidRequestError if it
        could never run."""
        self.check(seq)
        seq.queued_s = seq.arrival_s if now_s is None else now_s
        self.waiting.append(seq)

    def check(self, seq: Sequence) -> None:
        """Raise InvalidRequestError if `seq` exceeds the context window or the whole KV pool."""
        limit = self.profile.max_model_len
        if seq.max_tokens < 1:
            raise InvalidRequestError(f"max_tokens must be >= 1, got {seq.max_tokens}")
        if seq.kv_reserved > limit:
            raise InvalidRequestError(
                f"This model's maximum context length is {limit} tokens. However, you requested "
                f"{seq.kv_reserved} tokens ({seq.prompt_tokens} in the prompt, {seq.max_tokens} "
                "in the completion). Please reduce the prompt or max_tokens.",
                code="context_length_exceeded",
            )
        if seq.kv_reserved > self.kv_capacity:
            raise InvalidRequestError(
                f"the request needs {seq.kv_reserved} KV-cache tokens but the cache holds only "
                f"{self.kv_capacity}; reduce the prompt or max_tokens"
            )

    def remove(self, seq: Sequence) -> None:
        """Forget a sequence wherever it is (its caller went away): vLLM's abort."""
        if seq in self.running:
            self.running.remove(seq)
            self._free(seq)
        elif seq in self.waiting:
            self.waiting.remove(seq)
            self._free(seq)

    def has_work(self) -> bool:
        return bool(self.waiting or self.running)

    # --- blocks -----------------------------------------------------------------------------

    def _allocate(self, seq: Sequence, new_tokens: int) -> bool:
        """Give `seq` the blocks its next `new_tokens` need; False if the pool is short."""
        needed = blocks_for(seq.num_computed_tokens + new_tokens, self.block_size)
        needed -= len(seq.block_ids)
        if needed > self.pool.num_free:
            return False
        if needed > 0:
            seq.block_ids += self.pool.allocate(needed)
        return True

    def _free(self, seq: Sequence) -> None:
        self.pool.free(reversed(seq.block_ids))  # tail first: evicted before the shared head
        seq.block_ids = []
        seq.num_cached_blocks = 0

    def _preempt(self, seq: Sequence) -> None:
        """Recompute preemption (vLLM's default): drop its KV, queue it first in line. Its
        generated tokens stay; it prefills prompt + generated again when it comes back."""
        self.running.remove(seq)
        self._free(seq)
        seq.num_computed_tokens = 0
        seq.preemptions += 1
        self.num_preemptions += 1
        self.waiting.appendleft(seq)

    def _prefix_hit(self, seq: Sequence) -> None:
        """Start `seq` on its cached blocks, if prefix caching is on and any are cached."""
        if not self.config.enable_prefix_caching or seq.num_computed_tokens:
            return
        extend_block_hashes(seq.block_hashes, seq.token_ids, self.block_size)
        hits = longest_hit(self.pool, seq.block_hashes, seq.context_len, self.block_size)
        self.pool.touch(hits)
        seq.block_ids = list(hits)
        seq.num_cached_blocks = len(hits)
        seq.num_computed_tokens = len(hits) * self.block_size

    # --- one step -----------------------------------------------------------------------------

    def _may_admit(self, seq: Sequence) -> bool:
        if self.batching is Batching.NONE:
            return not self.running
        if self.batching is Batching.STATIC:
            return seq in self._static_batch
        return True

    def _form_static_batch(self) -> None:
        """When the engine is empty, the next `max_num_seqs` waiting form the next batch."""
        if self.running or any(seq in self._static_batch for seq in self.waiting):
            return
        self._static_batch = set(list(self.waiting)[: self.max_num_seqs])

    def _schedule_running(
        self, budget: int, scheduled: dict[Sequence, int]
    ) -> tuple[int, list[Sequence]]:
        preempted: list[Sequence] = []
        index = 0
        block_size = self.block_size
        while index < len(self.running) and budget > 0:
            seq = self.running[index]
            new_tokens = min(seq.prompt_tokens + seq.generated - seq.num_computed_tokens, budget)
            # the common case, on the hot path: its last block still has room
            fits = seq.num_computed_tokens + new_tokens <= len(seq.block_ids) * block_size
            while not fits and not self._allocate(seq, new_tokens):
                victim = self.running[-1]  # the newest: FCFS preempts from the back
                budget += scheduled.pop(victim, 0)
                self._preempt(victim)
                preempted.append(victim)
                if victim is seq:
                    break
            else:
                scheduled[seq] = new_tokens
                budget -= new_tokens
                index += 1
        return budget, preempted

    def _schedule_waiting(self, now_s: float, budget: int, scheduled: dict[Sequence, int]) -> int:
        chunked = self.config.enable_chunked_prefill
        while self.waiting and budget > 0 and len(self.running) < self.max_num_seqs:
            seq = self.waiting[0]
            if not self._may_admit(seq):
                break
            self._prefix_hit(seq)
            new_tokens = seq.context_len - seq.num_computed_tokens
            if chunked:
                new_tokens = min(new_tokens, budget)
            if new_tokens > budget or not self._allocate(seq, new_tokens):
                self._free(seq)  # hand back its prefix hits; it tries again next step
                seq.num_computed_tokens = 0
                break
            self.waiting.popleft()
            self._count_prefix_lookup(seq)
            if seq.admitted_s is None:
                seq.admitted_s, seq.batch_id = now_s, self.steps_done
            self.running.append(seq)
            scheduled[seq] = new_tokens
            budget -= new_tokens
            if self.batching is Batching.NONE:
                break
        return budget

    def _count_prefix_lookup(self, seq: Sequence) -> None:
        # Counted at admission, and only a request's first: vLLM keeps the lookups of a
        # preempted request coming back apart (`preempted_queries`, not exported to /metrics;
        # vllm/v1/metrics/stats.py PrefixCacheStats.record), so its hit rate is new requests'.
        if self.config.enable_prefix_caching and not seq.preemptions:
            self.prefix_cache_stats.queries += seq.context_len
            self.prefix_cache_stats.hits += seq.num_computed_tokens
            seq.num_cached_tokens = seq.num_computed_tokens

    def plan_step(self, now_s: float) -> Step | None:
        """Choose this step's tokens and price them; None when there is nothing to do."""
        if self.batching is Batching.STATIC:
            self._form_static_batch()
        budget = self.config.max_num_batched_tokens
        scheduled: dict[Sequence, int] = {}
        preempted: list[Sequence] = []
        if self.config.enable_chunked_prefill:
            budget, preempted = self._schedule_running(budget, scheduled)
            if not preempted:  # as vLLM: no newcomers in a step that had to preempt
                self._schedule_waiting(now_s, budget, scheduled)
        else:  # vLLM 0.x: prompts first, in a step of their own; decodes wait
            self._schedule_waiting(now_s, budget, scheduled)
            if not scheduled:
                budget, preempted = self._schedule_running(budget, scheduled)
        if not scheduled:
            return None
        prefill, decode, emitting, decode_lens = [], [], [], []
        for seq, new_tokens in scheduled.items():  # one pass: this runs for every step
            remaining = seq.prompt_tokens + seq.generated - seq.num_computed_tokens
            if seq.generated and remaining == 1:
                decode.append(seq)
                decode_lens.append(seq.prompt_tokens + seq.generated)
            else:
                prefill.append(seq)
            if new_tokens >= remaining:
                emitting.append(seq)
        chunks = [(scheduled[seq], seq.num_computed_tokens) for seq in prefill]
        cost_ms = self.profile.step_overhead_ms + self.profile.mixed_ms(chunks, decode_lens)
        step = Step(
            index=self.steps_done,
            start_s=now_s,
            duration_s=cost_ms / 1000.0,
            scheduled=scheduled,
            prefill=prefill,
            decode=decode,
            preempted=preempted,
            waiting=len(self.waiting),
            kv_usage=self.pool.usage,
            sequences=emitting,
            delivery_s=self.profile.api_server.delivery_s(len(emitting)),
        )
        return extend_to_burst(self, step)  # vLLM 0.x's --num-scheduler-steps

    def finish_step(
        self, step: Step, stopped_early: Iterable[Sequence] | Mapping[Sequence, int] = ()
    ) -> list[Sequence]:
        """Credit every sequence of `step` with its computed tokens, and one sampled token where
        its tokens are all computed; return those that are now done.

        `stopped_early` are sequences whose token this step was end-of-sequence or completed a
        stop string: they leave even though max_tokens is not reached. In a multi-step burst
        it maps each to the tokens it took before it stopped.
        """
        end_s = step.start_s + step.duration_s + step.delivery_s  # when its clients get it
        early: dict[Sequence, int] = (
            dict(stopped_early)
            if isinstance(stopped_early, Mapping)
            else dict.fromkeys(stopped_early, 1)
        )
        emitting = set(step.sequences)
        running = set(self.running)  # subtle: a set, or this loop is O(batch²) every step
        caching = self.config.enable_prefix_caching
        done: list[Sequence] = []
        for seq, new_tokens in step.scheduled.items():
            if seq not in running:
                continue  # removed while the step ran (its caller went away)
            if step.num_steps > 1:  # a burst: all its tokens at once (multi_step.py)
                for _ in range(early.get(seq, new_tokens)):
                    seq._append_token()
                    seq.token_times_s.append(end_s)
                seq.num_computed_tokens = seq.context_len - 1  # all but the newest
                seq.last_token_s = end_s
                if caching:
                    self._cache_blocks(seq)
            else:
                seq.num_computed_tokens += new_tokens
                if caching:
                    self._cache_blocks(seq)
                if seq not in emitting:
                    continue  # a chunk of a longer prompt: no token yet
                seq._append_token()
                seq.first_token_s = end_s if seq.first_token_s is None else seq.first_token_s
                seq.last_token_s = end_s
                seq.token_times_s.append(end_s)
            if seq.generated >= seq.max_tokens or seq in early:
                seq.finished_s = end_s
                seq.finish_reason = "stop" if seq in early else "length"
                self._free(seq)
                done.append(seq)
        if done:
            finished = set(done)
            self.running = [seq for seq in self.running if seq not in finished]
        self.steps_done += 1
        return done

    def _cache_blocks(self, seq: Sequence) -> None:
        """Register the blocks this step filled (vLLM's `cache_full_blocks`)."""
        if not self.config.enable_prefix_caching:
            return
        full = min(seq.num_computed_tokens // self.block_size, len(seq.block_ids))
        if full <= seq.num_cached_blocks:
            return
        extend_block_hashes(seq.block_hashes, seq.token_ids, self.block_size)
        for index in range(seq.num_cached_blocks, full):
            self.pool.cache(seq.block_ids[index], seq.block_hashes[index])
        seq.num_cached_blocks = full
