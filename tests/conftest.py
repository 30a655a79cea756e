"""Shared fixtures: in-process apps on virtual time, and real servers on loopback threads."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from subprocess import Popen

import httpx
import pytest

from inferlab import ServerThread, SimulatedModel, create_app
from inferlab.engine.clock import VirtualClock

FAST_TIME_SCALE = 0.01


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def virtual_model() -> SimulatedModel:
    """A model on virtual time: steps take no wall time, and times are exact."""
    return SimulatedModel("h100-llama3-8b", clock=VirtualClock())


@pytest.fixture
async def app_client(virtual_model: SimulatedModel) -> AsyncIterator[httpx.AsyncClient]:
    """The server app in-process (no sockets); httpx buffers streamed bodies here."""
    app = create_app(virtual_model)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://inferlab.test/v1") as c:
        yield c


@pytest.fixture(scope="session")
def live_server() -> Iterator[ServerThread]:
    """A real server on a loopback port whose accelerator runs 100x faster than an H100."""
    with ServerThread(create_app(time_scale=FAST_TIME_SCALE)) as server:
        yield server


@pytest.fixture(scope="session")
def keyed_server() -> Iterator[ServerThread]:
    """A real server that requires `Authorization: Bearer secret-key`."""
    with ServerThread(create_app(time_scale=FAST_TIME_SCALE, api_key="secret-key")) as server:
        yield server


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server of our own on a free loopback port (or INFERLAB_TEST_REDIS_URL).

    Where there is none, Redis tests are reported as skipped; in CI (CI=true) they fail instead,
    since `.ci/run` installs redis-server and they must run there."""
    if os.environ.get("INFERLAB_TEST_REDIS_URL"):
        yield os.environ["INFERLAB_TEST_REDIS_URL"]
        return
    binary = shutil.which("redis-server")
    if binary is None:
        reason = "redis-server is not installed (apt-get install redis-server)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}: CI must run the Redis tests")
        pytest.skip(reason)
    # The append-only file, as the job API insists (redis_store.py); everysec, not always,
    # since tests need no power-cut safety and share a disk.
    workdir = tmp_path_factory.mktemp("redis")
    with redis_server(binary, workdir, "--appendonly", "yes", "--appendfsync", "everysec") as (
        _,
        url,
    ):
        yield url


@contextlib.contextmanager
def redis_server(binary: str, workdir: Path, *options: str) -> Iterator[tuple[Popen, str]]:
    """A redis-server of our own on a free loopback port: (its process, its URL)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(workdir)]
        + list(options),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    for line in process.stdout:  # it says when it accepts connections: wait for that line
        if "Ready to accept connections" in line:
            break
    else:
        pytest.fail(f"redis-server exited with {process.wait()}")
    # Keep reading its log, so that a full pipe never blocks it.
    drain = threading.Thread(target=process.stdout.read, daemon=True)
    drain.start()
    try:
        yield process, f"redis://127.0.0.1:{port}/0"
    finally:
        if process.poll() is None:
            process.terminate()
        process.wait(10)
        drain.join(10)
        process.stdout.close()


@pytest.fixture
def own_redis(
    tmp_path: Path,
) -> Callable[..., contextlib.AbstractContextManager[tuple[Popen, str]]]:
    """own_redis(*options): a redis-server for one test, to stop or to misconfigure."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    return lambda *options: redis_server(binary, tmp_path, *options)
