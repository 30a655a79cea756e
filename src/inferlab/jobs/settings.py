"""The job API's settings: its upstream and store, its workers, retries and webhooks.

    inferlab jobs --upstream http://127.0.0.1:8000/v1 --workers 8 --db jobs.db
    JobServer(JobSettings(upstream="http://127.0.0.1:8000/v1", workers=8))

The number of workers can change while it runs (`PUT /admin/workers`).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..serve._settings import HttpLimits, required, setting
from ..serve.settings import DEFAULT_MAX_BODY_BYTES

MAX_WORKERS = 1024  # each is a job in flight; past the batcher's concurrency they only queue
MAX_JOBS_PER_SUBMISSION = 1_000  # POST /v1/jobs/batch: one write to the store, one disk sync


@dataclass(frozen=True, kw_only=True)
class JobSettings(HttpLimits):
    upstream: str = required("the model server's base URL, ending in /v1")
    upstream_api_key: str | None = setting(None, "the key the upstream wants, if any")
    list_prompts: bool = setting(
        True, "the upstream takes a list of prompts in one request (else: fan out)"
    )
    db: str = setting("jobs.db", "SQLite file for the jobs (the default store)")
    redis_url: str | None = setting(None, "keep the jobs in Redis instead (redis://host:6379/0)")
    redis_allow_data_loss: bool = setting(
        False,
        "start even if Redis runs without its append-only file (a Redis restart then loses "
        "acknowledged jobs); without it, such a Redis is refused at start-up",
    )
    workers: int = setting(4, "jobs in flight at once")
    max_queue_size: int = setting(10_000, "unfinished jobs at most, then 429")
    max_attempts: int = setting(3, "tries per job before it is a dead letter")
    lease_s: float = setting(10.0, "a dead worker's job is claimed again after this")
    attempt_timeout_s: float = setting(300.0, "one try's deadline")
    retry_base_s: float = setting(0.5, "the first retry's delay; each next doubles (jittered)")
    retry_cap_s: float = setting(30.0, "the longest delay between two tries")
    max_batch_size: int = setting(8, "jobs in one upstream request at most")
    batch_wait_timeout_s: float = setting(0.01, "longest wait for a batch to fill")
    max_concurrent_batches: int = setting(8, "upstream requests under way at once")
    webhook_secret: str | None = setting(
        None, "HMAC key that signs webhooks (default: INFERLAB_WEBHOOK_SECRET; none: no webhooks)"
    )
    webhook_max_attempts: int = setting(5, "tries per webhook delivery")
    allow_callback_host: tuple[str, ...] = setting(
        (), "a host webhooks may go to, besides loopback (repeat the flag)"
    )
    fallback_poll_s: float = setting(0.5, "how often to look for changes made elsewhere")
    max_body_bytes: int = setting(DEFAULT_MAX_BODY_BYTES, "largest request body accepted")
    api_key: str | None = setting(
        None, "require 'Authorization: Bearer KEY' (default: the VLLM_API_KEY variable)"
    )

    def check(self) -> None:
        super().check()  # the HTTP limits
        if not self.upstream.startswith(("http://", "https://")):
            raise ValueError(f"upstream must be an http(s) URL, got {self.upstream!r}")
        if not 0 <= self.workers <= MAX_WORKERS:  # 0: a front that only accepts (workers elsewhere)
            raise ValueError(f"workers must be from 0 to {MAX_WORKERS}, got {self.workers}")
        for name in ("max_queue_size", "max_attempts", "webhook_max_attempts"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 < self.retry_base_s <= self.retry_cap_s:
            raise ValueError(
                f"need 0 < retry_base_s <= retry_cap_s, got {self.retry_base_s}, {self.retry_cap_s}"
            )
        for name in ("lease_s", "attempt_timeout_s", "fallback_poll_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
