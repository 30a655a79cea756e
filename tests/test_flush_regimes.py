"""When does the flush interval matter? The lesson of 06 §6.3, on a ManualClock: exact, no sleeps.

An arrival every 10 ms for one second; each batch takes 30 ms upstream, whatever its size.
Flush interval 1 ms against 50 ms, in three regimes:

    dispatch when idle, 1 batch in flight    identical: a batch goes whenever the last returns
    no idle dispatch,   1 batch in flight    50 ms: batches wait to fill (bigger, and slower)
    dispatch when idle, 4 batches in flight  1 ms: every request alone in a slot of its own;
                                             50 ms: batches of about 3, as with one slot
"""

import asyncio
import statistics

import pytest

from inferlab import MicroBatcher
from inferlab.engine.clock import ManualClock

pytestmark = pytest.mark.anyio

SERVICE_S = 0.030
GAP_S = 0.010


async def run(*, flush_s, dispatch_when_idle, max_concurrent_batches):
    """Mean batch size and mean queue wait (s) of 100 arrivals."""
    clock = ManualClock()

    async def upstream(items):
        done = asyncio.get_running_loop().create_future()
        clock.call_at(clock.now() + SERVICE_S, lambda: done.done() or done.set_result(None))
        await done
        return items

    async def settle():
        for _ in range(10):  # let the tasks that the last events started run their next steps
            await asyncio.sleep(0)

    batcher = MicroBatcher(
        upstream,
        max_batch_size=64,
        batch_wait_timeout_s=flush_s,
        dispatch_when_idle=dispatch_when_idle,
        max_concurrent_batches=max_concurrent_batches,
        clock=clock,
    )
    futures = []
    for i in range(100):
        futures.append(batcher.submit_nowait(i))
        await settle()
        for _ in range(10):  # the gap in 1 ms steps, so each batch's end is seen on time
            clock.advance(GAP_S / 10)
            await settle()
    for _ in range(200):
        clock.advance(0.001)
        await settle()
    assert await asyncio.gather(*futures) == list(range(100))
    sizes = batcher.stats.batch_sizes
    mean_size = sum(size * n for size, n in sizes.items()) / sum(sizes.values())
    return mean_size, statistics.fmean(batcher.stats.queue_wait_s)


async def test_with_idle_dispatch_and_one_batch_in_flight_the_interval_changes_nothing():
    short = await run(flush_s=0.001, dispatch_when_idle=True, max_concurrent_batches=1)
    long = await run(flush_s=0.050, dispatch_when_idle=True, max_concurrent_batches=1)
    assert short == pytest.approx(long)
    assert short[0] == pytest.approx(3, abs=0.5)  # what arrives during one 30 ms batch


async def test_without_idle_dispatch_a_long_interval_makes_batches_wait_to_fill():
    short = await run(flush_s=0.001, dispatch_when_idle=False, max_concurrent_batches=1)
    long = await run(flush_s=0.050, dispatch_when_idle=False, max_concurrent_batches=1)
    assert long[0] > short[0] + 1 and long[1] > short[1] + 0.01


async def test_with_slots_to_spare_the_interval_sets_the_batch_size():
    short = await run(flush_s=0.001, dispatch_when_idle=True, max_concurrent_batches=4)
    long = await run(flush_s=0.050, dispatch_when_idle=True, max_concurrent_batches=4)
    assert short[0] < 1.2 and long[0] > 2 * short[0]
    assert long[1] > short[1] + 0.01
