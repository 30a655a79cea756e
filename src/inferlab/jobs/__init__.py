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
"""

from ._records import Job, Status
from .app import create_jobs_app
from .client import AsyncJobClient, JobClient, JobInfo, QueueSample, watch_queue
from .redis_store import RedisJobStore
from .retry import Backoff
from .service import JobService
from .store import JobStore, QueueFullError, SQLiteJobStore
from .webhooks import SIGNATURE_HEADER, check_callback_url, sign, verify_signature
from .workers import WorkerPool

__all__ = [
    "SIGNATURE_HEADER",
    "AsyncJobClient",
    "Backoff",
    "Job",
    "JobClient",
    "JobInfo",
    "JobService",
    "JobStore",
    "QueueFullError",
    "QueueSample",
    "RedisJobStore",
    "SQLiteJobStore",
    "Status",
    "WorkerPool",
    "check_callback_url",
    "create_jobs_app",
    "sign",
    "verify_signature",
    "watch_queue",
]
