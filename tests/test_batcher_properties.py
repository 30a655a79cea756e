"""Exactly one answer per item, under any interleaving hypothesis can find.

Random programs of submits (some with deadlines), cancellations, clock jumps, releases and
failures of in-flight batches run against a MicroBatcher on a ManualClock. Afterwards every
future must be done, no item may reach the handler twice, no batch may exceed its size, and an
item answered before its batch was sent (cancelled or expired) must never reach the handler.
"""

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from inferlab import MicroBatcher
from inferlab.engine.clock import ManualClock

operations = st.lists(
    st.one_of(
        st.tuples(st.just("submit"), st.none() | st.sampled_from([0.001, 0.02, 0.5])),
        st.tuples(st.just("cancel"), st.integers(0, 30)),
        st.tuples(st.just("advance"), st.sampled_from([0.001, 0.005, 0.01, 0.1])),
        st.tuples(st.just("release"), st.booleans()),  # True: the batch fails instead
    ),
    max_size=40,
)


async def run_program(program, max_batch_size, max_concurrent_batches, idle):
    clock = ManualClock()
    gates: list[tuple[asyncio.Future, list]] = []
    seen: list[int] = []

    async def handler(items):
        assert len(items) <= max_batch_size
        seen.extend(items)
        gate = asyncio.get_running_loop().create_future()
        gates.append((gate, items))
        if await gate:
            raise RuntimeError("upstream failed")
        return [item * 10 for item in items]

    batcher = MicroBatcher(
        handler,
        max_batch_size=max_batch_size,
        batch_wait_timeout_s=0.01,
        max_concurrent_batches=max_concurrent_batches,
        clock=clock,
        dispatch_when_idle=idle,
    )
    futures: list[asyncio.Future] = []
    answered_before_sent: set[int] = set()
    for operation, argument in program:
        if operation == "submit":
            futures.append(batcher.submit_nowait(len(futures), timeout_s=argument))
        elif operation == "cancel" and argument < len(futures):
            futures[argument].cancel()
        elif operation == "advance":
            clock.advance(argument)
        elif operation == "release":
            open_gates = [gate for gate, _ in gates if not gate.done()]
            if open_gates:
                open_gates[0].set_result(argument)
        for index, future in enumerate(futures):
            if future.done() and index not in seen:
                answered_before_sent.add(index)
        await asyncio.sleep(0)  # let tasks and callbacks run between steps
    for gate, _ in gates:  # finish everything still in flight
        if not gate.done():
            gate.set_result(False)
    closing = asyncio.ensure_future(batcher.aclose())
    while not closing.done():  # later batches wait on new gates: open them as they come
        for gate, _ in gates:
            if not gate.done():
                gate.set_result(False)
        await asyncio.sleep(0)
    return futures, seen, answered_before_sent


@settings(max_examples=200, deadline=None)
@given(
    program=operations,
    max_batch_size=st.integers(1, 4),
    max_concurrent_batches=st.integers(1, 3),
    idle=st.booleans(),
)
def test_every_item_gets_exactly_one_answer(program, max_batch_size, max_concurrent_batches, idle):
    futures, seen, answered_before_sent = asyncio.run(
        run_program(program, max_batch_size, max_concurrent_batches, idle)
    )
    assert all(future.done() for future in futures)
    assert len(seen) == len(set(seen)), "an item reached the handler twice"
    assert not answered_before_sent & set(seen), "an answered item was still sent"
    for index, future in enumerate(futures):
        if not future.cancelled() and future.exception() is None:
            assert future.result() == index * 10
