"""`simulate()`: the scheduler run in virtual time, the reference for every live measurement.

The same `Scheduler` the server's step loop drives, but the clock jumps from one step's end to
the next, so a run of a thousand requests takes a second of CPU and gives the same answer
every time. Each request first passes the API server (`api_server.py`): it joins the engine's
queue `before_engine_s` after it arrived, as on the live server. Left out: the wall clock, and
so a server that falls behind; `SimulatedModel` is the live twin.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from .config import Batching, SchedulerConfig
from .profiles import Profile
from .scheduler import Scheduler, Sequence
from .text import token_ids

Prompt = int | str | list[int]


def _sequence(arrival_s: float, prompt: Prompt, output_tokens: int) -> Sequence:
    # a prompt's text becomes the ids prefix caching hashes
    ids = token_ids(prompt) if isinstance(prompt, str) else None
    if isinstance(prompt, list):
        ids = list(prompt)
    count = len(ids) if ids is not None else int(prompt)  # type: ignore[arg-type]
    return Sequence(count, output_tokens, arrival_s, prompt_token_ids=ids)


def simulate(
    requests: Iterable[tuple[float, Prompt, int]],
    profile: Profile,
    *,
    batching: Batching | str = Batching.CONTINUOUS,
    max_num_seqs: int = 256,
    max_num_batched_tokens: int = 8192,
    enable_chunked_prefill: bool = True,
    block_size: int = 16,
    gpu_memory_utilization: float = 0.9,
    enable_prefix_caching: bool = False,
    kv_capacity_tokens: int | None = None,
    num_gpu_blocks_override: int | None = None,
    api_server_cost: float = 1.0,
    num_scheduler_steps: int = 1,
    scheduler: Scheduler | None = None,
) -> list[Sequence]:
    """Run the scheduler in virtual time over `(arrival_s, prompt, output_tokens)` tuples.

    `prompt` is a token count, a text (its words become token ids, so equal beginnings share
    prefix-cache blocks) or a list of token ids. The settings are the server's, under vLLM's
    names; `api_server_cost` scales the front end's work (`api_server.py`; 0: the pure engine)
    and `num_scheduler_steps` decodes in bursts (`multi_step.py`; 1, as vLLM V1).
    Returns one finished `Sequence` per request, in input order, with its admission,
    first-token and finish times. Every request generates exactly `output_tokens` tokens (as
    with vLLM's `ignore_eos`), so the result is a pure function of the inputs. Pass a
    `scheduler` to keep its prefix cache (and counters) across calls, as a live server would;
    its profile then prices the steps.

        simulate([(0, 100, 2)], profile, api_server_cost=0) -> one Sequence,
            first_token_s = prefill(100) ms, finished_s = that + decode([101]) ms
    """
    if scheduler is None:
        config = SchedulerConfig(
            batching=Batching(batching),
            max_num_seqs=max_num_seqs,
            max_num_batched_tokens=max_num_batched_tokens,
            enable_chunked_prefill=enable_chunked_prefill,
            block_size=block_size,
            gpu_memory_utilization=gpu_memory_utilization,
            enable_prefix_caching=enable_prefix_caching,
            kv_capacity_tokens=kv_capacity_tokens,
            num_gpu_blocks_override=num_gpu_blocks_override,
            num_scheduler_steps=num_scheduler_steps,
        )
        scheduler = Scheduler(profile.with_api_server_cost(api_server_cost), config)
    api_server = scheduler.profile.api_server
    sequences = [_sequence(*request) for request in requests]
    # 1. each request reaches the engine's queue once the API server has tokenized it, in the
    #    order they arrived (sorted() is stable: ties keep the order given)
    pending: deque[tuple[float, Sequence]] = deque()
    for seq in sorted(sequences, key=lambda seq: seq.arrival_s):
        previous_s = pending[-1][0] if pending else 0.0
        pending.append((api_server.queued_s(seq.arrival_s, seq.prompt_tokens, previous_s), seq))
    now_s = 0.0
    while pending or scheduler.has_work():
        # 2. queue what has arrived by now, 3. run one step, or jump to the next arrival
        while pending and pending[0][0] <= now_s:
            queued_s, seq = pending.popleft()
            scheduler.add(seq, queued_s)
        step = scheduler.plan_step(now_s)
        if step is None:
            now_s = pending[0][0]
            continue
        now_s = step.start_s + step.duration_s
        scheduler.finish_step(step)
    return sequences
