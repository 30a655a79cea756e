"""Servers a notebook starts, each in a process of its own, and turned through its admin API.

    server = start_model_server(time_scale=0.1, batching="static")
    server.configure(max_num_seqs=8)             # PUT /admin/engine
    server.set_faults(stall_rate=0.02, stall_s=2)  # PUT /admin/faults
    proxy = start_proxy(server.base_url, max_batch_size=16)
    proxy.configure(batch_wait_timeout_s=0.005)  # PUT /admin/batching
    print(server.log())                          # what it printed, when something is wrong

The kernel then runs only the client, so what a busy laptop's Python costs lands on the client
side of the measurement, not inside the simulated accelerator. Each server stops with the
kernel (or with `stop()`), and never outlives it. Knobs travel over HTTP, as they would to a
server on another machine: no notebook reaches into another process's objects.
"""

from __future__ import annotations

import atexit
from typing import Any

import httpx

from ..jobs.settings import JobSettings
from ..load.clock import ModelClock
from ..proxy.settings import ProxySettings
from ..serve.hosting import ServerProcess
from ..serve.settings import ServerSettings
from ..wire.sse import error_from_response

_started: list[ServerProcess] = []


def _stop_all() -> None:
    for process in _started:
        process.stop()


atexit.register(_stop_all)


class RunningServer:
    """A server in its own process: where it listens, its log, its admin API, `stop()`."""

    def __init__(self, command: str, settings: Any) -> None:
        self.settings = settings
        self.process = ServerProcess(command, settings)
        self.process.start()
        _started.append(self.process)

    @property
    def base_url(self) -> str:
        return self.process.base_url

    @property
    def root_url(self) -> str:
        return self.base_url.removesuffix("/v1")

    @property
    def running(self) -> bool:
        return self.process.running

    def log(self, last_lines: int = 50) -> str:
        return self.process.log(last_lines)

    def stop(self) -> None:
        self.process.stop()

    def _admin(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        headers = {"Authorization": f"Bearer {key}"} if (key := self.settings.api_key) else {}
        response = httpx.request(
            method, self.root_url + path, json=body, headers=headers, timeout=10.0
        )
        if response.status_code >= 400:
            raise error_from_response(response.status_code, response.content)
        return response.json()

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class RunningModelServer(RunningServer):
    """`inferlab serve` in its own process."""

    def __init__(self, settings: ServerSettings) -> None:
        super().__init__("serve", settings)
        self._clock: ModelClock | None = None

    @property
    def time_scale(self) -> float:
        return float(self.settings.time_scale)

    @property
    def clock(self) -> ModelClock:
        """Its model clock, with the time scale the server reports itself (asked once)."""
        if self._clock is None:
            self._clock = ModelClock.of_server(self.base_url, api_key=self.settings.api_key)
        return self._clock

    def configure(self, **knobs: Any) -> dict[str, Any]:
        """Change the engine's batching, max_num_seqs or kv_capacity_tokens while it runs (its
        time_scale only while it is idle)."""
        result: dict[str, Any] = self._admin("PUT", "/admin/engine", knobs)
        if result["time_scale"] != self.settings.time_scale:
            self.settings = self.settings.replace(time_scale=result["time_scale"])
            self._clock = None  # asked again, of the server, when next needed
        return result

    def set_faults(self, **faults: Any) -> dict[str, Any]:
        """Fail or stall a share of requests (see `serve.faults`); 0 turns a fault off."""
        result: dict[str, Any] = self._admin("PUT", "/admin/faults", faults)
        return result


class RunningProxy(RunningServer):
    """`inferlab proxy` in its own process."""

    def __init__(self, settings: ProxySettings) -> None:
        super().__init__("proxy", settings)

    def configure(self, **knobs: Any) -> dict[str, Any]:
        """Change max_batch_size, batch_wait_timeout_s, ... while it runs."""
        result: dict[str, Any] = self._admin("PUT", "/admin/batching", knobs)
        return result

    def stats(self) -> dict[str, Any]:
        """What its micro-batcher has done: batches by size and by flush reason, outcomes."""
        result: dict[str, Any] = self._admin("GET", "/admin/stats")
        return result


class RunningJobAPI(RunningServer):
    """`inferlab jobs` in its own process."""

    def __init__(self, settings: JobSettings) -> None:
        super().__init__("jobs", settings)

    def scale(self, workers: int) -> dict[str, Any]:
        result: dict[str, Any] = self._admin("PUT", "/admin/workers", {"workers": workers})
        return result


def start_model_server(**settings: Any) -> RunningModelServer:
    """A new simulated model server; `settings` are `ServerSettings` fields."""
    return RunningModelServer(ServerSettings.from_dict(settings))


def start_proxy(upstream: str, **settings: Any) -> RunningProxy:
    """A batching proxy in front of `upstream`; `settings` are `ProxySettings` fields."""
    return RunningProxy(ProxySettings.from_dict({"upstream": upstream, **settings}))


def start_job_api(upstream: str, **settings: Any) -> RunningJobAPI:
    """A job API in front of `upstream`; `settings` are `JobSettings` fields (`db`: its
    SQLite file)."""
    return RunningJobAPI(JobSettings.from_dict({"upstream": upstream, **settings}))
