"""Timing profiles: what one step of a real accelerator costs, as plain data.

A profile turns "how many sequences, how much context, how many new prompt tokens" into
milliseconds. The coefficients were fitted to CUDA-graph timings of Llama-style decoders on one
H100 (bf16); the raw measurements ship beside this file in `data/h100_calibration.json` and
`benchmarks/simulator_fidelity.py` prints model vs measurement for every point.

    decode_step_ms = max(a + b·B, k·B) + c·Σctx      B sequences, Σctx cached tokens in total
    prefill_ms     = max(floor, d + e·N + f·ΣT²)      N new prompt tokens, T each prompt's length

Notice what the decode formula says: `a` (streaming the weights once) dominates, so a step for
64 sequences costs barely more than a step for one. That is the whole case for batching.
Left out on purpose: chunked prefill, speculative decoding, quantisation, tensor parallelism.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from importlib import resources
from typing import Any


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
    step_overhead_ms: float = 0.0  # scheduler and API work per step (CPU), 0.5-2 ms in vLLM
    max_model_len: int = 8192  # context window: prompt + completion tokens
    kv_capacity_tokens: int = 400_000  # KV-cache slots left in HBM after the weights
    source: str = ""

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

    def with_overrides(self, **changes: float | int | str) -> Profile:
        """A copy with some fields changed, e.g. `profile.with_overrides(step_overhead_ms=1.0)`."""
        return replace(self, **changes)  # type: ignore[arg-type]


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
    # 80 GB × 0.9 utilisation - 16 GB of weights - activations ≈ 52 GB; 128 KiB per token.
    kv_capacity_tokens=400_000,
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
    # 80 GB × 0.9 - 2.5 GB of weights - activations ≈ 66 GB; 32 KiB per token.
    kv_capacity_tokens=2_000_000,
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
