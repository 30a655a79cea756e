"""The engine's knobs, under vLLM's names, as one frozen settings object.

Every field is a `vllm serve` flag of the same name (`--max-num-batched-tokens`, ...), so a
learner can read a vLLM launch command and set the simulator the same way. Defaults follow
vLLM v1 on an 80 GB GPU (`vllm/engine/arg_utils.py`, `_set_default_args_v1`: a token budget
of 8192 for the API server, chunked prefill on), except two, on purpose:

- `max_num_seqs` is 256 (vLLM uses 1024 on an 80 GB GPU): the course's lessons 04 and 07
  compare batch sizes against that figure.
- `enable_prefix_caching` is off (vLLM v1 turns it on): lesson 10 turns it on and shows why a
  benchmark that repeats its prompts measures the cache, not the engine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum


class Batching(str, Enum):
    """How the scheduler admits waiting sequences (lessons 04 and 07 compare them)."""

    NONE = "none"  # one sequence at a time
    STATIC = "static"  # a new batch only when the whole previous one has finished
    CONTINUOUS = "continuous"  # at every step, as vLLM does


@dataclass(frozen=True)
class SchedulerConfig:
    """What the scheduler may do each step.

    >>> SchedulerConfig(max_num_batched_tokens=2048).enable_chunked_prefill
    True
    """

    batching: Batching = Batching.CONTINUOUS
    max_num_seqs: int = 256  # sequences in the running batch at most
    max_num_batched_tokens: int = 8192  # tokens computed per step, decodes and prefills
    enable_chunked_prefill: bool = True  # off: prefill-only steps, as vLLM 0.x scheduled them
    block_size: int = 16  # tokens per KV block (vLLM's default on CUDA)
    gpu_memory_utilization: float = 0.9  # share of GPU memory vLLM may use, weights included
    enable_prefix_caching: bool = False
    kv_capacity_tokens: int | None = None  # the pool in tokens; None: sized from memory
    num_gpu_blocks_override: int | None = None  # vLLM's flag: the pool in blocks, for tests
    num_scheduler_steps: int = 1  # vLLM 0.x's multi-step decoding (multi_step.py); V1: 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "batching", Batching(self.batching))
        for name in ("max_num_seqs", "max_num_batched_tokens", "block_size", "num_scheduler_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be >= 1, got {value!r}")
        for name in ("kv_capacity_tokens", "num_gpu_blocks_override"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or value < 1):
                raise ValueError(f"{name} must be >= 1, got {value!r}")
        utilization = self.gpu_memory_utilization
        if not (isinstance(utilization, int | float) and 0 < utilization <= 1):
            raise ValueError(f"gpu_memory_utilization must be in (0, 1], got {utilization!r}")
        if math.isnan(utilization):
            raise ValueError("gpu_memory_utilization must be a number, got nan")
