"""The same store in Redis, for workers on several machines sharing one queue.

    store = RedisJobStore("redis://queue-host:6379/0")

Keys, under one prefix (default "inferlab:jobs:"):

    job:<id>          hash: data (the Job as JSON), version, status
    ready             sorted set: id -> when a worker may claim it (queued or lease end)
    callbacks         sorted set: id -> when its webhook is due
    status:<status>   sorted set: id -> created_at (lists and counts)
    idem:<key>        the id of the job an idempotency key made

Adding jobs (one, or a bulk of them: all or none) and compare-and-set each run as one Lua
script, which Redis executes atomically: no other client's command runs in between.
Durability is Redis's to give, so `open()` asks it (`CONFIG GET appendonly`, `appendfsync`)
before the API acknowledges anything:

    appendonly no             a Redis restart loses every job since its last snapshot: refuse
    appendfsync everysec/no   a Redis crash loses nothing (the write reached the kernel before
                              the reply), a power cut or kernel crash the last second or so: warn
    appendfsync always        what SQLite promises (on disk before the 202): fine

Refusing, not warning, for `appendonly no` because the 202 is a promise: with Redis's default
settings, a Redis SIGKILL lost 50 of 50 acknowledged jobs. `allow_data_loss=True`
(`--redis-allow-data-loss`) accepts the risk and only warns; a Redis that will not answer
CONFIG (a managed one, say) is refused the same way, since we cannot tell. When Redis cannot be
reached, every call raises StoreUnavailableError: the API answers 503 with Retry-After.

The scripts build key names from the prefix, so this does not run on a
Redis Cluster, where a script may only touch the keys it is given.
"""

from __future__ import annotations

import asyncio
import builtins  # a store has a method `list`: annotations after it say builtins.list
import functools
import logging
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

from ..errors import IdempotencyKeyReusedError, QueueFullError, StoreUnavailableError
from ._records import UNFINISHED, Job, Status

log = logging.getLogger(__name__)
MAX_CONNECTIONS = 64  # to Redis at once; more calls in flight wait their turn for one
P = ParamSpec("P")
R = TypeVar("R")


def _reachable(
    method: Callable[P, Coroutine[Any, Any, R]],
) -> Callable[P, Coroutine[Any, Any, R]]:
    """Turn "Redis cannot be reached" (refused, timed out, still loading) into
    StoreUnavailableError, which every caller knows; other Redis errors are bugs, left as they
    are."""

    @functools.wraps(method)
    async def call(*args: P.args, **kwargs: P.kwargs) -> R:
        import redis.exceptions

        try:
            return await method(*args, **kwargs)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            raise StoreUnavailableError(f"Redis cannot be reached: {exc}") from exc

    return call


# Jobs to add, all or none: first every check (keys already used, room), then every write.
# ARGV: prefix, the bound, the unfinished statuses (2), then 8 fields a job. It answers
# {1, one answer a job: '' new, '=' a key this call used before, or the stored job's data},
# {-1, unfinished, new jobs} (no room for the new ones) or {-2, key, job id, index} (a key
# reused for another request).
_ADD = """
local p, limit = ARGV[1], tonumber(ARGV[2])
local first, width = 5, 8
local answers, fresh, known = {}, {}, {}  -- known: key -> {request hash, job id}
for i = first, #ARGV, width do
  local id, idem, hash = ARGV[i], ARGV[i + 5], ARGV[i + 6]
  local answer = ''
  if idem ~= '' then
    if known[idem] then
      answer = '='
    else
      local existing = redis.call('GET', p .. 'idem:' .. idem)
      if existing then
        answer = redis.call('HGET', p .. 'job:' .. existing, 'data')
        known[idem] = {cjson.decode(answer).request_hash, existing}
      else
        known[idem] = {hash, id}
      end
    end
    if known[idem][1] ~= hash then
      return {-2, idem, known[idem][2], tostring((i - first) / width)}
    end
  end
  answers[#answers + 1] = answer
  if answer == '' then fresh[#fresh + 1] = i end
end
-- Only new jobs take room: a call that only repeats keys answers even from a queue over its
-- bound (as SQLite does), so a client retrying a lost 202 gets its job back, not a 429.
if #fresh > 0 then
  local unfinished = redis.call('ZCARD', p .. 'status:' .. ARGV[3])
    + redis.call('ZCARD', p .. 'status:' .. ARGV[4])
  if unfinished + #fresh > limit then return {-1, tostring(unfinished), tostring(#fresh)} end
end
for _, i in ipairs(fresh) do
  local id, status, idem = ARGV[i], ARGV[i + 3], ARGV[i + 5]
  redis.call('HSET', p .. 'job:' .. id, 'data', ARGV[i + 1], 'version', ARGV[i + 2],
    'status', status)
  redis.call('ZADD', p .. 'status:' .. status, ARGV[i + 4], id)
  redis.call('ZADD', p .. 'ready', ARGV[i + 7], id)
  if idem ~= '' then redis.call('SET', p .. 'idem:' .. idem, id) end
end
return {1, unpack(answers)}
"""

# Compare-and-set, for one job or many (a claimer's whole round): each job is written only if
# its stored version is still the one it was made from; one may lose while others win.
# ARGV: prefix, then 6 fields a job. It answers one 1 (written) or 0 (it changed) a job.
_REPLACE = """
local p, written = ARGV[1], {}
for i = 2, #ARGV, 6 do
  local id, status, ready, callback = ARGV[i], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5]
  local key = p .. 'job:' .. id
  local current = redis.call('HMGET', key, 'version', 'status')
  if not current[1] or tonumber(current[1]) ~= tonumber(ARGV[i + 2]) - 1 then
    written[#written + 1] = 0
  else
    redis.call('HSET', key, 'data', ARGV[i + 1], 'version', ARGV[i + 2], 'status', status)
    if current[2] ~= status then
      local created = redis.call('ZSCORE', p .. 'status:' .. current[2], id)
      redis.call('ZREM', p .. 'status:' .. current[2], id)
      redis.call('ZADD', p .. 'status:' .. status, created, id)
    end
    if ready == '' then redis.call('ZREM', p .. 'ready', id)
    else redis.call('ZADD', p .. 'ready', ready, id) end
    if callback == '' then redis.call('ZREM', p .. 'callbacks', id)
    else redis.call('ZADD', p .. 'callbacks', callback, id) end
    written[#written + 1] = 1
  end
end
return written
"""

# The due jobs of an index ("ready" or "callbacks"), oldest first, with their data: one round
# trip, and the index and the jobs read at one moment. ARGV: prefix, index, now, limit.
_DUE = """
local p = ARGV[1]
local ids = redis.call('ZRANGEBYSCORE', p .. ARGV[2], '-inf', ARGV[3], 'LIMIT', 0, ARGV[4])
local found = {}
for _, id in ipairs(ids) do
  local data = redis.call('HGET', p .. 'job:' .. id, 'data')
  if data then found[#found + 1] = data end
end
return found
"""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _score(value: float | None) -> str:
    return "" if value is None else repr(value)


class _Grouped:
    """Calls that arrive together leave in one pipeline: Redis's group commit.

    The first call schedules a sender; calls made before it runs (a claimer's 256
    compare-and-sets, a batch of workers finishing, a thousand long-polls reading their job)
    join its pipeline, and calls made while a pipeline is under way wait for the next one. One
    round trip for the group instead of one each, and Redis syncs its append-only file once
    per group (`appendfsync always` syncs before it answers anything written in one pass of
    its event loop)."""

    def __init__(self, redis: Any):
        self._redis = redis
        self._pending: builtins.list[tuple[Callable[[Any], Any], asyncio.Future[Any]]] = []
        self._sender: asyncio.Task[None] | None = None

    async def script(self, script: Any, args: builtins.list[object]) -> Any:
        """Run a registered Lua script (its SHA is loaded first if Redis does not know it)."""

        async def queue(pipe: Any) -> None:
            await script(args=args, client=pipe)

        return await self._call(queue)

    async def command(self, name: str, *args: object) -> Any:
        """One plain command, `hget` say."""

        async def queue(pipe: Any) -> None:
            getattr(pipe, name)(*args)

        return await self._call(queue)

    async def _call(self, queue: Callable[[Any], Any]) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append((queue, future))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.ensure_future(self._send())
        return await future

    async def _send(self) -> None:
        while self._pending:
            group, self._pending = self._pending, []
            results: builtins.list[Any]
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for queue, _ in group:
                        await queue(pipe)  # queued on the pipeline, not sent yet
                    results = await pipe.execute(raise_on_error=False)
            except Exception as exc:  # Redis went away: every call of the group fails with it
                results = [exc] * len(group)
            for (_, future), result in zip(group, results, strict=True):
                if future.done():  # its caller gave up waiting
                    continue
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)

    async def aclose(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
            await asyncio.gather(self._sender, return_exceptions=True)
        for _, future in self._pending:
            future.cancel()


class RedisJobStore:
    """Jobs in Redis (needs the `redis` package, redis-py, and a Redis server 6 or newer)."""

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "inferlab:jobs:",
        allow_data_loss: bool = False,
    ):
        import redis.asyncio as redis  # imported here: only this backend needs it

        self.url = url
        self.prefix = prefix
        self.allow_data_loss = allow_data_loss
        # Bounded waits: a Redis host that is gone (not refusing, just silent) must become a
        # 503 in seconds, not hold every request until the client's own timeout. A pool that
        # waits for a free connection: redis-py's default one refuses the 101st call in
        # flight ("Too many connections"), which a burst of submissions or 256 workers
        # finishing at once reach, and every refusal would be a 503.
        pool = redis.BlockingConnectionPool.from_url(
            url,
            max_connections=MAX_CONNECTIONS,
            timeout=5,
            socket_connect_timeout=5,
            socket_timeout=5,
        )
        self._redis: Any = redis.Redis.from_pool(pool)  # closing it closes the pool
        self._add = self._redis.register_script(_ADD)
        self._replace = self._redis.register_script(_REPLACE)
        self._due_jobs = self._redis.register_script(_DUE)
        self._grouped = _Grouped(self._redis)

    @_reachable
    async def open(self) -> None:
        import redis.exceptions

        try:
            settings = await self._redis.config_get("append*")
        except redis.exceptions.ResponseError as exc:  # CONFIG disabled or renamed
            self._risk(f"Redis would not say how it persists ({exc}), so a restart may lose jobs")
            return
        settings = {_text(k): _text(v) for k, v in settings.items()}
        if settings.get("appendonly") != "yes":
            self._risk(
                "Redis runs without its append-only file (appendonly no): a restart of Redis "
                "loses every acknowledged job since its last snapshot. Run it with "
                "`--appendonly yes --appendfsync always`"
            )
        elif settings.get("appendfsync") != "always":
            log.warning(
                "Redis syncs its append-only file with appendfsync %s: a Redis crash loses no "
                "job, but a power cut or kernel crash may lose the last second of them. "
                "`appendfsync always` promises what SQLite does.",
                settings.get("appendfsync"),
            )

    def _risk(self, message: str) -> None:
        if not self.allow_data_loss:
            raise RuntimeError(f"{message}; or accept the risk with --redis-allow-data-loss")
        log.warning("%s (accepted: allow_data_loss)", message)

    @_reachable
    async def ping(self) -> None:
        await self._redis.ping()

    async def add(self, job: Job, *, max_unfinished: int) -> tuple[Job, bool]:
        return (await self.add_many([job], max_unfinished=max_unfinished))[0]

    @_reachable
    async def add_many(
        self, jobs: builtins.list[Job], *, max_unfinished: int
    ) -> builtins.list[tuple[Job, bool]]:
        args: builtins.list[object] = [self.prefix, max_unfinished]
        args += [status.value for status in UNFINISHED]
        for job in jobs:
            args += [
                job.id,
                job.to_json(),
                job.version,
                job.status.value,
                repr(job.created_at),
                job.idempotency_key or "",
                job.request_hash,
                _score(job.ready_at),
            ]
        outcome, *answers = await self._grouped.script(self._add, args)
        if outcome == -1:
            raise QueueFullError(int(answers[0]), adding=int(answers[1]))
        if outcome == -2:
            key, job_id, index = (_text(answer) for answer in answers)
            raise IdempotencyKeyReusedError(key, job_id, index=int(index))
        by_key: dict[str | None, Job] = {}  # the job each key stands for, made or found
        added = []
        for job, answer in zip(jobs, answers, strict=True):
            if answer == b"=":  # a key used earlier in this call
                added.append((by_key[job.idempotency_key], False))
                continue
            created = answer == b""
            added.append((job if created else Job.from_json(answer), created))
            by_key[job.idempotency_key] = added[-1][0]
        return added

    @_reachable
    async def get(self, job_id: str) -> Job | None:
        data = await self._grouped.command("hget", self.prefix + "job:" + job_id, "data")
        return None if data is None else Job.from_json(data)

    @_reachable
    async def versions(self, job_ids: list[str]) -> dict[str, int]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hget(self.prefix + "job:" + job_id, "version")
            found = await pipe.execute()
        return {job_id: int(v) for job_id, v in zip(job_ids, found, strict=True) if v is not None}

    async def replace(self, job: Job) -> bool:
        return (await self.replace_many([job]))[0]

    @_reachable
    async def replace_many(self, jobs: builtins.list[Job]) -> builtins.list[bool]:
        args: builtins.list[object] = [self.prefix]
        for job in jobs:
            args += [
                job.id,
                job.to_json(),
                job.version,
                job.status.value,
                _score(job.ready_at),
                _score(job.callback_at),
            ]
        written = await self._grouped.script(self._replace, args)
        return [bool(one) for one in written]

    async def due_work(self, now: float, limit: int) -> list[Job]:
        return await self._due("ready", now, limit)

    async def due_callbacks(self, now: float, limit: int) -> list[Job]:
        return await self._due("callbacks", now, limit)

    @_reachable
    async def _due(self, index: str, now: float, limit: int) -> list[Job]:
        found = await self._grouped.script(self._due_jobs, [self.prefix, index, repr(now), limit])
        return [Job.from_json(data) for data in found]

    @_reachable
    async def next_due_at(self) -> float | None:
        times = []
        for index in ("ready", "callbacks"):
            first = await self._redis.zrange(self.prefix + index, 0, 0, withscores=True)
            times += [score for _, score in first]
        return min(times) if times else None

    @_reachable
    async def list(self, status: Status | None, limit: int) -> builtins.list[Job]:
        statuses = [status] if status is not None else list(Status)
        newest: builtins.list[tuple[float, bytes]] = []
        for one in statuses:
            found = await self._redis.zrevrange(
                self.prefix + "status:" + one.value, 0, limit - 1, withscores=True
            )
            newest += [(score, job_id) for job_id, score in found]
        newest.sort(reverse=True)
        return await self._load([job_id for _, job_id in newest[:limit]])

    @_reachable
    async def counts(self) -> dict[Status, int]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for status in Status:
                pipe.zcard(self.prefix + "status:" + status.value)
            sizes = await pipe.execute()
        return dict(zip(Status, sizes, strict=True))

    @_reachable
    async def _load(self, ids: builtins.list[bytes]) -> builtins.list[Job]:
        if not ids:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hget(self.prefix + "job:" + job_id.decode(), "data")
            found = await pipe.execute()
        return [Job.from_json(data) for data in found if data is not None]

    async def close(self) -> None:
        await self._grouped.aclose()
        await self._redis.aclose()
