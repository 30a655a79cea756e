"""Exercises for lesson 07: counting the decode steps of static and continuous batching."""

from __future__ import annotations


def static_steps(output_lengths: list[int], slots: int) -> int:
    """Decode steps static batching needs: requests are taken in order, `slots` at a time, and
    each batch runs until its longest answer is done (one token per step per sequence).

    static_steps([1, 5, 2, 2], 2) -> 5 + 2 = 7
    """
    # BEGIN SOLUTION (walk through the requests one batch at a time)
    return sum(max(output_lengths[i : i + slots]) for i in range(0, len(output_lengths), slots))
    # END SOLUTION


def continuous_steps(output_lengths: list[int], slots: int) -> int:
    """Decode steps continuous batching needs: at every step, free slots are filled with the
    next waiting requests (in order), then every running sequence gets one token; a sequence
    that has all its tokens leaves, freeing its slot for the next step.

    continuous_steps([1, 5, 2, 2], 2) -> 5   (1 leaves after step 1; 2 runs steps 2-3; ...)
    """
    # BEGIN SOLUTION (simulate the steps one at a time, as the docstring describes them)
    waiting = list(output_lengths)
    running: list[int] = []  # tokens still to generate, per running sequence
    steps = 0
    while waiting or running:
        while waiting and len(running) < slots:
            running.append(waiting.pop(0))
        running = [left - 1 for left in running]
        running = [left for left in running if left > 0]
        steps += 1
    return steps
    # END SOLUTION


# The workload the notebook plots for exercise 3: six answers' lengths, in arrival order, two slots.
PLOTTED_LENGTHS = [3, 12, 2, 4, 5, 1]
PLOTTED_SLOTS = 2


def read_the_plot() -> tuple[int, int]:
    """Exercise 3, read from the notebook's plot of static batching (PLOTTED_LENGTHS in
    PLOTTED_SLOTS slots): which request sat longest in its slot after its last token, and which
    request kept it there? Return (held, holder), request numbers as the plot labels them."""
    # BEGIN SOLUTION (read the hatched bars: the longest one, and whose bar it waited for)
    return 0, 1  # request 0 finished at step 3 and waited 9 steps for request 1 (12 tokens)
    # END SOLUTION


# --- A checked answer, in your own words -------------------------------------------------------
STEPS_OVERSTATE_BECAUSE = ("steps differ in cost", "static steps run faster", "the run was noisy")


def why_steps_overstate_the_gain() -> tuple[str, str]:
    """Why do step counts overstate the gain? Return (one of STEPS_OVERSTATE_BECAUSE,
    your reason in a sentence or two of your own): the grader checks the choice, and reads your
    reason for the ideas that make it right."""
    # BEGIN SOLUTION (choose from what you measured, and say why in your own words)
    return "steps differ in cost", (
        "Both policies pay for every prompt's prefill, the dearest steps, and static batching's "
        "extra steps are cheap ones, with few sequences left running."
    )
    # END SOLUTION
