"""Every job store keeps the same promises: the state machine runs unchanged over any of them.

Each test runs on SQLite and on a real Redis (skipped where no redis-server is installed)."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from inferlab.errors import IdempotencyKeyReusedError
from inferlab.jobs import QueueFullError, RedisJobStore, SQLiteJobStore, Status
from inferlab.jobs._records import cancel, claim, finish, new_job, renew

pytestmark = pytest.mark.anyio

NOW = 1_000_000.0


@pytest.fixture(params=["sqlite", "redis"])
async def store(request, tmp_path):
    if request.param == "sqlite":
        store = SQLiteJobStore(tmp_path / "jobs.db")
    else:
        url = request.getfixturevalue("redis_url")
        store = RedisJobStore(url, prefix=f"test:{uuid.uuid4().hex}:")
    yield store
    await store.close()


def a_job(prompt="Hello", *, at=NOW, key=None, callback_url=None):
    return new_job(
        {"prompt": prompt, "max_tokens": 4},
        now=at,
        max_attempts=3,
        idempotency_key=key,
        callback_url=callback_url,
    )


async def test_a_job_comes_back_as_it_went_in(store):
    job = a_job()
    assert await store.add(job, max_unfinished=10) == (job, True)
    assert await store.get(job.id) == job
    assert await store.get("job-nope") is None


async def test_an_idempotency_key_returns_the_first_job_and_stores_nothing_new(store):
    first, _ = await store.add(a_job(key="k1"), max_unfinished=10)
    again, created = await store.add(a_job(key="k1"), max_unfinished=10)
    assert (again.id, created) == (first.id, False)
    with pytest.raises(IdempotencyKeyReusedError) as reused:
        await store.add(a_job("Other", key="k1"), max_unfinished=10)
    assert (reused.value.key, reused.value.job_id, reused.value.index) == ("k1", first.id, 0)
    assert sum((await store.counts()).values()) == 1


async def test_many_jobs_are_added_in_order_all_or_none(store):
    """Five jobs in one call: one answer each, in order, a repeated key (stored before, or
    earlier in the call) answering with its job. Then three bulks refused whole: no room for
    all, a key reused for another request, a key used twice with two requests."""
    known, _ = await store.add(a_job("known", key="k0"), max_unfinished=10)
    jobs = [a_job("a"), a_job("known", key="k0"), a_job("b", key="k1"), a_job("b", key="k1")]
    added = await store.add_many([*jobs, a_job("c")], max_unfinished=10)
    assert [created for _, created in added] == [True, False, True, False, True]
    assert [job.id for job, _ in added][:4] == [jobs[0].id, known.id, jobs[2].id, jobs[2].id]
    assert (await store.counts())[Status.QUEUED] == 4

    with pytest.raises(QueueFullError) as full:  # room for 6: one of the seven fits, none goes
        await store.add_many([a_job(str(i)) for i in range(7)], max_unfinished=10)
    assert (full.value.unfinished, full.value.adding) == (4, 7)
    with pytest.raises(QueueFullError) as full:  # a key twice, one stored: 2 new jobs, not 4
        await store.add_many(
            [a_job("n", key="n1"), a_job("n", key="n1"), a_job("known", key="k0"), a_job("m")],
            max_unfinished=5,
        )
    assert (full.value.unfinished, full.value.adding) == (4, 2)
    for bad in ([a_job("d"), a_job("other", key="k1")], [a_job("e", key="k9"), a_job(key="k9")]):
        with pytest.raises(IdempotencyKeyReusedError) as reused:
            await store.add_many(bad, max_unfinished=10)
        assert reused.value.index == 1
    assert (await store.counts())[Status.QUEUED] == 4
    assert await store.get(jobs[0].id) == jobs[0]


async def test_a_refused_bulk_spoils_none_of_the_writes_that_share_its_commit(store):
    """SQLite commits the writes that arrive together in one transaction: a bulk refused in the
    middle of it takes back its own rows only. (Redis: one script each, the same answer.)"""
    job, _ = await store.add(a_job(), max_unfinished=10)
    outcomes = await asyncio.gather(
        store.add_many([a_job("x"), a_job("y")], max_unfinished=2),  # room for one: refused
        store.add(a_job("z"), max_unfinished=10),
        store.replace(claim(job, worker="w", now=NOW, lease_s=5)),
        return_exceptions=True,
    )
    assert isinstance(outcomes[0], QueueFullError)
    assert outcomes[1][1] is True and outcomes[2] is True
    counts = await store.counts()
    assert (counts[Status.QUEUED], counts[Status.RUNNING]) == (1, 1)


async def test_the_queue_is_bounded_by_unfinished_jobs_only(store):
    jobs = [a_job(str(i)) for i in range(3)]
    for job in jobs[:2]:
        await store.add(job, max_unfinished=2)
    with pytest.raises(QueueFullError) as refused:
        await store.add(jobs[2], max_unfinished=2)
    assert refused.value.unfinished == 2
    # A finished job frees its place.
    assert await store.replace(cancel(jobs[0], now=NOW))
    assert (await store.add(jobs[2], max_unfinished=2))[1]


async def test_a_repeated_key_returns_its_job_even_when_the_queue_is_over_its_bound(store):
    """A retried submission makes no new job, so the bound does not apply to it: a client
    whose 202 was lost gets its job back, not a 429, even from a queue fuller than the bound
    (a server restarted with a smaller --max-queue-size, say). Alone or in a bulk."""
    first, _ = await store.add(a_job("kept", key="k1"), max_unfinished=10)
    await store.add_many([a_job("a"), a_job("b")], max_unfinished=10)
    again, created = await store.add(a_job("kept", key="k1"), max_unfinished=2)
    assert (again.id, created) == (first.id, False)
    added = await store.add_many([a_job("kept", key="k1")] * 2, max_unfinished=2)
    assert added == [(first, False), (first, False)]
    assert (await store.counts())[Status.QUEUED] == 3


async def test_compare_and_set_lets_exactly_one_of_two_racing_writers_win(store):
    job, _ = await store.add(a_job(), max_unfinished=10)
    one = claim(job, worker="w1", now=NOW, lease_s=5)
    two = claim(job, worker="w2", now=NOW, lease_s=5)
    results = await asyncio.gather(store.replace(one), store.replace(two))
    assert sorted(results) == [False, True]
    winner = one if results[0] else two
    assert await store.get(job.id) == winner


async def test_due_work_is_queued_jobs_past_their_backoff_and_running_jobs_past_their_lease(store):
    ready = a_job("ready", at=NOW - 2)
    later = a_job("later", at=NOW - 1)
    later = later.__class__(**{**later.__dict__, "not_before": NOW + 60})  # backing off
    held = a_job("held", at=NOW - 3)
    lapsed = a_job("lapsed", at=NOW - 4)
    done = a_job("done", at=NOW - 5)
    for job in (ready, later, held, lapsed, done):
        await store.add(job, max_unfinished=10)
    assert await store.replace(claim(held, worker="w", now=NOW, lease_s=30))
    assert await store.replace(claim(lapsed, worker="w", now=NOW - 10, lease_s=5))
    assert await store.replace(cancel(done, now=NOW))

    due = await store.due_work(NOW, limit=10)
    assert [job.id for job in due] == [lapsed.id, ready.id]  # oldest ready_at first
    assert await store.next_due_at() == NOW - 5  # the lapsed lease ran out then
    assert [job.id for job in await store.due_work(NOW, limit=1)] == [lapsed.id]


async def test_a_renewed_lease_is_not_due(store):
    job, _ = await store.add(a_job(), max_unfinished=10)
    running = claim(job, worker="w", now=NOW, lease_s=5)
    assert await store.replace(running)
    assert await store.replace(renew(running, now=NOW + 4, lease_s=5))
    assert await store.due_work(NOW + 6, limit=10) == []
    assert len(await store.due_work(NOW + 9.5, limit=10)) == 1


async def test_finished_jobs_with_a_callback_are_due_for_delivery(store):
    job, _ = await store.add(a_job(callback_url="http://127.0.0.1:1/hook"), max_unfinished=10)
    plain, _ = await store.add(a_job("plain"), max_unfinished=10)
    for one in (job, plain):
        running = claim(one, worker="w", now=NOW, lease_s=5)
        assert await store.replace(running)
        assert await store.replace(finish(running, now=NOW + 1, result={"choices": []}))
    assert [j.id for j in await store.due_callbacks(NOW + 1, limit=10)] == [job.id]
    assert await store.due_callbacks(NOW, limit=10) == []


async def test_lists_are_newest_first_and_filter_by_status(store):
    jobs = [a_job(str(i), at=NOW + i) for i in range(4)]
    for job in jobs:
        await store.add(job, max_unfinished=10)
    assert await store.replace(cancel(jobs[1], now=NOW + 9))
    assert [j.id for j in await store.list(None, 3)] == [jobs[3].id, jobs[2].id, jobs[1].id]
    assert [j.id for j in await store.list(Status.CANCELLED, 10)] == [jobs[1].id]
    counts = await store.counts()
    assert counts[Status.QUEUED] == 3 and counts[Status.CANCELLED] == 1
    assert counts[Status.RUNNING] == 0


async def test_sqlite_jobs_outlive_the_store_that_wrote_them(tmp_path):
    first = SQLiteJobStore(tmp_path / "jobs.db")
    job, _ = await first.add(a_job(), max_unfinished=10)
    await first.close()
    second = SQLiteJobStore(tmp_path / "jobs.db")
    try:
        assert await second.get(job.id) == job
    finally:
        await second.close()


async def test_concurrent_adds_respect_the_bound_and_the_idempotency_key(store):
    """Ten submissions at once into room for four: four stored, six refused. Then five at once
    with one key: one job, the same for all. (SQLite commits such a group in one transaction.)"""
    outcomes = await asyncio.gather(
        *(store.add(a_job(str(i)), max_unfinished=4) for i in range(10)), return_exceptions=True
    )
    assert sum(isinstance(o, QueueFullError) for o in outcomes) == 6
    assert (await store.counts())[Status.QUEUED] == 4

    same_key = await asyncio.gather(
        *(store.add(a_job(key="once"), max_unfinished=100) for _ in range(5))
    )
    assert len({job.id for job, _ in same_key}) == 1
    assert [created for _, created in same_key].count(True) == 1


async def test_versions_answer_for_many_jobs_in_one_call(store):
    """The board's shared poller asks for every watched job at once; unknown ids are left out."""
    jobs = [(await store.add(a_job(f"p{i}"), max_unfinished=10_000))[0] for i in range(600)]
    taken = claim(jobs[0], worker="w", now=NOW, lease_s=10)
    assert await store.replace(taken)
    found = await store.versions([job.id for job in jobs] + ["job-missing"])
    assert len(found) == 600 and found[jobs[0].id] == 1 and found[jobs[1].id] == 0
    await store.ping()
    await store.open()


async def test_writes_that_arrive_together_all_land_however_many_are_in_flight(store):
    """300 submissions, then 300 claims, all at once: each is written exactly once, and a stale
    compare-and-set in the same group still loses. (Redis's default connection pool refused
    the 101st call in flight with "Too many connections"; SQLite shares one group commit.)"""
    jobs = [a_job(str(i)) for i in range(300)]
    added = await asyncio.gather(*(store.add(job, max_unfinished=1000) for job in jobs))
    assert all(created for _, created in added)
    claims = [claim(job, worker="w", now=NOW, lease_s=10) for job in jobs]
    stale = claim(jobs[0], worker="late", now=NOW, lease_s=10)  # made from version 0 too
    won = await asyncio.gather(*(store.replace(job) for job in claims), store.replace(stale))
    assert won == [True] * 300 + [False]
    assert (await store.counts())[Status.RUNNING] == 300
    read = await asyncio.gather(*(store.get(job.id) for job in claims), store.get("job-nope"))
    assert read == [*claims, None]  # reads that arrive together each get their own job


async def test_racing_claimers_take_every_job_exactly_once(store, request):
    """Four claimers, each with a store of its own (its own connection), take 400 jobs as the
    worker pool does: read the due ones, claim them all in one replace_many. Their first reads
    all happen before any claim (a barrier), so they surely collide: 4 claims on each of the
    first 32 jobs. Each job is won by exactly one claimer, and none is left behind."""
    jobs = [a_job(str(i), at=NOW - 1) for i in range(400)]
    await store.add_many(jobs, max_unfinished=1000)
    first_reads = asyncio.Barrier(4)
    lost = []

    def another_store():
        if isinstance(store, SQLiteJobStore):
            return SQLiteJobStore(store.path)
        return RedisJobStore(request.getfixturevalue("redis_url"), prefix=store.prefix)

    async def claimer(name: str) -> list[str]:
        mine, own = [], another_store()
        try:
            due = await own.due_work(NOW, limit=32)
            await first_reads.wait()
            while due:
                taken = [claim(job, worker=name, now=NOW, lease_s=60) for job in due]
                won = await own.replace_many(taken)
                mine += [job.id for job, ok in zip(taken, won, strict=True) if ok]
                lost.append(won.count(False))
                due = await own.due_work(NOW, limit=32)
        finally:
            await own.close()
        return mine

    won = await asyncio.gather(*(claimer(f"w{i}") for i in range(4)))
    claimed = [job_id for each in won for job_id in each]
    assert sorted(claimed) == sorted(job.id for job in jobs)  # none twice, none lost
    assert sum(lost) >= 3 * 32  # they raced: three of the four claims on each first job lost
    assert (await store.counts())[Status.RUNNING] == 400
    for name, ids in zip(("w0", "w1", "w2", "w3"), won, strict=True):
        kept = await asyncio.gather(*(store.get(job_id) for job_id in ids[:10]))
        assert {job.worker for job in kept} <= {name}  # the winner's claim is the one stored
