"""The job API over HTTP: submit, poll (or long-poll, or listen), cancel, list the dead letters.

    inferlab jobs --upstream http://127.0.0.1:8000/v1 --port 9100 --workers 4

    POST   /v1/jobs                 {"request": {completion}, "callback_url": ...}  -> 202
                                    header Idempotency-Key: same key, same job
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
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..errors import OpenAIHTTPError, StoreUnavailableError
from ..serve._http import (
    BodySizeLimit,
    api_key_dependency,
    error_body,
    install_error_handlers,
    relay,
)
from ..serve.schemas import ProxyCompletionRequest, refuse_unencodable
from ..wire.upstream import Upstream
from ._records import Status
from .service import JobService
from .store import JobStore, SQLiteJobStore

MAX_WAIT_S = 60.0
STORE_RETRY_AFTER_S = 2  # a Redis restart, or a failover, takes seconds


class JobSubmission(BaseModel):
    model_config = ConfigDict(extra="forbid")
    _encodable = model_validator(mode="before")(refuse_unencodable)  # callback_url too

    request: ProxyCompletionRequest
    callback_url: str | None = Field(None, max_length=2048)
    max_attempts: int | None = Field(None, ge=1, le=20)

    @field_validator("request")
    @classmethod
    def _not_streamed(cls, request: ProxyCompletionRequest) -> ProxyCompletionRequest:
        if request.stream:
            raise ValueError("a job cannot be streamed: its result is fetched when it is done")
        return request


def create_jobs_app(
    upstream_url: str,
    *,
    store: JobStore | None = None,
    upstream_api_key: str | None = None,
    list_prompts: bool = True,
    api_key: str | None = None,
    allow_callback_hosts: Iterable[str] = (),
    **options: Any,
) -> FastAPI:
    """The job API in front of `upstream_url` (an OpenAI base URL ending in /v1).

    `store` defaults to SQLite in ./jobs.db. `options` go to JobService: workers,
    max_queue_size, max_attempts, lease_s, attempt_timeout_s, backoff, webhook_secret,
    fallback_poll_s, and the MicroBatcher's settings (max_batch_size, batch_wait_timeout_s, ...).
    """
    upstream = Upstream(upstream_url, api_key=upstream_api_key, list_prompts=list_prompts)
    service = JobService(
        store or SQLiteJobStore("jobs.db"),
        upstream,
        allow_callback_hosts=allow_callback_hosts,
        **options,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await service.start()
        yield
        await service.aclose()

    app = FastAPI(title="inferlab job API", lifespan=lifespan)
    app.state.service = service
    install_error_handlers(app)

    async def store_unavailable(_: Request, exc: Exception) -> Response:
        headers = {"Retry-After": str(STORE_RETRY_AFTER_S)}
        return JSONResponse(error_body(f"the job store is unavailable: {exc}", 503), 503, headers)

    app.add_exception_handler(StoreUnavailableError, store_unavailable)
    app.add_middleware(BodySizeLimit, max_body_bytes=4 * 1024 * 1024)
    guard = [Depends(api_key_dependency(api_key))]
    v1 = APIRouter(prefix="/v1", dependencies=guard)

    @v1.post("/jobs", status_code=202)
    async def submit(
        submission: JobSubmission,
        idempotency_key: str | None = Header(None, max_length=255),
    ) -> Response:
        submitted = await service.submit(
            submission.request.model_dump(exclude_unset=True),
            callback_url=submission.callback_url,
            idempotency_key=idempotency_key,
            max_attempts=submission.max_attempts,
        )
        headers = {"Location": f"/v1/jobs/{submitted.job.id}"}
        if not submitted.created:
            headers["Idempotent-Replayed"] = "true"
        return JSONResponse(submitted.job.public(), 202, headers)

    @v1.get("/jobs")
    async def list_jobs(
        status: Status | None = None, limit: int = Query(100, ge=1, le=1000)
    ) -> dict[str, Any]:
        jobs = await service.list(status, limit)
        return {"object": "list", "data": [job.public() for job in jobs]}

    @v1.get("/jobs/{job_id}")
    async def get_job(job_id: str, wait_s: float = Query(0.0, ge=0.0, le=MAX_WAIT_S)) -> Response:
        return JSONResponse((await service.get(job_id, wait_s=wait_s)).public())

    @v1.get("/jobs/{job_id}/events")
    async def job_events(job_id: str) -> Response:
        changes = service.changes(job_id)
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

    @v1.delete("/jobs/{job_id}")
    async def cancel_job(job_id: str) -> Response:
        return JSONResponse((await service.cancel(job_id)).public())

    @v1.get("/models")
    async def models() -> Response:
        """The upstream's models, so clients can pick one without knowing the upstream."""
        return await relay(upstream.http.get(upstream.base_url + "/models"))

    app.include_router(v1)

    @app.get("/admin/workers", dependencies=guard)
    async def get_workers() -> dict[str, Any]:
        return await service.stats()

    @app.put("/admin/workers", dependencies=guard)
    async def put_workers(request: Request) -> dict[str, Any]:
        try:
            changes = await request.json()
            service.pool.scale(changes["workers"])
        except (ValueError, TypeError, KeyError) as exc:
            raise OpenAIHTTPError(400, f'expected {{"workers": <n>}}: {exc}') from exc
        return await service.stats()

    @app.get("/health")
    async def health() -> dict[str, str]:
        await service.store.ping()  # unreachable: 503, so a load balancer stops sending here
        return {"status": "ok"}

    registry = CollectorRegistry()
    collector = _JobsCollector(service)
    registry.register(collector)

    @app.get("/metrics")
    async def metrics() -> Response:
        collector.counts = await service.store.counts()  # collect() itself cannot await
        return Response(generate_latest(registry), media_type="text/plain; version=0.0.4")

    return app


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
