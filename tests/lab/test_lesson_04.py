"""Lesson 04's exercises (labs/exercises_04.py): the roofline of a decode step."""

from __future__ import annotations

import pytest

from tests.lab.grading import expect, explained

pytestmark = pytest.mark.lesson("04")

H100 = dict(params=8e9, bytes_per_param=2, bandwidth_bps=3e12, flops_per_s=750e12)


@pytest.fixture
def ex(lab):
    return lab("exercises_04")


def test_roofline_is_the_slower_of_memory_and_arithmetic(ex):
    """roofline_step_ms() is the slower of reading the weights and doing the arithmetic."""
    look = "a step must both read every weight and do the arithmetic; the slower one sets it"
    expect(
        ex.roofline_step_ms(1, **H100),
        16e9 / 3e12 * 1000,
        given="batch 1, 8B bf16 parameters, 3 TB/s, 750 TFLOP/s (memory-bound, ms)",
        look=look,
    )
    expect(
        ex.roofline_step_ms(1000, **H100),
        2 * 8e9 * 1000 / 750e12 * 1000,
        given="batch 1000, same accelerator (compute-bound, ms)",
        look=look + "; each sequence costs 2 operations per parameter",
    )


def test_crossover_batch(ex):
    """crossover_batch() is the batch at which arithmetic takes as long as reading weights."""
    expect(
        ex.crossover_batch(2, 3e12, 750e12),
        250,
        given="bf16 weights, 3 TB/s, 750 TFLOP/s",
        look="set the two times of roofline_step_ms equal and solve for the batch",
    )


KV = dict(kv_bytes_per_token=2 * 32 * 8 * 128 * 2)  # Llama-3-8B, bf16: 128 KiB a token


def test_kv_roofline_reads_the_cache_too(ex):
    """kv_roofline_step_ms() adds each sequence's KV cache to what a step must read."""
    look = "a step reads the weights once, plus every sequence's keys and values for its context"
    weights_s, cache_s = 16e9 / 3e12, 64 * 4096 * KV["kv_bytes_per_token"] / 3e12
    expect(
        ex.kv_roofline_step_ms(64, 4096, **H100, **KV),
        (weights_s + cache_s) * 1000,
        rel=1e-6,
        given="batch 64 at a context of 4,096 tokens on the 8B model (ms)",
        look=look,
    )
    expect(
        ex.kv_roofline_step_ms(1, 0, **H100, **KV),
        ex.roofline_step_ms(1, **H100),
        rel=1e-6,
        given="an empty context: the plain roofline (ms)",
        look=look,
    )
    expect(
        ex.kv_roofline_step_ms(2000, 1, **H100, **KV),
        2 * 8e9 * 2000 / 750e12 * 1000,
        rel=1e-6,
        given="batch 2,000 at a context of 1: compute-bound (ms)",
        look="the arithmetic does not grow with the context in this model; the reads do",
    )


# --- issue 18: a checked free-text answer (h18b) -----------------------------------------------
def test_where_quantisation_helps(lab):
    """where_quantisation_helps() makes the right choice, and its reason names why."""
    module = lab("exercises_04")
    explained(
        module.where_quantisation_helps(),
        choices=module.QUANTISED_AT,
        expected="batch 1",
        ideas={
            "what limits a step at batch 1 (reading the weights)": (
                "memory",
                "bandwidth",
                "bytes",
                "read",
            ),
            "what limits it at batch 256 (the arithmetic)": (
                "compute",
                "arithmetic",
                "flop",
                "crossover",
                "math",
                "roofline",
            ),
        },
        given="where does a decode step get faster?",
    )
