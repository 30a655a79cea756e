"""Exercises for lesson 04: the roofline of a decode step."""

from __future__ import annotations


def roofline_step_ms(
    batch: int, params: float, bytes_per_param: float, bandwidth_bps: float, flops_per_s: float
) -> float:
    """The fastest a decode step of `batch` sequences can be, in ms: the slower of reading every
    weight once (params * bytes_per_param / bandwidth) and doing the arithmetic (2 operations per
    parameter per sequence: 2 * params * batch / flops_per_s)."""
    # BEGIN SOLUTION (the time to read the weights, the time to do the sums: which sets the step?)
    memory_s = params * bytes_per_param / bandwidth_bps
    compute_s = 2 * params * batch / flops_per_s
    return max(memory_s, compute_s) * 1000
    # END SOLUTION


def crossover_batch(bytes_per_param: float, bandwidth_bps: float, flops_per_s: float) -> float:
    """The batch size at which arithmetic takes as long as reading the weights (the model's size
    cancels out: why?). Below it a step is memory-bound and extra sequences are nearly free."""
    # BEGIN SOLUTION (the batch at which roofline_step_ms's two times are equal)
    return bytes_per_param * flops_per_s / (2 * bandwidth_bps)
    # END SOLUTION


def kv_roofline_step_ms(
    batch: int,
    context_tokens: int,
    *,
    params: float,
    bytes_per_param: float,
    kv_bytes_per_token: float,
    bandwidth_bps: float,
    flops_per_s: float,
) -> float:
    """roofline_step_ms() once the KV cache counts: each step also reads, for every sequence in
    the batch, the keys and values of all its `context_tokens` earlier tokens
    (kv_bytes_per_token each). For Llama-3-8B that is 128 KiB a token: 2 (K and V) x 32 layers
    x 8 KV heads x 128 dimensions x 2 bytes."""
    # BEGIN SOLUTION (what a step must read now grows with batch and context; the sums do not)
    memory_s = (params * bytes_per_param + batch * context_tokens * kv_bytes_per_token) / (
        bandwidth_bps
    )
    compute_s = 2 * params * batch / flops_per_s
    return max(memory_s, compute_s) * 1000
    # END SOLUTION


# --- A checked answer, in your own words -------------------------------------------------------
QUANTISED_AT = ("batch 1", "batch 256", "both alike")


def where_quantisation_helps() -> tuple[str, str]:
    """Where does a decode step get faster? Return (one of QUANTISED_AT,
    your reason in a sentence or two of your own): the grader checks the choice, and reads your
    reason for the ideas that make it right."""
    # BEGIN SOLUTION (choose from what you measured, and say why in your own words)
    return "batch 1", (
        "At batch 1 a decode step is memory-bound, so reading a quarter of the bytes makes it up "
        "to four times faster; at batch 256 it is past the crossover, compute-bound, and fewer "
        "bytes barely help."
    )
    # END SOLUTION
