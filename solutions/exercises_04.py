"""Exercises for lesson 04: the roofline of a decode step."""

from __future__ import annotations


def roofline_step_ms(
    batch: int, params: float, bytes_per_param: float, bandwidth_bps: float, flops_per_s: float
) -> float:
    """The fastest a decode step of `batch` sequences can be, in ms: the slower of reading every
    weight once (params * bytes_per_param / bandwidth) and doing the arithmetic (2 operations per
    parameter per sequence: 2 * params * batch / flops_per_s)."""
    # BEGIN SOLUTION (max of memory time and compute time, in milliseconds)
    memory_s = params * bytes_per_param / bandwidth_bps
    compute_s = 2 * params * batch / flops_per_s
    return max(memory_s, compute_s) * 1000
    # END SOLUTION


def crossover_batch(bytes_per_param: float, bandwidth_bps: float, flops_per_s: float) -> float:
    """The batch size at which arithmetic takes as long as reading the weights (the model's size
    cancels out: why?). Below it a step is memory-bound and extra sequences are nearly free."""
    # BEGIN SOLUTION (solve params*bytes/bandwidth = 2*params*B/flops for B)
    return bytes_per_param * flops_per_s / (2 * bandwidth_bps)
    # END SOLUTION
