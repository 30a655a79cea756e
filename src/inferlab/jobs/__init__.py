"""Asynchronous inference: a job API with a durable queue, workers, polling, webhooks and dead
letters. Submit now, get an acknowledgement at once, collect the result later.

    client ──POST /v1/jobs──▶ store (SQLite or Redis) ◀──claim── workers ──MicroBatcher──▶ model
       ▲  202 {id, queued}        │ every change                             server
       └──GET ?wait_s / SSE ──────┘ ──webhook (signed) ──▶ callback_url

    app = create_jobs_app("http://127.0.0.1:8000/v1", store=SQLiteJobStore("jobs.db"))
    jobs = JobClient(server.base_url); job = jobs.submit("Hello", max_tokens=16)

The pieces, one module each: _records.py (a job and its state machine), store.py and
redis_store.py (where jobs live), workers.py, retry.py, webhooks.py, service.py, app.py (HTTP)
and client.py.

May import: `engine`, `serve` (the shared HTTP scaffold and schemas), `wire`, `batching`.
`jobs.client` imports none of the server side: a caller that only submits and collects loads
httpx, not FastAPI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from ..errors import IdempotencyKeyReusedError, QueueFullError
    from ._records import Job, Status
    from .app import JobServer, create_jobs_app
    from .client import AsyncJobClient, JobClient, JobInfo, QueueSample, watch_queue
    from .redis_store import RedisJobStore
    from .retry import Backoff
    from .service import JobService, Submission
    from .store import JobStore, SQLiteJobStore
    from .webhooks import SIGNATURE_HEADER, check_callback_url, sign, verify_signature
    from .workers import WorkerPool

_WHERE = {
    "Job": "._records",
    "Status": "._records",
    "create_jobs_app": ".app",
    "JobServer": ".app",
    "AsyncJobClient": ".client",
    "JobClient": ".client",
    "JobInfo": ".client",
    "QueueSample": ".client",
    "watch_queue": ".client",
    "RedisJobStore": ".redis_store",
    "Backoff": ".retry",
    "JobService": ".service",
    "Submission": ".service",
    "JobStore": ".store",
    "IdempotencyKeyReusedError": "..errors",
    "QueueFullError": "..errors",
    "SQLiteJobStore": ".store",
    "SIGNATURE_HEADER": ".webhooks",
    "check_callback_url": ".webhooks",
    "sign": ".webhooks",
    "verify_signature": ".webhooks",
    "WorkerPool": ".workers",
}
__getattr__, __dir__ = lazy_exports(__name__, _WHERE)

__all__ = [
    "SIGNATURE_HEADER",
    "AsyncJobClient",
    "Backoff",
    "IdempotencyKeyReusedError",
    "Job",
    "JobClient",
    "JobInfo",
    "JobServer",
    "JobService",
    "JobStore",
    "QueueFullError",
    "QueueSample",
    "RedisJobStore",
    "SQLiteJobStore",
    "Status",
    "Submission",
    "WorkerPool",
    "check_callback_url",
    "create_jobs_app",
    "sign",
    "verify_signature",
    "watch_queue",
]
