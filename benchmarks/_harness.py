"""What the benchmarks share: starting inferlab servers as processes, and stopping them.

Each server runs in its own process so that the load generator does not share its GIL: on a
two-core machine that is the difference between measuring the server and measuring the client.
"""

from __future__ import annotations

import subprocess
import sys
import time

import httpx


def spawn(*arguments: str) -> subprocess.Popen[bytes]:
    """Start `inferlab <arguments>` (serve or proxy) with warnings-only logging."""
    command = [sys.executable, "-m", "inferlab.cli.main", *arguments, "--log-level", "warning"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL)


def wait_until_up(url: str, timeout_s: float = 30.0) -> None:
    """Return once `url` answers 2xx; a benchmark script may poll a process that is starting."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1.0).raise_for_status()
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing answered at {url}")


def stop(*processes: subprocess.Popen[bytes]) -> None:
    for process in processes:
        process.terminate()
        process.wait(10)
