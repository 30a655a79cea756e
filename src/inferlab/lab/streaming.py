"""What lesson 03 measures about streams: the same requests over SSE and over one WebSocket,
the engine's token counter, and nginx in front with and without `proxy_buffering`.

    sse = await over_sse(url, prompts, max_tokens=64)
    ws = await over_websocket(url, prompts, max_tokens=64)
    sse.bytes_received, ws.bytes_received, sse.connections, ws.connections

Bytes are what crossed the socket towards the client: for SSE the status line, headers and
body (HTTP/1.1's chunk framing, a few bytes an event, is left out, which flatters SSE); for the
WebSocket the frames with their headers (the one upgrade handshake is left out). nginx is
Debian's (`apt-get install nginx`); where it is missing, `nginx_available()` says so.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from ..load.prometheus import scrape_metrics
from ..wire.client import AsyncClient, Completion
from ..wire.websocket import WebSocketClient


@dataclass
class StreamRun:
    """One batch of concurrent streamed requests over one transport."""

    transport: str
    answers: list[Completion]
    bytes_received: int
    connections: int

    @property
    def ttft_p50_s(self) -> float:
        return statistics.median(a.timing.ttft_s for a in self.answers)

    @property
    def itl_p50_s(self) -> float:
        return statistics.median(gap for a in self.answers for gap in a.timing.itl_s)

    @property
    def tokens(self) -> int:
        return sum(a.timing.output_tokens for a in self.answers)


class _CountingStream(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, tally: list[int]):
        self.inner, self.tally = inner, tally

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.inner:
            self.tally[0] += len(chunk)
            yield chunk

    async def aclose(self) -> None:
        await self.inner.aclose()


class _CountingTransport(httpx.AsyncHTTPTransport):
    """Counts the bytes of every response and the client ports (connections) it came on."""

    def __init__(self) -> None:
        super().__init__()
        self.tally = [0]
        self.ports: set[int] = set()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        stream = response.extensions.get("network_stream")
        if stream is not None:
            self.ports.add(stream.get_extra_info("client_addr")[1])
        head = 17 + sum(len(name) + len(value) + 4 for name, value in response.headers.raw)
        self.tally[0] += head  # "HTTP/1.1 200 OK\r\n", each "name: value\r\n", the blank line
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _CountingStream(response.stream, self.tally)
        return response


async def over_sse(url: str, prompts: list[str], **params: Any) -> StreamRun:
    """Stream every prompt at once over SSE: one HTTP request (and connection) each."""
    transport = _CountingTransport()
    async with httpx.AsyncClient(transport=transport, timeout=600) as http:
        model = await AsyncClient(url, http=http).get_model()  # once, not once per request
        client = AsyncClient(url, model=model, http=http)
        answers = await asyncio.gather(
            *(client.complete(p, stream=True, **params) for p in prompts)
        )
    return StreamRun("SSE", list(answers), transport.tally[0], len(transport.ports))


async def over_websocket(url: str, prompts: list[str], **params: Any) -> StreamRun:
    """Stream every prompt at once over one WebSocket."""
    async with WebSocketClient(url) as ws:
        answers = await asyncio.gather(*(ws.complete(p, **params) for p in prompts))
    return StreamRun("WebSocket", list(answers), ws.bytes_received, 1)


async def _metric(url: str, name: str) -> float:
    """One counter from the server's /metrics, summed over its labels (model_name, engine);
    0 while it has no sample yet (a labelled counter appears on its first increment)."""
    return (await scrape_metrics(url)).get(name, 0.0)


async def generated_tokens(url: str) -> int:
    """How many tokens the engine has computed so far (vLLM's `generation_tokens` counter)."""
    return int(await _metric(url, "vllm:generation_tokens_total"))


async def counts_tokens(url: str) -> bool:
    """Whether the server's /metrics has vLLM's token counter, so that 3.8 can read it: the
    embedded server and vLLM do (vLLM not with --disable-log-stats); llama-server has /metrics
    only with --metrics, under names of its own, and Ollama has none."""
    try:
        return "vllm:generation_tokens_total" in await scrape_metrics(url)
    except httpx.HTTPError:
        return False


async def engine_idle(url: str, *, timeout_s: float = 10.0) -> None:
    """Return once the engine runs no sequence: a server notices a hang-up a moment later."""
    deadline = time.monotonic() + timeout_s
    while await _metric(url, "vllm:num_requests_running") > 0:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the engine at {url} was still busy after {timeout_s} s")
        await asyncio.sleep(0.01)


# ---------------------------------------------------------------------------------------------
# nginx in front: a reverse proxy as real deployments have one


def _nginx_binary() -> str | None:
    # Debian puts it in /usr/sbin, which a learner's PATH often leaves out.
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    return found


def nginx_available() -> bool:
    return _nginx_binary() is not None


_NGINX_CONF = """
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://{upstream};
            proxy_http_version 1.1;
            proxy_buffering {buffering};
            gzip {gzip};
            gzip_types text/event-stream;
        }}
    }}
}}
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def nginx(
    upstream_url: str, *, buffering: bool, gzip: bool = False, timeout_s: float = 10.0
) -> Iterator[str]:
    """Run nginx on a free loopback port in front of `upstream_url`; yield its base URL.

    `proxy_buffering on` (nginx's default) reads the upstream's answer into 4-8 KB buffers
    and passes each on when full: right for downloads, wrong for token streams."""
    binary = _nginx_binary()
    if binary is None:
        raise RuntimeError("nginx is not installed (apt-get install nginx)")
    upstream = urlsplit(upstream_url)
    with tempfile.TemporaryDirectory(prefix="inferlab-nginx-") as directory:
        port = _free_port()
        conf = Path(directory) / "nginx.conf"
        conf.write_text(
            _NGINX_CONF.format(
                dir=directory,
                port=port,
                upstream=upstream.netloc,
                buffering="on" if buffering else "off",
                gzip="on" if gzip else "off",
            )
        )
        process = subprocess.Popen(
            [binary, "-p", directory, "-c", str(conf), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            _wait_for_port(port, process, timeout_s)
            yield f"http://127.0.0.1:{port}{upstream.path}"
        finally:
            process.terminate()
            process.wait(timeout_s)
            if process.stderr is not None:
                process.stderr.close()


def _wait_for_port(port: int, process: subprocess.Popen[bytes], timeout_s: float) -> None:
    """nginx prints nothing when it is ready, so try to connect until it answers."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            error = process.stderr.read().decode() if process.stderr else ""
            raise RuntimeError(f"nginx exited with {process.returncode}: {error}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.01)
    raise RuntimeError(f"nginx did not listen on port {port} within {timeout_s} s")
