"""Shared fixtures: in-process apps on virtual time, and real servers on loopback threads."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from inferlab import ServerThread, SimulatedModel, create_app
from inferlab._clock import VirtualClock

# The suite is hermetic: it never talks to a server configured for the course, and notebooks
# (run by nbval in kernels that inherit this environment) use a fast embedded accelerator.
os.environ.pop("INFERLAB_BASE_URL", None)
os.environ.pop("INFERLAB_API_KEY", None)
os.environ.setdefault("INFERLAB_TIME_SCALE", "0.05")

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
