"""What the benchmarks share: starting inferlab servers as processes, and stopping them.

Each server runs in its own process so that the load generator does not share its GIL: on a
two-core machine that is the difference between measuring the server and measuring the client.

    server = spawn("serve", "--port", str(port := free_port()))
    wait_until_up(f"http://127.0.0.1:{port}/v1", server)   # polls GET /health
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

import httpx

from inferlab.serve.hosting import free_port

__all__ = ["cpu_s", "free_port", "spawn", "stop", "wait_until_up"]


def cpu_s(process: subprocess.Popen[bytes] | int | None = None) -> float:
    """CPU seconds a process (a child, a pid, or None: this one) has used so far, all its
    threads (Linux's schedstat, in ns: its /proc/PID/stat counts 10 ms ticks, too coarse for a
    millisecond a request). Less distorted by a busy machine than latency, which also counts
    the time a process waits for a core."""
    pid = os.getpid() if process is None else getattr(process, "pid", process)
    total_ns = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/schedstat") as stat:
            total_ns += int(stat.read().split()[0])
    return total_ns / 1e9


def spawn(*arguments: str) -> subprocess.Popen[bytes]:
    """Start `inferlab <arguments>` (serve, proxy or jobs) with warnings-only logging; what it
    prints goes to a temporary file, shown if it fails to come up."""
    command = [sys.executable, "-m", "inferlab", *arguments, "--log-level", "warning"]
    log = tempfile.TemporaryFile()
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    process.log = log  # type: ignore[attr-defined]
    return process


def wait_until_up(
    url: str, process: subprocess.Popen[bytes] | None = None, timeout_s: float = 60.0
) -> None:
    """Return once the server at `url` (a base URL, or any URL on it) answers GET /health.

    A route every inferlab server serves: polling /v1 itself would get a 404 from a server
    that is up. If `process` exits or time runs out, raise with what it printed."""
    root = url.split("/v1")[0].rstrip("/")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            break
        try:
            if httpx.get(f"{root}/health", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    printed = ""
    if process is not None:
        process.log.seek(0)  # type: ignore[attr-defined]
        printed = process.log.read().decode(errors="replace")[-3000:]  # type: ignore[attr-defined]
    raise RuntimeError(f"nothing answered at {root}/health; the server printed:\n{printed}")


def stop(*processes: subprocess.Popen[bytes]) -> None:
    for process in processes:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
