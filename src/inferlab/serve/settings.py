"""The model server's settings: the engine's knobs (vLLM's names) and the HTTP server's.

    inferlab serve --max-num-seqs 64 --batching static --time-scale 0.1
    ModelServer(ServerSettings(max_num_seqs=64, batching="static", time_scale=0.1))

Each flag of `inferlab serve` is one field here, with the same name; the engine knobs can also
change while the server runs (`PUT /admin/engine`, or `ModelServer.configure`).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..engine.config import Batching
from ..engine.profiles import DEFAULT_PROFILE, PROFILES
from ._settings import HttpLimits, setting

DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024
# The most tokens one request may ask for: prompts x n x max_tokens. Past it a request is a 400,
# as vLLM refuses what exceeds its limits: 1,024 prompts x n=16 x 8,000 tokens would otherwise
# keep the engine busy for minutes, starving everyone else, even after its client hung up.
DEFAULT_MAX_TOKENS_PER_REQUEST = 262_144

# The knobs of the engine that may change while it runs; the rest are fixed at start.
ENGINE_KNOBS = (
    "batching",
    "max_num_seqs",
    "kv_capacity_tokens",
    "max_num_batched_tokens",
    "enable_chunked_prefill",
    "enable_prefix_caching",
    "gpu_memory_utilization",
    "time_scale",  # only while idle: the kernel picks it by measuring (lab/speed_check.py)
)


@dataclass(frozen=True, kw_only=True)
class ServerSettings(HttpLimits):
    profile: str = setting(DEFAULT_PROFILE, "the measured timing profile", choices=sorted(PROFILES))
    batching: str = setting(
        "continuous", "the scheduler's policy", choices=[b.value for b in Batching]
    )
    max_num_seqs: int = setting(256, "sequences in one batch at most (vLLM's --max-num-seqs)")
    kv_capacity_tokens: int | None = setting(
        None, "KV-cache size in tokens (default: the profile's)"
    )
    # vLLM's engine settings, under vLLM's names and defaults (engine/config.py)
    max_num_batched_tokens: int = setting(
        8192, "tokens computed per step at most, decodes and prefills together"
    )
    enable_chunked_prefill: bool = setting(
        True, "prefill long prompts in chunks within the token budget, beside the decodes"
    )
    block_size: int = setting(16, "tokens per KV-cache block")
    gpu_memory_utilization: float = setting(
        0.9, "share of GPU memory the engine may use, weights included (sizes the KV pool)"
    )
    enable_prefix_caching: bool = setting(
        False, "reuse the KV blocks of a prompt prefix seen before"
    )
    num_gpu_blocks_override: int | None = setting(
        None, "the KV pool in blocks, instead of sizing it from memory"
    )
    num_scheduler_steps: int = setting(
        1, "decode steps planned at once, tokens streamed in bursts (vLLM 0.x; V1 has none)"
    )
    max_model_len: int | None = setting(
        None, "the context window in tokens (default: the profile's)"
    )
    # the front end's own work (HTTP, tokenizing, detokenizing; engine/api_server.py)
    api_server_cost: float = setting(
        1.0, "times the API server's cited per-request cost (0: the pure engine)"
    )
    time_scale: float = setting(
        1.0, "wall seconds per simulated second (0.1 = ten times faster than the H100)"
    )
    served_model_name: str | None = setting(
        None, "the model name clients ask for (default: the profile's)"
    )
    max_concurrent_requests: int | None = setting(
        None, "serve at most this many HTTP requests at once (1: a naive server)"
    )
    max_body_bytes: int = setting(DEFAULT_MAX_BODY_BYTES, "largest request body accepted")
    max_tokens_per_request: int = setting(
        DEFAULT_MAX_TOKENS_PER_REQUEST, "prompts x n x max_tokens one request may ask for"
    )
    api_key: str | None = setting(
        None, "require 'Authorization: Bearer KEY' (default: the VLLM_API_KEY variable)"
    )

    def check(self) -> None:
        super().check()  # the HTTP limits
        if self.profile not in PROFILES:
            raise ValueError(f"profile must be one of {sorted(PROFILES)}, got {self.profile!r}")
        if self.batching not in {b.value for b in Batching}:
            names = ", ".join(b.value for b in Batching)
            raise ValueError(f"batching must be one of {names}, got {self.batching!r}")
        if self.max_num_seqs < 1:
            raise ValueError(f"max_num_seqs must be >= 1, got {self.max_num_seqs}")
        if self.kv_capacity_tokens is not None and self.kv_capacity_tokens < 1:
            raise ValueError(f"kv_capacity_tokens must be >= 1, got {self.kv_capacity_tokens}")
        for name in ("max_num_batched_tokens", "block_size", "num_scheduler_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 < self.gpu_memory_utilization <= 1:
            raise ValueError(
                f"gpu_memory_utilization must be in (0, 1], got {self.gpu_memory_utilization}"
            )
        if not self.api_server_cost >= 0:
            raise ValueError(f"api_server_cost must be >= 0, got {self.api_server_cost}")
        if not self.time_scale > 0:
            raise ValueError(f"time_scale must be > 0, got {self.time_scale}")
        if self.max_concurrent_requests is not None and self.max_concurrent_requests < 1:
            raise ValueError(
                f"max_concurrent_requests must be >= 1, got {self.max_concurrent_requests}"
            )
        if self.max_tokens_per_request < 1:
            raise ValueError(
                f"max_tokens_per_request must be >= 1, got {self.max_tokens_per_request}"
            )
        if self.max_body_bytes < 1:
            raise ValueError(f"max_body_bytes must be >= 1, got {self.max_body_bytes}")
