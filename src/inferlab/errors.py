"""The exceptions inferlab raises, in one small tree.

    InferlabError
    ├── InvalidRequestError      the request can never be served (also a ValueError): too long
    │                            for the context window, or larger than the whole KV cache
    ├── ServerUnavailableError   no server answered at the base URL
    ├── APIStatusError           a server answered with an error body (OpenAI's shape)
    ├── JobFailedError           a job ended `failed` or `cancelled`: no result to give
    └── BatchingError            a MicroBatcher could not answer with a result:
        ├── OverloadedError      its queue is full; try again after `retry_after_s`  (HTTP 429)
        ├── RequestTimeoutError  no answer before the caller's deadline (also a TimeoutError) (504)
        └── BatchFailedError     the batch handler misbehaved: wrong count, cancelled, crashed (502)

Servers turn `InvalidRequestError` into a 400 with OpenAI's error body; clients turn a 4xx/5xx
body back into `APIStatusError`, keeping the status, type, code and param the server sent.
"""

from __future__ import annotations


class InferlabError(Exception):
    """Base class of every error inferlab raises on purpose."""


class InvalidRequestError(InferlabError, ValueError):
    """A request that no amount of waiting would make servable."""

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


class ServerUnavailableError(InferlabError):
    """Nothing (or nothing OpenAI-compatible) answered at the base URL."""


class APIStatusError(InferlabError):
    """An OpenAI-compatible server answered with an error status."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        type: str | None = None,
        code: str | None = None,
        param: str | None = None,
    ):
        super().__init__(f"{status_code}: {message}")
        self.message = message
        self.status_code = status_code
        self.type = type
        self.code = code
        self.param = param


class JobFailedError(InferlabError):
    """A job of the job API ended without a result; `job` says how (its status and error)."""

    def __init__(self, message: str, *, job: object):
        super().__init__(message)
        self.job = job


class BatchingError(InferlabError):
    """A MicroBatcher answered a caller with an error instead of a result."""


class OverloadedError(BatchingError):
    """The queue is full; the request was refused at once, not queued."""

    def __init__(self, message: str, *, retry_after_s: float):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class RequestTimeoutError(BatchingError, TimeoutError):
    """The caller's deadline passed before its answer was ready."""


class BatchFailedError(BatchingError):
    """The handler did not produce one result per item (or crashed in a way that is not an
    ordinary exception), so every caller of that batch gets this instead."""
