"""The job API over HTTP: submit, poll (or long-poll, or listen), cancel, list the dead letters.

    inferlab jobs --upstream http://127.0.0.1:8000/v1 --port 9100 --workers 4

    POST   /v1/jobs                 {"request": {completion}, "callback_url": ...}  -> 202
                                    header Idempotency-Key: same key, same job
    POST   /v1/jobs/batch           {"requests": [<as above, + "idempotency_key">, ...]}
                                    1 to 1,000 jobs, all or none, one disk sync -> 202
    GET    /v1/jobs/{id}?wait_s=10  the job; waits until it finished or 10 s passed
    GET    /v1/jobs/{id}/events     Server-Sent Events: one `status` event per change
    DELETE /v1/jobs/{id}            cancel (409 once it finished)
    GET    /v1/jobs?status=failed   newest first: the dead letters
    GET    /v1/models               the upstream's, passed through
    GET    /admin/workers           queue depth by status, and the worker count
    PUT    /admin/workers           {"workers": 8}: scale while it runs
    GET    /health, GET /metrics

Errors leave in OpenAI's shape, like every server in inferlab; a full queue is a 429 with
Retry-After, and an unreachable store (Redis down) a 503 with Retry-After, /health included.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Header, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from ..errors import OpenAIHTTPError, StoreUnavailableError
from ..serve._http import (
    Lifecycle,
    error_body,
    relay,
    service_app,
    service_dependency,
)
from ..serve._openapi import sse_events
from ..serve.schemas import ProxyCompletionRequest, refuse_unencodable, whole_float_as_int
from ..wire.upstream import Upstream
from ._records import Status
from .redis_store import RedisJobStore
from .retry import Backoff
from .service import JobService, Submission
from .settings import MAX_JOBS_PER_SUBMISSION, JobSettings
from .store import JobStore, SQLiteJobStore

MAX_WAIT_S = 60.0
STORE_RETRY_AFTER_S = 2  # a Redis restart, or a failover, takes seconds


def _refuse_unencodable_but(nested: str) -> Callable[[Any], Any]:
    """A before-validator: refuse_unencodable for a body's own text (its keys, callback_url),
    all but field `nested`, whose models check themselves, so its text is walked once, not
    twice. (Without one, pydantic's own refusal of a key that is not Unicode reads "The
    request body must be a JSON object".)"""

    def refuse(data: Any) -> Any:
        if isinstance(data, dict) and nested in data:
            refuse_unencodable({key: value for key, value in data.items() if key != nested})
            return data
        return refuse_unencodable(data)

    return refuse


class JobSubmission(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # "3" is not a number of attempts
    _encodable = model_validator(mode="before")(_refuse_unencodable_but("request"))

    request: ProxyCompletionRequest
    callback_url: str | None = Field(None, max_length=2048)
    max_attempts: Annotated[int, Field(ge=1, le=20), BeforeValidator(whole_float_as_int)] | None = (
        None
    )

    @field_validator("request")
    @classmethod
    def _not_streamed(cls, request: ProxyCompletionRequest) -> ProxyCompletionRequest:
        if request.stream:
            raise ValueError("a job cannot be streamed: its result is fetched when it is done")
        return request


class JobBatchItem(JobSubmission):
    """One job of a bulk submission: POST /v1/jobs's body, with its own idempotency key."""

    # An empty key is refused (here and in the header): SQLite would keep "" as a key, Redis
    # as none at all, and neither is what a client sending it meant.
    idempotency_key: str | None = Field(None, min_length=1, max_length=255)


class JobBatch(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    _encodable = model_validator(mode="before")(_refuse_unencodable_but("requests"))

    requests: list[JobBatchItem] = Field(min_length=1, max_length=MAX_JOBS_PER_SUBMISSION)


class JobServer(Lifecycle):
    """The job API as one service: its store, its `JobService` (workers, retries, webhooks),
    its typed settings, and the HTTP app that fronts them.

        server = JobServer(JobSettings(upstream="http://127.0.0.1:8000/v1", workers=8))
        server.app          # the FastAPI app uvicorn serves
        server.service      # the queue itself: submit, get, cancel, scale

    `store` replaces the one the settings name (SQLite at `db`, or Redis at `redis_url`);
    `backoff` and `webhook_backoff` replace the retry delays the settings describe, for tests
    that want a seeded random generator.
    """

    def __init__(
        self,
        settings: JobSettings,
        *,
        store: JobStore | None = None,
        backoff: Backoff | None = None,
        webhook_backoff: Backoff | None = None,
    ) -> None:
        super().__init__()
        self.settings = settings
        upstream = Upstream(
            settings.upstream, api_key=settings.upstream_api_key, list_prompts=settings.list_prompts
        )
        self.service = JobService(
            store or _store_for(settings),
            upstream,
            workers=settings.workers,
            max_queue_size=settings.max_queue_size,
            max_attempts=settings.max_attempts,
            lease_s=settings.lease_s,
            attempt_timeout_s=settings.attempt_timeout_s,
            backoff=backoff or Backoff(base_s=settings.retry_base_s, cap_s=settings.retry_cap_s),
            webhook_secret=settings.webhook_secret,
            webhook_max_attempts=settings.webhook_max_attempts,
            webhook_backoff=webhook_backoff,
            allow_callback_hosts=settings.allow_callback_host,
            fallback_poll_s=settings.fallback_poll_s,
            max_batch_size=settings.max_batch_size,
            batch_wait_timeout_s=settings.batch_wait_timeout_s,
            max_concurrent_batches=settings.max_concurrent_batches,
        )
        self.app = service_app(
            "inferlab job API",
            self,
            routers=[router],
            api_key=settings.api_key,
            max_body_bytes=settings.max_body_bytes,
            http_limits=settings.http_limits,
            metrics=self._metrics,
            health=self.service.store.ping,  # unreachable: 503, so a balancer stops sending
        )
        self.app.add_exception_handler(StoreUnavailableError, _store_unavailable)
        self._collector = _JobsCollector(self.service)
        self._registry = CollectorRegistry()
        self._registry.register(self._collector)

    async def _start(self) -> None:
        await self.service.start()

    async def _close(self) -> None:
        await self.service.aclose()

    async def _metrics(self) -> bytes:
        self._collector.counts = await self.service.store.counts()  # collect() cannot await
        return generate_latest(self._registry)


def _store_for(settings: JobSettings) -> JobStore:
    if settings.redis_url:
        return RedisJobStore(settings.redis_url, allow_data_loss=settings.redis_allow_data_loss)
    return SQLiteJobStore(settings.db)


async def _store_unavailable(_: Request, exc: Exception) -> Response:
    headers = {"Retry-After": str(STORE_RETRY_AFTER_S)}
    return JSONResponse(error_body(f"the job store is unavailable: {exc}", 503), 503, headers)


router = APIRouter()
_jobs = service_dependency(JobServer)


def _job_link(operation_id: str) -> dict[str, Any]:
    return {"operationId": operation_id, "parameters": {"job_id": "$response.body#/id"}}


# OpenAPI links: what a client (or a stateful fuzzer) may do next with the id it was given.
_SUBMITTED: dict[int | str, dict[str, Any]] = {
    202: {
        "description": "Accepted: the job, queued; its URL is in the Location header",
        "links": {
            "GetJob": _job_link("get_job"),
            "JobEvents": _job_link("job_events"),
            "CancelJob": _job_link("cancel_job"),
        },
    }
}


@router.post("/v1/jobs", status_code=202, responses=_SUBMITTED)
async def submit(
    submission: JobSubmission,
    idempotency_key: str | None = Header(None, min_length=1, max_length=255),
    server: JobServer = _jobs,
) -> Response:
    submitted = await server.service.submit(
        submission.request.model_dump(exclude_unset=True),
        callback_url=submission.callback_url,
        idempotency_key=idempotency_key,
        max_attempts=submission.max_attempts,
    )
    headers = {"Location": f"/v1/jobs/{submitted.job.id}"}
    if not submitted.created:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(submitted.job.public(), 202, headers)


@router.post("/v1/jobs/batch", status_code=202)
async def submit_batch(batch: JobBatch, server: JobServer = _jobs) -> Response:
    """Up to 1,000 jobs, all or none: a 400 naming the first bad one (`requests.3.request`),
    a 429 if the queue has no room for all, else the jobs in order once all are stored."""
    submitted = await server.service.submit_many(
        [
            Submission(
                item.request.model_dump(exclude_unset=True),
                callback_url=item.callback_url,
                idempotency_key=item.idempotency_key,
                max_attempts=item.max_attempts,
            )
            for item in batch.requests
        ]
    )
    body = {"object": "list", "data": [one.job.public() for one in submitted]}
    return JSONResponse(body, 202)


@router.get("/v1/jobs")
async def list_jobs(
    status: Status | None = None,
    limit: int = Query(100, ge=1, le=1000),
    server: JobServer = _jobs,
) -> dict[str, Any]:
    jobs = await server.service.list(status, limit)
    return {"object": "list", "data": [job.public() for job in jobs]}


@router.get("/v1/jobs/{job_id}", operation_id="get_job")
async def get_job(
    job_id: str,
    wait_s: float = Query(0.0, ge=0.0, le=MAX_WAIT_S),
    server: JobServer = _jobs,
) -> Response:
    return JSONResponse((await server.service.get(job_id, wait_s=wait_s)).public())


_STATUS_EVENTS: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Server-Sent Events: one `status` event, the job as JSON, per change",
        "content": sse_events("`status` events whose data is the job, one per change"),
    }
}


@router.get(
    "/v1/jobs/{job_id}/events",
    operation_id="job_events",
    response_class=Response,
    responses=_STATUS_EVENTS,
)
async def job_events(job_id: str, server: JobServer = _jobs) -> Response:
    changes = server.service.changes(job_id)
    first = await anext(changes)  # an unknown job is a 404 before any event is sent

    async def stream() -> AsyncIterator[str]:
        job = first
        while True:
            data = json.dumps(job.public(), separators=(",", ":"))
            yield f"event: status\nid: {job.version}\ndata: {data}\n\n"
            try:
                job = await anext(changes)
            except StopAsyncIteration:
                return

    return StreamingResponse(stream(), media_type="text/event-stream")


@router.delete("/v1/jobs/{job_id}", operation_id="cancel_job")
async def cancel_job(job_id: str, server: JobServer = _jobs) -> Response:
    return JSONResponse((await server.service.cancel(job_id)).public())


@router.get("/v1/models")
async def models(server: JobServer = _jobs) -> Response:
    """The upstream's models, so clients can pick one without knowing the upstream."""
    upstream = server.service.upstream
    return await relay(upstream.http.get(upstream.base_url + "/models"))


@router.get("/admin/workers")
async def get_workers(server: JobServer = _jobs) -> dict[str, Any]:
    return await server.service.stats()


@router.put("/admin/workers")
async def put_workers(request: Request, server: JobServer = _jobs) -> dict[str, Any]:
    try:
        changes = await request.json()
        server.service.pool.scale(changes["workers"])
    except (ValueError, TypeError, KeyError) as exc:
        raise OpenAIHTTPError(400, f'expected {{"workers": <n>}}: {exc}') from exc
    return await server.service.stats()


def create_jobs_app(
    upstream_url: str,
    *,
    store: JobStore | None = None,
    backoff: Backoff | None = None,
    webhook_backoff: Backoff | None = None,
    **settings: Any,
) -> FastAPI:
    """The app of a new `JobServer` in front of `upstream_url` (an OpenAI base URL ending in
    /v1); `settings` are `JobSettings` fields, and an unknown one raises TypeError."""
    job_settings = JobSettings.from_dict({"upstream": upstream_url, **settings})
    server = JobServer(job_settings, store=store, backoff=backoff, webhook_backoff=webhook_backoff)
    return server.app


class _JobsCollector(Collector):
    def __init__(self, service: JobService):
        self.service = service
        self.counts: dict[Status, int] = {}

    def collect(self) -> list[Metric]:
        jobs = GaugeMetricFamily(
            "inferlab_jobs:jobs", "Jobs in the store by status", labels=["status"]
        )
        for status, count in self.counts.items():
            jobs.add_metric([status.value], count)
        workers = GaugeMetricFamily(
            "inferlab_jobs:workers", "Workers running", self.service.pool.workers
        )
        busy = GaugeMetricFamily(
            "inferlab_jobs:busy_workers", "Workers with a job", self.service.pool.busy
        )
        stats = self.service.pool.stats
        attempts = CounterMetricFamily(
            "inferlab_jobs:attempts", "Attempts by how they ended", labels=["outcome"]
        )
        for outcome in ("succeeded", "failed", "retried", "dropped"):
            attempts.add_metric([outcome], getattr(stats, outcome))
        return [jobs, workers, busy, attempts]
