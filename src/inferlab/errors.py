"""The exceptions inferlab raises, in one small tree. Every module raises from here.

    InferlabError
    ├── InvalidRequestError      the request can never be served (also a ValueError): too long
    │                            for the context window, text that cannot be encoded, ...  400
    ├── TransportError           the caller's side: an HTTP exchange did not complete
    │   ├── ServerUnavailableError   nothing answered at the base URL (refused, no route)
    │   ├── ConnectionLostError      the connection dropped before the whole answer came
    │   │   └── NoResponseError      ... before any of it: the server may never have seen it
    │   └── ResponseTimeoutError     no answer within the client's timeout (a TimeoutError)
    ├── APIStatusError           a server answered with an error body (OpenAI's shape)
    ├── OpenAIHTTPError          raised inside a server of ours: answer with this status and
    │                            OpenAI's error body (a route's refusal, a full job queue)
    ├── UpstreamError            the model server behind a proxy or worker failed a whole
    │                            batch: no answer, a 5xx, a broken stream                502/504
    ├── QueueFullError           the job store holds its limit of unfinished jobs         429
    ├── IdempotencyKeyReusedError  an idempotency key comes back with another request   409
    ├── StoreUnavailableError    the job store cannot be reached now (Redis down)         503
    ├── JobFailedError           a job ended `failed` or `cancelled`: no result to give
    └── BatchingError            a MicroBatcher could not answer with a result:
        ├── OverloadedError      its queue is full; try again after `retry_after_s`       429
        ├── RequestTimeoutError  no answer before the caller's deadline (a TimeoutError)   504
        └── BatchFailedError     the batch handler misbehaved: wrong count, crashed        502

Servers turn `InvalidRequestError` into a 400 with OpenAI's error body; clients turn a 4xx/5xx
body back into `APIStatusError`, keeping the status, type, code and param the server sent, and
map the HTTP library's own errors to `TransportError`s at the boundary, as httpx maps httpcore's,
so no `httpx` exception reaches a caller of the course's clients.
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


# --- the caller's side ----------------------------------------------------------------------


class TransportError(InferlabError):
    """An HTTP exchange with a server did not complete; nothing says what the server did."""


class ServerUnavailableError(TransportError):
    """Nothing (or nothing OpenAI-compatible) answered at the base URL."""


class ConnectionLostError(TransportError):
    """The server closed the connection, or it broke, before the whole answer arrived."""


class NoResponseError(ConnectionLostError):
    """The connection closed before a single byte of the answer came back (httpx: "Server
    disconnected without sending a response"). Nothing was received, so a request whose only
    side effect is its cost, such as a warm-up or a completion, can be sent again (warmup.py,
    and the proxy's upstream once: resend.py); one of which a byte came back is not."""


class ResponseTimeoutError(TransportError, TimeoutError):
    """The server did not answer within the client's timeout."""


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


# --- the servers' side ----------------------------------------------------------------------


class OpenAIHTTPError(InferlabError):
    """Raise from a route to answer with this status and an OpenAI error body."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.headers = headers


class UpstreamError(InferlabError):
    """The upstream failed the whole batch: no answer, a 5xx, or a broken stream."""

    def __init__(self, message: str, *, status: int = 502):
        super().__init__(message)
        self.status = status


class QueueFullError(InferlabError):
    """The store holds too many queued or running jobs (`unfinished`) to take the `adding` new
    jobs of a submission (one, or a bulk's; a repeated idempotency key adds none)."""

    def __init__(self, unfinished: int, *, adding: int = 1):
        super().__init__(f"the job queue is full ({unfinished} jobs waiting or running)")
        self.unfinished, self.adding = unfinished, adding


class IdempotencyKeyReusedError(InferlabError):
    """An idempotency key came back with another request than the one it first made `job_id`
    with. `index` is the position of that submission in the jobs given to the store (0 for one)."""

    def __init__(self, key: str, job_id: str, *, index: int = 0):
        super().__init__(
            f"Idempotency-Key {key!r} was already used for another request (job {job_id}); "
            "use a new key for a new request"
        )
        self.key, self.job_id, self.index = key, job_id, index


class StoreUnavailableError(InferlabError):
    """The job store cannot be reached now (Redis is down, say): the API answers 503 with
    Retry-After, /health included."""


class JobFailedError(InferlabError):
    """A job of the job API ended without a result; `job` says how (its status and error)."""

    def __init__(self, message: str, *, job: object):
        super().__init__(message)
        self.job = job


# --- the micro-batcher ------------------------------------------------------------------------


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
