"""Timing profiles: what one step of a real accelerator costs, as plain data.

A profile turns "how many sequences, how much context, how many new prompt tokens" into
milliseconds. The coefficients were fitted to CUDA-graph timings of Llama-style decoders on one
H100 (bf16); the raw measurements ship beside this file in `data/h100_calibration.json` and
`benchmarks/simulator_fidelity.py` prints model vs measurement for every point.

    decode_step_ms = max(a + b·B, k·B) + c·Σctx      B sequences, Σctx cached tokens in total
    prefill_ms     = max(floor, d + e·N + f·ΣT²)      N new prompt tokens, T each prompt's length

Notice what the decode formula says: `a` (streaming the weights once) dominates, so a step for
64 sequences costs barely more than a step for one. That is the whole case for batching.
A step that mixes prefill chunks with decodes is one forward pass, priced as the Sarathi / Vidur
view in shared/calibration/README.md (`mixed_ms`). The memory fields size the paged KV pool
(`kv_blocks.py`) as vLLM's `determine_available_memory` does: total × utilisation - weights -
activations. Left out on purpose: speculative decoding, quantisation, tensor parallelism.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from importlib import resources
from typing import Any

from .api_server import ApiServerCost


@dataclass(frozen=True)
class Profile:
    """The cost of prefill and decode steps for one model on one accelerator (units: ms)."""

    name: str
    description: str
    # decode: max(a + b·B, k·B) + c·Σctx
    decode_fixed_ms: float  # a: read every weight once per step, whatever the batch
    decode_per_seq_ms: float  # b: per-sequence work while memory-bound
    decode_compute_per_seq_ms: float  # k: per-sequence cost once compute-bound (B ≳ 256)
    decode_per_context_token_ms: float  # c: reading one cached token's keys and values
    # prefill: max(floor, d + e·N + f·ΣT²)
    prefill_floor_ms: float  # never cheaper than streaming the weights once
    prefill_fixed_ms: float  # d
    prefill_per_token_ms: float  # e: the matrix multiplies, linear in tokens
    prefill_attention_ms: float  # f: causal attention, quadratic in each prompt's length
    step_overhead_ms: float = 0.0  # the engine's CPU work per step (scheduling), 0.5-2 ms
    # The API server's own work, off the GPU: HTTP, tokenizing, detokenizing (api_server.py).
    # On in every profile, as on a real server; `with_api_server_cost(0)` gives the pure engine.
    api_server: ApiServerCost = ApiServerCost()
    max_model_len: int = 8192  # context window: prompt + completion tokens
    # Memory, in GiB, for sizing the KV pool: vLLM's KV cache gets total × utilisation minus
    # the weights and the peak activations of its profiling run (CUDA graphs included).
    gpu_memory_gib: float = 79.6  # an H100 SXM "80GB" reports 81,559 MiB
    weights_gib: float = 14.96  # Llama-3.1-8B: 8.03 B params × 2 bytes (bf16)
    activation_gib: float = 1.5  # estimate: peak of a max_num_batched_tokens forward + graphs
    kv_bytes_per_token: int = 131_072  # 32 layers × 8 KV heads × 128 dims × (K and V) × 2 bytes
    source: str = ""

    def kv_pool_tokens(self, gpu_memory_utilization: float = 0.9) -> int:
        """KV-cache tokens that fit in the memory left over, as vLLM sizes its pool.

        >>> H100_LLAMA3_8B.kv_pool_tokens(0.9)   # (79.6 × 0.9 - 14.96 - 1.5) GiB / 128 KiB
        452034
        """
        if not 0 < gpu_memory_utilization <= 1:
            raise ValueError(
                f"gpu_memory_utilization must be in (0, 1], got {gpu_memory_utilization}"
            )
        free_gib = self.gpu_memory_gib * gpu_memory_utilization - self.weights_gib
        free_gib -= self.activation_gib
        return max(0, int(free_gib * 2**30 // self.kv_bytes_per_token))

    def decode_ms(self, context_lens: Sequence[int]) -> float:
        """Milliseconds for one decode step over sequences with these context lengths.

        >>> round(H100_LLAMA3_8B.decode_ms([512] * 32), 2)   # measured on the H100: 9.11
        9.36
        """
        batch = len(context_lens)
        if batch == 0:
            return 0.0
        weights_and_compute = max(
            self.decode_fixed_ms + self.decode_per_seq_ms * batch,
            self.decode_compute_per_seq_ms * batch,
        )
        return weights_and_compute + self.decode_per_context_token_ms * sum(context_lens)

    def prefill_ms(self, prompt_lens: Sequence[int]) -> float:
        """Milliseconds to prefill these prompts together in one forward pass.

        >>> round(H100_LLAMA3_8B.prefill_ms([512] * 8), 1)   # measured on the H100: 109.5
        107.9
        """
        if not prompt_lens:
            return 0.0
        tokens = sum(prompt_lens)
        squares = sum(length * length for length in prompt_lens)
        linear = (
            self.prefill_fixed_ms
            + self.prefill_per_token_ms * tokens
            + self.prefill_attention_ms * squares
        )
        return max(self.prefill_floor_ms, linear)

    def mixed_ms(self, chunks: Sequence[tuple[int, int]], context_lens: Sequence[int]) -> float:
        """One forward pass over prefill `chunks` ((new tokens, tokens already cached) each) and
        decodes with `context_lens`: the Sarathi / Vidur view of a chunked step.

        A chunk of c tokens after o cached ones attends to o + 1 ... o + c keys, so its attention
        term is f·(c² + 2·c·o): the chunks of one prompt add up to f·T², as a whole prefill.
        With no chunks it is `decode_ms`; whole prompts alone give exactly `prefill_ms`.

        >>> H100_LLAMA3_8B.mixed_ms([(512, 0)], []) == H100_LLAMA3_8B.prefill_ms([512])
        True
        """
        if not chunks:
            return self.decode_ms(context_lens)
        new_tokens = sum(c for c, _ in chunks) + len(context_lens)
        attention = sum(c * c + 2 * c * o for c, o in chunks)
        linear = (
            self.prefill_fixed_ms
            + self.prefill_per_token_ms * new_tokens
            + self.prefill_attention_ms * attention
            + self.decode_per_context_token_ms * sum(context_lens)
        )
        return max(self.prefill_floor_ms, self.decode_ms(context_lens), linear)

    def with_overrides(self, **changes: float | int | str) -> Profile:
        """A copy with some fields changed, e.g. `profile.with_overrides(step_overhead_ms=1.0)`."""
        return replace(self, **changes)  # type: ignore[arg-type]

    def with_api_server_cost(self, factor: float) -> Profile:
        """A copy whose API-server cost is `factor` times this one's: 0 for the pure engine.

        >>> H100_LLAMA3_8B.with_api_server_cost(0).api_server.before_engine_s(100)
        0.0
        """
        if factor == 1:
            return self
        return replace(self, api_server=self.api_server.scaled(factor))


# ---------------------------------------------------------------------------------------------
# Fitted on 2026-11-22, CUDA-graph replay, torch 2.11, bf16 (fits in data/h100_calibration.json)

_SOURCE = "H100 80GB HBM3, torch 2.11 bf16, CUDA-graph replay; fits in data/h100_calibration.json"

H100_LLAMA3_8B = Profile(
    name="h100-llama3-8b",
    description="Llama-3.1-8B shape on one H100, bf16, as measured (CUDA graphs, no compile)",
    decode_fixed_ms=8.4149,
    decode_per_seq_ms=0.008186,
    decode_compute_per_seq_ms=0.032,
    decode_per_context_token_ms=4.154e-5,
    prefill_floor_ms=8.4149,
    prefill_fixed_ms=2.6114,
    prefill_per_token_ms=0.025444,
    prefill_attention_ms=5.214e-7,
    source=_SOURCE,
)

H100_LLAMA3_1B = Profile(
    name="h100-llama3-1b",
    description="Llama-3.2-1B shape on one H100, bf16, as measured (CUDA graphs, no compile)",
    decode_fixed_ms=2.3414,
    decode_per_seq_ms=0.002816,
    decode_compute_per_seq_ms=0.0083,
    decode_per_context_token_ms=1.065e-5,
    prefill_floor_ms=2.3414,
    prefill_fixed_ms=0.8167,
    prefill_per_token_ms=0.00424,
    prefill_attention_ms=1.58e-7,
    weights_gib=2.30,  # 1.24 B params × 2 bytes
    activation_gib=1.0,
    kv_bytes_per_token=32_768,  # 16 layers × 8 KV heads × 64 dims × 2 × 2 bytes
    source=_SOURCE,
)

# torch.compile fuses the small kernels and saves a near-constant ~2 ms per step; this is what a
# tuned engine such as vLLM reaches. It matched the compiled measurements within 2%.
H100_LLAMA3_8B_COMPILED = H100_LLAMA3_8B.with_overrides(
    name="h100-llama3-8b-compiled",
    description="Llama-3.1-8B on one H100 with torch.compile + CUDA graphs (vLLM-like engine)",
    decode_fixed_ms=6.4,
    prefill_floor_ms=6.4,
    step_overhead_ms=1.0,
)

PROFILES: dict[str, Profile] = {
    profile.name: profile for profile in (H100_LLAMA3_8B, H100_LLAMA3_1B, H100_LLAMA3_8B_COMPILED)
}
DEFAULT_PROFILE = H100_LLAMA3_8B.name


def get_profile(profile: str | Profile) -> Profile:
    """Look a profile up by name; a `Profile` passes through, so users can bring their own."""
    if isinstance(profile, Profile):
        return profile
    try:
        return PROFILES[profile]
    except KeyError:
        known = ", ".join(sorted(PROFILES))
        raise ValueError(f"unknown profile {profile!r}; known profiles: {known}") from None


def calibration() -> dict[str, Any]:
    """The raw H100 measurements the profiles were fitted on (milliseconds, CUDA-graph replay
    in `graph_ms`): `calibration()["models"]["llama3.1-8b"]["decode"]` is a list of
    {"B", "ctx", "graph_ms", "eager_ms"}; `["meta"]` holds the GPU's measured ceilings
    (`d2d_copy_TBps`, `bf16_gemm8192_TFLOPs`)."""
    data = resources.files("inferlab").joinpath("data/h100_calibration.json").read_text()
    loaded: dict[str, Any] = json.loads(data)
    return loaded
