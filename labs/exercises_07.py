"""Exercises for lesson 07: counting the decode steps of static and continuous batching."""

from __future__ import annotations


def static_steps(output_lengths: list[int], slots: int) -> int:
    """Decode steps static batching needs: requests are taken in order, `slots` at a time, and
    each batch runs until its longest answer is done (one token per step per sequence).

    static_steps([1, 5, 2, 2], 2) -> 5 + 2 = 7
    """
    # TODO: walk through the requests one batch at a time
    raise NotImplementedError(
        'TODO in labs/exercises_07.py: walk through the requests one batch at a time'
    )


def continuous_steps(output_lengths: list[int], slots: int) -> int:
    """Decode steps continuous batching needs: at every step, free slots are filled with the
    next waiting requests (in order), then every running sequence gets one token; a sequence
    that has all its tokens leaves, freeing its slot for the next step.

    continuous_steps([1, 5, 2, 2], 2) -> 5   (1 leaves after step 1; 2 runs steps 2-3; ...)
    """
    # TODO: simulate the steps one at a time, as the docstring describes them
    raise NotImplementedError(
        'TODO in labs/exercises_07.py: simulate the steps one at a time, as the docstring describes them'
    )
