"""Clients for the job API: submit now, collect later.

    jobs = JobClient("http://127.0.0.1:9100")            # the job server, not the model server
    job = jobs.submit("Write a haiku about queues", max_tokens=32)
    batch = jobs.submit_many(["one", "two", "three"], max_tokens=8)  # all or none, in order
    print(job.status)                                     # queued: the acknowledgement
    done = jobs.wait(job.id)                              # long-polls until it finished
    print(jobs.result(job.id)["choices"][0]["text"])      # or raises JobFailedError

`AsyncJobClient` is the same with `await`, for many jobs at once (the load generator uses it).
Both long-poll rather than poll: one request waits on the server until the job finishes (or
`poll_s` passes), so a finished job is seen at once, and an idle client costs nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from ..errors import JobFailedError
from ..wire._http1 import Http1Transport
from ..wire.client import transport_errors
from ..wire.sse import error_from_response

Json = dict[str, Any]


@dataclass(frozen=True)
class JobInfo:
    """A job as the API showed it, at one moment."""

    id: str
    status: str
    created_at: float
    attempts: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    result: Json | None = None
    error: Json | None = None
    raw: Json = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, body: Json) -> JobInfo:
        return cls(
            id=body["id"],
            status=body["status"],
            created_at=body["created_at"],
            attempts=body.get("attempts") or 0,
            started_at=body.get("started_at"),
            finished_at=body.get("finished_at"),
            result=body.get("result"),
            error=body.get("error"),
            raw=body,
        )

    @property
    def finished(self) -> bool:
        return self.status in ("succeeded", "failed", "cancelled")

    @property
    def text(self) -> str:
        """The first choice's text, once succeeded."""
        text = (self.result or {}).get("choices", [{}])[0].get("text", "")
        return str(text)


def _submission(
    prompt: str | list[str] | None,
    request: Json | None,
    callback_url: str | None,
    max_attempts: int | None,
    params: Json,
) -> Json:
    if (prompt is None) == (request is None):
        raise TypeError("pass a prompt (and completion parameters), or a whole request")
    if request is not None and params:  # they would be dropped: a whole request is sent as is
        raise TypeError(f"put completion parameters inside the request, got {sorted(params)}")
    body: Json = {"request": request if request is not None else {"prompt": prompt, **params}}
    if callback_url is not None:
        body["callback_url"] = callback_url
    if max_attempts is not None:
        body["max_attempts"] = max_attempts
    return body


def _batch(
    prompts: Sequence[str | list[str]] | None,
    requests: Sequence[Json] | None,
    callback_url: str | None,
    max_attempts: int | None,
    idempotency_keys: Sequence[str | None] | None,
    params: Json,
) -> Json:
    """The body of POST /v1/jobs/batch: one submission per prompt (or per whole request)."""
    if (prompts is None) == (requests is None):
        raise TypeError("pass prompts (and completion parameters), or whole requests")
    if isinstance(prompts, str):  # a str is a Sequence of str: one job per character
        raise TypeError(f"pass a list of prompts, got one string {prompts[:40]!r}")
    if prompts is not None:
        items = [_submission(p, None, callback_url, max_attempts, params) for p in prompts]
    else:
        assert requests is not None
        items = [_submission(None, r, callback_url, max_attempts, params) for r in requests]
    if idempotency_keys is not None:
        if len(idempotency_keys) != len(items):
            raise ValueError(
                f"need one idempotency key (or None) per job: {len(items)} jobs, "
                f"{len(idempotency_keys)} keys"
            )
        for item, key in zip(items, idempotency_keys, strict=True):
            if key is not None:
                item["idempotency_key"] = key
    return {"requests": items}


def _jobs(body: Json) -> list[JobInfo]:
    return [JobInfo.from_json(job) for job in body["data"]]


def _read(response: httpx.Response) -> Json:
    if response.status_code >= 400:
        raise error_from_response(response.status_code, response.content)
    body: Json = response.json()
    return body


def _result(job: JobInfo) -> Json:
    if job.status == "succeeded" and job.result is not None:
        return job.result
    if not job.finished:
        raise TimeoutError(f"job {job.id} is still {job.status}")
    reason = (job.error or {}).get("message", "no error recorded")
    raise JobFailedError(f"job {job.id} ended {job.status}: {reason}", job=job)


def _headers(api_key: str | None, idempotency_key: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
    return headers


class JobClient:
    """The job API from blocking code (notebooks, scripts)."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        poll_s: float = 30.0,
        timeout_s: float = 60.0,
    ):
        self.base_url = base_url.rstrip("/").removesuffix("/v1")
        self.poll_s = poll_s
        self._http = httpx.Client(
            base_url=self.base_url, headers=_headers(api_key), timeout=timeout_s + poll_s
        )

    def submit(
        self,
        prompt: str | list[str] | None = None,
        *,
        request: Json | None = None,
        callback_url: str | None = None,
        idempotency_key: str | None = None,
        max_attempts: int | None = None,
        **params: Any,
    ) -> JobInfo:
        """Queue a completion; returns at once with the job (status "queued")."""
        body = _submission(prompt, request, callback_url, max_attempts, params)
        headers = _headers(None, idempotency_key)
        return JobInfo.from_json(self._call("POST", "/v1/jobs", json=body, headers=headers))

    def submit_many(
        self,
        prompts: Sequence[str | list[str]] | None = None,
        *,
        requests: Sequence[Json] | None = None,
        callback_url: str | None = None,
        idempotency_keys: Sequence[str | None] | None = None,
        max_attempts: int | None = None,
        **params: Any,
    ) -> list[JobInfo]:
        """Queue up to 1,000 completions in one request, all or none; the jobs, in order.

        submit_many(["a", "b"], max_tokens=8) -> [JobInfo(status="queued"), JobInfo(...)]
        """
        body = _batch(prompts, requests, callback_url, max_attempts, idempotency_keys, params)
        return _jobs(self._call("POST", "/v1/jobs/batch", json=body))

    def status(self, job_id: str, *, wait_s: float = 0.0) -> JobInfo:
        return JobInfo.from_json(self._call("GET", f"/v1/jobs/{job_id}", params={"wait_s": wait_s}))

    def wait(self, job_id: str, *, timeout_s: float | None = None) -> JobInfo:
        """The job once finished, or as it is when `timeout_s` runs out."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            left = self.poll_s if deadline is None else deadline - time.monotonic()
            job = self.status(job_id, wait_s=max(0.0, min(self.poll_s, left)))
            if job.finished or left <= 0:
                return job

    def result(self, job_id: str, *, timeout_s: float | None = None) -> Json:
        """The completion body; raises JobFailedError if it failed or was cancelled, and
        TimeoutError if it is not done in time."""
        return _result(self.wait(job_id, timeout_s=timeout_s))

    def cancel(self, job_id: str) -> JobInfo:
        return JobInfo.from_json(self._call("DELETE", f"/v1/jobs/{job_id}"))

    def list(self, status: str | None = None, *, limit: int = 100) -> list[JobInfo]:
        params: Json = {"limit": limit, **({"status": status} if status else {})}
        body = self._call("GET", "/v1/jobs", params=params)
        return [JobInfo.from_json(job) for job in body["data"]]

    def stats(self) -> Json:
        """Jobs by status, and the number of workers."""
        return self._call("GET", "/admin/workers")

    def scale(self, workers: int) -> Json:
        return self._call("PUT", "/admin/workers", json={"workers": workers})

    def _call(self, method: str, path: str, **options: Any) -> Json:
        with transport_errors(self.base_url):
            return _read(self._http.request(method, path, **options))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> JobClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncJobClient:
    """The job API from asyncio code: thousands of jobs in flight from one thread."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        poll_s: float = 30.0,
        timeout_s: float = 60.0,
        max_connections: int = 25,
    ):
        self.base_url = base_url.rstrip("/").removesuffix("/v1")
        self.poll_s = poll_s
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers=_headers(api_key),
            timeout=timeout_s + poll_s,
            transport=Http1Transport(max_connections=max_connections),  # see wire/_http1.py
        )

    async def submit(
        self,
        prompt: str | list[str] | None = None,
        *,
        request: Json | None = None,
        callback_url: str | None = None,
        idempotency_key: str | None = None,
        max_attempts: int | None = None,
        **params: Any,
    ) -> JobInfo:
        body = _submission(prompt, request, callback_url, max_attempts, params)
        headers = _headers(None, idempotency_key)
        return JobInfo.from_json(await self._call("POST", "/v1/jobs", json=body, headers=headers))

    async def submit_many(
        self,
        prompts: Sequence[str | list[str]] | None = None,
        *,
        requests: Sequence[Json] | None = None,
        callback_url: str | None = None,
        idempotency_keys: Sequence[str | None] | None = None,
        max_attempts: int | None = None,
        **params: Any,
    ) -> list[JobInfo]:
        """JobClient.submit_many, awaited."""
        body = _batch(prompts, requests, callback_url, max_attempts, idempotency_keys, params)
        return _jobs(await self._call("POST", "/v1/jobs/batch", json=body))

    async def status(self, job_id: str, *, wait_s: float = 0.0) -> JobInfo:
        path, params = f"/v1/jobs/{job_id}", {"wait_s": wait_s}
        return JobInfo.from_json(await self._call("GET", path, params=params))

    async def wait(self, job_id: str, *, timeout_s: float | None = None) -> JobInfo:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            left = self.poll_s if deadline is None else deadline - time.monotonic()
            job = await self.status(job_id, wait_s=max(0.0, min(self.poll_s, left)))
            if job.finished or left <= 0:
                return job

    async def result(self, job_id: str, *, timeout_s: float | None = None) -> Json:
        return _result(await self.wait(job_id, timeout_s=timeout_s))

    async def cancel(self, job_id: str) -> JobInfo:
        return JobInfo.from_json(await self._call("DELETE", f"/v1/jobs/{job_id}"))

    async def stats(self) -> Json:
        return await self._call("GET", "/admin/workers")

    async def scale(self, workers: int) -> Json:
        return await self._call("PUT", "/admin/workers", json={"workers": workers})

    async def _call(self, method: str, path: str, **options: Any) -> Json:
        with transport_errors(self.base_url):
            return _read(await self._http.request(method, path, **options))

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncJobClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


@dataclass(frozen=True)
class QueueSample:
    """The job server's queue at one moment; `t_s` counts from the watch's `started_s`."""

    t_s: float
    queued: int
    running: int
    workers: int
    finished: int


async def watch_queue(
    client: AsyncJobClient, stop: asyncio.Event, *, every_s: float = 0.05, started_s: float = 0.0
) -> list[QueueSample]:
    """Sample queue depth and workers every `every_s` until `stop` is set: a measurement on a
    clock, like the in-flight count the load generator samples for Little's law."""
    samples = []
    while True:
        stats = await client.stats()
        finished = stats["succeeded"] + stats["failed"] + stats["cancelled"]
        samples.append(
            QueueSample(
                time.perf_counter() - started_s,
                stats["queued"],
                stats["running"],
                stats["workers"],
                finished,
            )
        )
        try:
            await asyncio.wait_for(stop.wait(), every_s)
            return samples
        except asyncio.TimeoutError:
            pass
