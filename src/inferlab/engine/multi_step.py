"""Multi-step scheduling (vLLM 0.x's `--num-scheduler-steps N`): plan once, decode N times.

vLLM 0.6 added it to hide the CPU's work between GPU steps: when a step holds only decodes, the
scheduler plans it once and the GPU runs N decode iterations back to back, with KV slots
reserved for all N tokens up front (`num_lookahead_slots = N - 1`); the outputs are processed,
and streamed, once at the end (vllm/engine/llm_engine.py, `multi_step_stream_outputs`). So:

- a sequence's tokens leave in bursts of N: inter-token latency (the gaps between chunks a
  client sees) is ~0 inside a burst and ~N steps between bursts, while TPOT (the mean time per
  token) is unchanged, or a little lower, since the per-step CPU overhead is paid once a burst;
- a newcomer waits for the burst to end before its prefill can start: TTFT pays.

vLLM V1 has no such setting: its scheduler and the GPU overlap by design (async scheduling),
so 1, the default, is vLLM V1's behaviour. Left out: a burst beside a prefill (vLLM's
multi-step chunked prefill), and the sampled tokens a sequence wastes after it stops mid-burst
are not charged as extra work.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # subtle: scheduler.py imports this module, so no import at run time
    from .scheduler import Scheduler, Step


def extend_to_burst(scheduler: Scheduler, step: Step) -> Step:
    """Make a pure-decode `step` a burst of `num_scheduler_steps` decodes, if every sequence
    gets the KV blocks for them; any other step comes back as it was.

    A sequence with fewer tokens left than the burst takes only those (it finishes inside it).
    The burst costs the step overhead once plus one decode step per iteration, each over
    contexts one token longer than the last.
    """
    steps = scheduler.config.num_scheduler_steps
    if steps == 1 or step.prefill or step.preempted or not step.decode:
        return step
    tokens = {seq: min(steps, seq.max_tokens - seq.generated) for seq in step.decode}
    if not all(scheduler._allocate(seq, count) for seq, count in tokens.items()):
        return step  # no lookahead slots: one ordinary step (vLLM would preempt instead)
    profile = scheduler.profile
    contexts = [seq.context_len for seq in step.decode]
    cost_ms = profile.step_overhead_ms
    for iteration in range(steps):
        alive = [ctx + iteration for seq, ctx in zip(step.decode, contexts, strict=True)
                 if tokens[seq] > iteration]  # fmt: skip
        cost_ms += profile.decode_ms(alive)
    step.scheduled = tokens
    step.num_steps = steps
    step.duration_s = cost_ms / 1000.0
    step.delivery_s = profile.api_server.delivery_s(sum(tokens.values()))
    return step
