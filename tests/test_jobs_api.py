"""The job API end to end: real HTTP servers on loopback, in front of a fake upstream that fails,
stalls or refuses on demand. Nothing here waits on the clock: long-polls and event streams
return when the server says something changed."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Iterator

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from inferlab import ServerThread
from inferlab.errors import APIStatusError, JobFailedError
from inferlab.jobs import (
    SIGNATURE_HEADER,
    AsyncJobClient,
    Backoff,
    JobClient,
    RedisJobStore,
    SQLiteJobStore,
    create_jobs_app,
    verify_signature,
)

from .fake_upstream import make_fake_upstream, release_stall

QUICK = Backoff(base_s=0.01, cap_s=0.02)  # retries at once, near enough
SECRET = "test-secret"


@pytest.fixture(scope="module")
def fake():
    app = make_fake_upstream()
    with ServerThread(app) as server:
        yield app, server


@pytest.fixture(autouse=True)
def _reset_fake(fake):
    app, _ = fake
    app.state.mode, app.state.requests, app.state.release, app.state.fail_next = (
        "llama",
        [],
        None,
        0,
    )
    app.state.arrived.clear()
    yield
    release_stall(app)


@pytest.fixture
def start_jobs(fake, tmp_path):
    """start_jobs(**options) -> JobClient for a job server in front of the fake upstream."""
    servers, clients = [], []

    def start(upstream_url=None, store=None, **options):
        options = {"backoff": QUICK, "webhook_secret": SECRET, **options}
        app = create_jobs_app(
            upstream_url or fake[1].base_url,
            store=store or SQLiteJobStore(tmp_path / f"jobs{len(servers)}.db"),
            **options,
        )
        server = ServerThread(app).start()
        servers.append(server)
        clients.append(JobClient(server.base_url, poll_s=10))
        return clients[-1]

    yield start
    for client in clients:
        client.close()
    release_stall(fake[0])
    for server in servers:
        server.stop()


def events_as_they_come(client: JobClient, job_id: str) -> Iterator[dict]:
    """The job's Server-Sent Events, one by one, until the stream ends."""
    with client._http.stream("GET", f"/v1/jobs/{job_id}/events") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: "):
                yield json.loads(line[6:])


def events(client: JobClient, job_id: str) -> list[dict]:
    """All the job's Server-Sent Events, read until the stream ends."""
    return list(events_as_they_come(client, job_id))


@pytest.fixture(params=["sqlite", "redis"])
def any_store(request, tmp_path):
    if request.param == "sqlite":
        return SQLiteJobStore(tmp_path / "any.db")
    return RedisJobStore(request.getfixturevalue("redis_url"), prefix=f"{tmp_path.name}:")


def test_submit_is_acknowledged_at_once_and_the_result_fetched_later(start_jobs, any_store):
    jobs = start_jobs(store=any_store)
    response = jobs._http.post("/v1/jobs", json={"request": {"prompt": "a b", "max_tokens": 3}})
    assert response.status_code == 202
    ack = response.json()
    assert ack["status"] == "queued" and ack["id"].startswith("job-") and ack["created_at"] > 0
    assert response.headers["location"] == f"/v1/jobs/{ack['id']}"

    done = jobs.wait(ack["id"])
    assert done.status == "succeeded" and done.attempts == 1
    assert done.text == " a_b_0 a_b_1 a_b_2"
    assert done.created_at <= done.started_at <= done.finished_at
    assert jobs.result(ack["id"])["choices"][0]["index"] == 0


def test_concurrent_jobs_share_upstream_batches(start_jobs, fake):
    jobs = start_jobs(workers=8, max_batch_size=8, batch_wait_timeout_s=0.05)
    fake[0].state.mode = "stall"  # the first batch holds; the rest gather behind it
    ids = [jobs.submit(f"p{i}", max_tokens=2).id for i in range(9)]
    fake[0].state.arrived.wait(10)
    release_stall(fake[0])
    assert all(jobs.wait(i).status == "succeeded" for i in ids)
    sizes = [
        len(body["prompt"]) if isinstance(body["prompt"], list) else 1
        for body in fake[0].state.requests
    ]
    assert sum(sizes) == 9 and max(sizes) > 1


def test_a_long_poll_returns_unfinished_when_its_wait_runs_out(start_jobs, fake):
    jobs = start_jobs()
    fake[0].state.mode = "stall"
    job = jobs.submit("slow", max_tokens=2)
    assert fake[0].state.arrived.wait(10)
    assert jobs.status(job.id, wait_s=0.2).status == "running"
    release_stall(fake[0])
    assert jobs.status(job.id, wait_s=30).status == "succeeded"


def test_events_stream_each_status_change_then_end(start_jobs, fake):
    jobs = start_jobs()
    fake[0].state.mode = "stall"
    job = jobs.submit("watched", max_tokens=2)
    assert fake[0].state.arrived.wait(10)
    seen: list[dict] = []
    first_seen = threading.Event()

    def read() -> None:
        for event in events_as_they_come(jobs, job.id):
            seen.append(event)
            first_seen.set()

    reader = threading.Thread(target=read)
    reader.start()
    assert first_seen.wait(30)  # subscribed while the job was still running
    release_stall(fake[0])
    reader.join(30)
    assert [event["status"] for event in seen] == ["running", "succeeded"]
    assert seen[-1]["result"]["choices"][0]["text"]


def test_a_running_job_can_be_cancelled_and_its_late_result_is_discarded(start_jobs, fake):
    jobs = start_jobs(workers=1)
    fake[0].state.mode = "stall"
    job = jobs.submit("doomed", max_tokens=2)
    assert fake[0].state.arrived.wait(10)
    assert jobs.cancel(job.id).status == "cancelled"
    with pytest.raises(APIStatusError) as again:
        jobs.cancel(job.id)
    assert again.value.status_code == 409
    fake[0].state.mode = "llama"
    release_stall(fake[0])
    # One worker: the next job runs only after the cancelled one's attempt has ended.
    assert jobs.wait(jobs.submit("next", max_tokens=2).id).status == "succeeded"
    assert jobs.status(job.id).status == "cancelled"
    with pytest.raises(JobFailedError, match="cancelled"):
        jobs.result(job.id)


def test_a_queued_job_cancelled_is_never_sent(start_jobs, fake):
    jobs = start_jobs(workers=0)
    job = jobs.submit("never", max_tokens=2)
    assert jobs.cancel(job.id).status == "cancelled"
    jobs.scale(2)
    assert jobs.wait(jobs.submit("after", max_tokens=2).id).status == "succeeded"
    assert [body["prompt"] for body in fake[0].state.requests] == ["after"]


def test_the_same_idempotency_key_returns_the_same_job(start_jobs, fake):
    jobs = start_jobs()
    first = jobs.submit("once", max_tokens=2, idempotency_key="order-42")
    response = jobs._http.post(
        "/v1/jobs",
        json={"request": {"prompt": "once", "max_tokens": 2}},
        headers={"Idempotency-Key": "order-42"},
    )
    assert response.status_code == 202 and response.json()["id"] == first.id
    assert response.headers["idempotent-replayed"] == "true"
    jobs.wait(first.id)
    with pytest.raises(APIStatusError) as reused:
        jobs.submit("something else", max_tokens=2, idempotency_key="order-42")
    assert reused.value.status_code == 409 and reused.value.code == "idempotency_key_reused"
    assert len(fake[0].state.requests) == 1


def test_retryable_failures_are_retried_until_one_succeeds(start_jobs, fake, any_store):
    jobs = start_jobs(store=any_store, max_attempts=3)
    fake[0].state.fail_next = 2
    done = jobs.wait(jobs.submit("flaky", max_tokens=2).id)
    assert (done.status, done.attempts) == ("succeeded", 3), (done.error, fake[0].state.requests)
    assert len(fake[0].state.requests) == 3, fake[0].state.requests


def test_a_job_out_of_attempts_is_a_dead_letter_with_its_last_error(start_jobs, fake):
    jobs = start_jobs(max_attempts=3)
    fake[0].state.mode = "fail"
    job = jobs.submit("hopeless", max_tokens=2)
    done = jobs.wait(job.id)
    assert (done.status, done.attempts) == ("failed", 3)
    assert done.error["message"].startswith("gave up after 3 attempts")
    assert "GPU fell over" in done.error["message"] and done.error["status"] == 502
    assert [dead.id for dead in jobs.list("failed")] == [job.id]
    with pytest.raises(JobFailedError, match="gave up"):
        jobs.result(job.id)


def test_a_bad_request_fails_at_once_and_does_not_fail_its_batch(start_jobs, fake):
    jobs = start_jobs(workers=4, batch_wait_timeout_s=0.05, max_attempts=3)
    fake[0].state.mode = "stall"
    first = jobs.submit("holder", max_tokens=2)
    assert fake[0].state.arrived.wait(10)
    poison = jobs.submit("poison pill", max_tokens=2)
    fine = jobs.submit("fine", max_tokens=2)
    fake[0].state.mode = "llama"
    release_stall(fake[0])
    dead = jobs.wait(poison.id)
    assert (dead.status, dead.attempts, dead.error["status"]) == ("failed", 1, 400)
    assert "poisoned prompt" in dead.error["message"]
    assert jobs.wait(fine.id).status == jobs.wait(first.id).status == "succeeded"


def test_an_unreachable_upstream_is_retried_then_reported(start_jobs):
    jobs = start_jobs(upstream_url="http://127.0.0.1:9/v1", max_attempts=2)
    done = jobs.wait(jobs.submit("nobody home", max_tokens=2).id)
    assert (done.status, done.attempts) == ("failed", 2)
    assert "could not be reached" in done.error["message"]


def test_a_full_queue_answers_429_with_retry_after(start_jobs):
    jobs = start_jobs(workers=0, max_queue_size=2)
    jobs.submit("one", max_tokens=2)
    jobs.submit("two", max_tokens=2)
    response = jobs._http.post("/v1/jobs", json={"request": {"prompt": "three"}})
    assert response.status_code == 429
    assert int(response.headers["retry-after"]) >= 1
    assert response.json()["error"]["type"] == "rate_limit_error"


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "param"),
    [
        ("POST", "/v1/jobs", {}, 400, "request"),
        ("POST", "/v1/jobs", {"request": {"prompt": 3}}, 400, "request.prompt"),
        ("POST", "/v1/jobs", {"request": {"prompt": "x", "stream": True}}, 400, "request"),
        ("POST", "/v1/jobs", {"request": {"prompt": "x"}, "colour": "red"}, 400, "colour"),
        ("POST", "/v1/jobs", {"request": {"prompt": "x"}, "max_attempts": 0}, 400, "max_attempts"),
        (
            "POST",
            "/v1/jobs",
            {"request": {"prompt": "x"}, "callback_url": "http://10.1.2.3/x"},
            400,
            "callback_url",
        ),
        ("GET", "/v1/jobs/job-missing", None, 404, "id"),
        ("DELETE", "/v1/jobs/job-missing", None, 404, "id"),
        ("GET", "/v1/jobs/job-missing/events", None, 404, "id"),
        ("GET", "/v1/jobs/job-x?wait_s=-1", None, 400, "wait_s"),
        ("GET", "/v1/jobs/job-x?wait_s=3600", None, 400, "wait_s"),
        ("GET", "/v1/jobs?status=lost", None, 400, "status"),
    ],
)
def test_bad_input_gets_a_clear_4xx_in_openai_shape(start_jobs, method, path, body, status, param):
    jobs = start_jobs()
    response = jobs._http.request(method, path, json=body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["message"] and error["param"] == param


def test_text_that_is_not_unicode_is_a_400_and_the_job_list_still_answers(start_jobs):
    """A lone surrogate never reaches the store: no job made, nothing that cannot be listed."""
    jobs = start_jobs()
    headers = {"content-type": "application/json"}
    ok = {"request": {"prompt": "ok"}}
    for path, body in (
        ("/v1/jobs", {"request": {"prompt": "\ud800"}}),
        ("/v1/jobs", {**ok, "callback_url": "http://127.0.0.1/\udfff"}),
        ("/v1/jobs/batch", {"requests": [ok, {"request": {"prompt": "\ud800"}}]}),
        ("/v1/jobs/batch", {"requests": [{**ok, "idempotency_key": "\udfff"}]}),
        ("/v1/jobs/batch", {"requests": [ok], "\ud800": 1}),  # a key of the bulk itself
    ):
        response = jobs._http.post(path, content=json.dumps(body), headers=headers)
        assert response.status_code == 400, response.text
        assert "not valid Unicode" in response.json()["error"]["message"]
    listed = jobs._http.get("/v1/jobs")
    assert listed.status_code == 200 and listed.json()["data"] == []


def test_bad_json_and_bad_worker_counts_are_400s(start_jobs):
    jobs = start_jobs()
    response = jobs._http.post(
        "/v1/jobs", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert jobs._http.put("/admin/workers", json={"workers": -1}).status_code == 400
    assert jobs._http.put("/admin/workers", json={}).status_code == 400
    too_many = jobs._http.put("/admin/workers", json={"workers": 10_000_000})
    assert too_many.status_code == 400 and "0 to 1024" in too_many.json()["error"]["message"]
    assert jobs.scale(3)["workers"] == 3


def test_without_a_secret_there_are_no_webhooks(start_jobs):
    jobs = start_jobs(webhook_secret=None)
    with pytest.raises(APIStatusError, match="webhook secret") as refused:
        jobs.submit("x", callback_url="http://127.0.0.1:1/hook")
    assert refused.value.status_code == 400


@pytest.fixture
def receiver():
    """A tiny webhook receiver: records each request; `failures` makes the first ones 500."""
    app = FastAPI()
    app.state.received, app.state.failures = [], 0
    app.state.arrived = threading.Event()

    @app.post("/hook")
    async def hook(request: Request):
        app.state.received.append((await request.body(), dict(request.headers)))
        app.state.arrived.set()
        if app.state.failures > 0:
            app.state.failures -= 1
            return JSONResponse({"error": "not now"}, 500)
        return {"ok": True}

    with ServerThread(app) as server:
        yield app, server.base_url.removesuffix("/v1") + "/hook"


def test_a_finished_job_is_posted_to_its_callback_signed(start_jobs, receiver):
    app, url = receiver
    jobs = start_jobs()
    job = jobs.submit("call me", max_tokens=2, callback_url=url)
    final = events(jobs, job.id)[-1]
    assert final["callback"] == {"state": "delivered", "attempts": 1, "last_error": None}
    [(body, headers)] = app.state.received
    assert json.loads(body)["id"] == job.id and json.loads(body)["status"] == "succeeded"
    assert headers["inferlab-job-id"] == job.id
    assert verify_signature(SECRET, body, headers[SIGNATURE_HEADER.lower()])
    assert not verify_signature("wrong-secret", body, headers[SIGNATURE_HEADER.lower()])


def test_a_failing_receiver_is_retried_with_backoff_then_given_up(start_jobs, receiver):
    app, url = receiver
    app.state.failures = 2
    jobs = start_jobs(webhook_backoff=QUICK, webhook_max_attempts=5)
    job = jobs.submit("retry me", max_tokens=2, callback_url=url)
    assert events(jobs, job.id)[-1]["callback"]["state"] == "delivered"
    assert len(app.state.received) == 3

    app.state.failures = 99
    jobs = start_jobs(webhook_backoff=QUICK, webhook_max_attempts=2)
    job = jobs.submit("give up", max_tokens=2, callback_url=url)
    final = events(jobs, job.id)[-1]["callback"]
    assert final["state"] == "failed" and final["attempts"] == 2
    assert "answered 500" in final["last_error"]


def test_metrics_show_queue_depth_and_workers(start_jobs):
    jobs = start_jobs(workers=0)
    jobs.submit("waiting", max_tokens=2)
    text = jobs._http.get("/metrics").text
    assert 'inferlab_jobs:jobs{status="queued"} 1.0' in text
    assert "inferlab_jobs:workers 0.0" in text
    assert jobs.stats()["queued"] == 1


def test_workers_of_another_process_share_one_redis_queue(start_jobs, redis_url, tmp_path):
    """Server A only accepts (no workers); server B, sharing A's Redis, does the work. Neither
    hears the other's changes directly: both find them in the store."""
    prefix = f"shared:{tmp_path.name}:"
    front = start_jobs(store=RedisJobStore(redis_url, prefix=prefix), workers=0)
    back = start_jobs(store=RedisJobStore(redis_url, prefix=prefix), workers=2)
    ids = [front.submit(f"shared {i}", max_tokens=2).id for i in range(6)]
    assert {front.wait(job_id).status for job_id in ids} == {"succeeded"}
    assert back.stats()["succeeded"] == 6 and front.stats()["workers"] == 0


def test_a_redis_that_would_lose_acknowledged_jobs_is_refused_at_start(own_redis, caplog):
    """Redis's defaults (no append-only file): a restart loses every acknowledged job, so the
    job API will not start on it, unless told to accept the risk (then it warns)."""

    async def start(store: RedisJobStore) -> None:
        try:
            await store.open()
        finally:
            await store.close()

    with own_redis() as (_, url):
        with pytest.raises(RuntimeError, match="appendonly no"):
            asyncio.run(start(RedisJobStore(url)))
        with caplog.at_level(logging.WARNING, logger="inferlab.jobs.redis_store"):
            asyncio.run(start(RedisJobStore(url, allow_data_loss=True)))
        assert "appendonly no" in caplog.text and "accepted" in caplog.text


def test_redis_down_is_a_503_with_retry_after_everywhere_health_included(start_jobs, own_redis):
    with own_redis("--appendonly", "yes", "--appendfsync", "always") as (redis, url):
        jobs = start_jobs(store=RedisJobStore(url), workers=0)
        job = jobs.submit("before", max_tokens=2)
        assert jobs._http.get("/health").status_code == 200
        redis.kill()
        redis.wait(10)
        for method, path, body in [
            ("POST", "/v1/jobs", {"request": {"prompt": "after"}}),
            ("GET", f"/v1/jobs/{job.id}", None),
            ("GET", f"/v1/jobs/{job.id}?wait_s=5", None),
            ("GET", f"/v1/jobs/{job.id}/events", None),
            ("GET", "/metrics", None),
            ("GET", "/admin/workers", None),
            ("GET", "/health", None),
        ]:
            response = jobs._http.request(method, path, json=body)
            assert response.status_code == 503, (path, response.text)
            assert int(response.headers["retry-after"]) >= 1
            error = response.json()["error"]
            assert error["type"] == "server_error" and "unavailable" in error["message"]


@pytest.fixture
def silent_receiver():
    """A webhook receiver that never answers (until the test ends)."""
    app = FastAPI()
    app.state.arrived = threading.Event()
    app.state.release, app.state.loop = None, None

    @app.post("/hook")
    async def hook():
        app.state.loop = asyncio.get_running_loop()
        app.state.release = app.state.release or asyncio.Event()
        app.state.arrived.set()
        await app.state.release.wait()
        return {"ok": True}

    with ServerThread(app) as server:
        yield app, server.base_url.removesuffix("/v1") + "/hook"
        release_stall(app)


def test_a_receiver_that_never_answers_delays_no_other_receivers_webhooks(
    start_jobs, receiver, silent_receiver
):
    """Eight jobs call back a receiver that never answers (10 s timeout each); eight more call
    a healthy one. The healthy eight are delivered while the silent host holds its own slots
    (4 at most): a single sequential sender would make them wait 80 s."""
    healthy, healthy_url = receiver
    silent, silent_url = silent_receiver
    jobs = start_jobs(workers=8)
    stuck = [jobs.submit(f"s{i}", max_tokens=2, callback_url=silent_url) for i in range(8)]
    assert silent.state.arrived.wait(30)  # the silent receiver holds deliveries now
    fine = [jobs.submit(f"h{i}", max_tokens=2, callback_url=healthy_url) for i in range(8)]
    for job in fine:
        assert events(jobs, job.id)[-1]["callback"]["state"] == "delivered"
    assert len(healthy.state.received) == 8
    for job in stuck:
        assert jobs._http.get(f"/v1/jobs/{job.id}").json()["callback"]["state"] == "pending"


# -- bulk submission: POST /v1/jobs/batch ------------------------------------------------------


def a_bulk(*prompts, **item):
    return {"requests": [{"request": {"prompt": p, "max_tokens": 2}, **item} for p in prompts]}


def test_a_bulk_is_acknowledged_in_order_once_stored_and_each_job_runs(start_jobs, any_store):
    jobs = start_jobs(store=any_store)
    response = jobs._http.post("/v1/jobs/batch", json=a_bulk("a", "b", "c"))
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["object"] == "list"
    assert [job["request"]["prompt"] for job in body["data"]] == ["a", "b", "c"]
    assert {job["status"] for job in body["data"]} <= {"queued", "running", "succeeded"}
    done = [jobs.wait(job["id"]) for job in body["data"]]
    assert [job.text for job in done] == [" a_0 a_1", " b_0 b_1", " c_0 c_1"]


def test_a_bulk_is_on_disk_when_acknowledged(start_jobs, any_store, tmp_path, request):
    """Read back through a second store of its own (another connection, or another client of
    the same Redis): what the 202 listed was committed before it was sent."""
    jobs = start_jobs(store=any_store, workers=0)
    listed = jobs.submit_many([f"p{i}" for i in range(100)], max_tokens=2)
    if isinstance(any_store, SQLiteJobStore):
        other = SQLiteJobStore(any_store.path)
    else:
        other = RedisJobStore(request.getfixturevalue("redis_url"), prefix=any_store.prefix)

    async def read_back():
        try:
            return await asyncio.gather(*(other.get(job.id) for job in listed))
        finally:
            await other.close()

    stored = asyncio.run(read_back())
    assert [job.request["prompt"] for job in stored] == [f"p{i}" for i in range(100)]


def test_one_bad_item_refuses_the_whole_bulk_and_names_itself(start_jobs, any_store):
    jobs = start_jobs(store=any_store)
    body = a_bulk("a", "b", "c", "d")
    body["requests"][3]["request"]["prompt"] = 3
    response = jobs._http.post("/v1/jobs/batch", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "requests.3.request.prompt"
    body = a_bulk("a", "b")
    body["requests"][1]["callback_url"] = "http://10.1.2.3/hook"  # not an allowed host
    response = jobs._http.post("/v1/jobs/batch", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "requests.1.callback_url"
    assert jobs.list() == []


def test_a_bulk_holds_at_most_1000_jobs(start_jobs):
    jobs = start_jobs(workers=0)
    response = jobs._http.post("/v1/jobs/batch", json=a_bulk(*(f"p{i}" for i in range(1001))))
    assert response.status_code == 400 and response.json()["error"]["param"] == "requests"
    assert "at most 1000" in response.json()["error"]["message"]
    assert len(jobs.submit_many([f"p{i}" for i in range(1000)], max_tokens=2)) == 1000


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"requests": []}, "requests"),
        ({}, "requests"),
        ({"requests": [{"request": {"prompt": "x"}}], "colour": "red"}, "colour"),
        (
            {"requests": [{"request": {"prompt": "x"}, "idempotency_key": 7}]},
            "requests.0.idempotency_key",
        ),
        ({"requests": [{"request": {"prompt": "x", "stream": True}}]}, "requests.0.request"),
    ],
)
def test_a_bulk_is_a_list_of_single_submissions_each_with_its_own_key(start_jobs, body, param):
    jobs = start_jobs()
    response = jobs._http.post("/v1/jobs/batch", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["message"] and error["param"] == param


def test_idempotency_keys_in_a_bulk_return_their_jobs_and_a_reused_one_refuses_it(
    start_jobs, any_store
):
    jobs = start_jobs(store=any_store, workers=0)
    first = jobs.submit("once", max_tokens=2, idempotency_key="order-1")
    again = jobs.submit_many(
        ["once", "new", "new"], max_tokens=2, idempotency_keys=["order-1", "order-2", "order-2"]
    )
    assert again[0].id == first.id and again[1].id == again[2].id != first.id
    with pytest.raises(APIStatusError) as reused:
        jobs.submit_many(["fine", "other"], max_tokens=2, idempotency_keys=[None, "order-1"])
    error = reused.value
    assert (error.status_code, error.code, error.param) == (
        409,
        "idempotency_key_reused",
        "requests.1.idempotency_key",
    )
    assert len(jobs.list()) == 2  # "fine" was not queued either


def test_a_bulk_the_queue_has_no_room_for_is_a_429_saying_how_much_room_there_is(
    start_jobs, any_store
):
    jobs = start_jobs(store=any_store, workers=0, max_queue_size=5)
    jobs.submit_many(["a", "b"], max_tokens=2)
    response = jobs._http.post("/v1/jobs/batch", json=a_bulk("c", "d", "e", "f"))
    assert response.status_code == 429 and int(response.headers["retry-after"]) >= 1
    assert "room for 3 more jobs" in response.json()["error"]["message"]
    assert len(jobs.submit_many(["c", "d", "e"], max_tokens=2)) == 3


def test_the_async_client_submits_a_bulk_of_whole_requests(start_jobs):
    jobs = start_jobs(workers=0)

    async def submit():
        async with AsyncJobClient(jobs.base_url) as client:
            return await client.submit_many(requests=[{"prompt": "a"}, {"prompt": ["b", "c"]}])

    queued = asyncio.run(submit())
    assert [job.raw["request"]["prompt"] for job in queued] == ["a", ["b", "c"]]
    with pytest.raises(ValueError, match="one idempotency key"):
        jobs.submit_many(["a", "b"], idempotency_keys=["k"])
    with pytest.raises(TypeError):
        jobs.submit_many(["a"], requests=[{"prompt": "b"}])


def test_a_key_used_twice_in_one_bulk_for_two_requests_names_both_items(start_jobs, any_store):
    """Nothing is stored, so the 409 must not send the client to a job that does not exist:
    it names the two items instead."""
    jobs = start_jobs(store=any_store, workers=0)
    with pytest.raises(APIStatusError) as reused:
        jobs.submit_many(["a", "b", "c"], max_tokens=2, idempotency_keys=["k", None, "k"])
    error = reused.value
    assert (error.status_code, error.code, error.param) == (
        409,
        "idempotency_key_reused",
        "requests.2.idempotency_key",
    )
    assert "requests.0" in str(error) and "job-" not in str(error)
    assert jobs.list() == []


def test_an_empty_idempotency_key_is_refused_alike_on_every_store(start_jobs, any_store):
    """SQLite would keep "" as a key (a second job under it: a 409), Redis as no key at all (a
    second job): neither is what the client meant, so the API refuses it, header or field."""
    jobs = start_jobs(store=any_store, workers=0)
    headers = {"Idempotency-Key": ""}
    for body in ({"request": {"prompt": "a"}}, {"request": {"prompt": "b"}}):
        response = jobs._http.post("/v1/jobs", json=body, headers=headers)
        assert response.status_code == 400, response.text
        assert response.json()["error"]["param"] == "idempotency-key"
    response = jobs._http.post("/v1/jobs/batch", json=a_bulk("a", idempotency_key=""))
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "requests.0.idempotency_key"
    assert jobs.list() == []


def test_submit_many_refuses_one_string_rather_than_queue_a_job_per_character():
    """A str is a Sequence of str: submit_many("hello") would have queued five jobs, "h" to
    "o". Refused before anything is sent (no server listens on port 9)."""
    with pytest.raises(TypeError, match="a list of prompts"):
        JobClient("http://127.0.0.1:9").submit_many("hello", max_tokens=2)

    async def submit():
        async with AsyncJobClient("http://127.0.0.1:9") as jobs:
            await jobs.submit_many("hello", max_tokens=2)

    with pytest.raises(TypeError, match="a list of prompts"):
        asyncio.run(submit())


def test_completion_parameters_beside_a_whole_request_are_refused_not_dropped():
    """submit(request={...}, max_tokens=8) sent the request without max_tokens: refused now,
    before anything is sent, as submit_many(requests=[...], max_tokens=8) is."""
    jobs = JobClient("http://127.0.0.1:9")
    with pytest.raises(TypeError, match="max_tokens"):
        jobs.submit(request={"prompt": "a"}, max_tokens=8)
    with pytest.raises(TypeError, match="max_tokens"):
        jobs.submit_many(requests=[{"prompt": "a"}], max_tokens=8)


def test_a_bulk_bigger_than_the_queue_can_ever_hold_is_a_400_not_a_429(start_jobs, any_store):
    """A 429 says "retry later", and a client that obeys would retry for ever: six new jobs
    never fit a queue of five, however empty. Counted as the store counts room, new jobs only:
    six items of which two repeat stored keys need four places, and may fit later (a 429)."""
    jobs = start_jobs(store=any_store, workers=0, max_queue_size=5)
    response = jobs._http.post("/v1/jobs/batch", json=a_bulk(*"abcdef"))
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == "requests" and "at most 5" in error["message"]
    assert "retry-after" not in response.headers
    jobs.submit_many(["a", "b"], max_tokens=2, idempotency_keys=["ka", "kb"])
    body = a_bulk(*"abcdef")
    body["requests"][0]["idempotency_key"], body["requests"][1]["idempotency_key"] = "ka", "kb"
    response = jobs._http.post("/v1/jobs/batch", json=body)
    assert response.status_code == 429 and "room for 3 more jobs" in response.text
    assert len(jobs.list()) == 2
