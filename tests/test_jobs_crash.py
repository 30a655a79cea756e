"""Kill the job server with SIGKILL in the middle of a run, start it again: nothing is lost.

The server runs as its own process (`inferlab jobs`), as in production. Phase one finishes some
jobs; phase two leaves jobs queued and in flight (the upstream holds them) when the process is
killed. A new process on the same SQLite file must then bring every accepted job to `succeeded`:
the queued ones are still on disk, and the in-flight ones are claimed again once their lease
runs out. No job may stay `running`."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading

import pytest

from inferlab import ServerThread
from inferlab.jobs import JobClient

from .fake_upstream import make_fake_upstream, release_stall

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_job_server(upstream: str, db: str, port: int) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "inferlab", "jobs", "--upstream", upstream, "--db", db]
    command += ["--port", str(port), "--workers", "4", "--lease-s", "1", "--log-level", "info"]
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    assert process.stderr is not None
    for line in process.stderr:  # uvicorn says when it listens: wait for that, not a clock
        if "Uvicorn running on" in line:
            # Keep reading its log, so that a full pipe never blocks it.
            threading.Thread(target=process.stderr.read, daemon=True).start()
            return process
    raise AssertionError(f"the job server exited with {process.wait()}")


def test_a_sigkilled_job_server_loses_no_accepted_job(tmp_path):
    upstream = make_fake_upstream()
    db = str(tmp_path / "jobs.db")
    with ServerThread(upstream) as model:
        port = free_port()
        first = start_job_server(model.base_url, db, port)
        jobs = JobClient(f"http://127.0.0.1:{port}", poll_s=5)
        try:
            done_before = [jobs.submit(f"early {i}", max_tokens=2).id for i in range(5)]
            assert all(jobs.wait(job_id).status == "succeeded" for job_id in done_before)

            upstream.state.mode = "stall"  # what is sent now hangs until the kill
            in_flight = [jobs.submit(f"late {i}", max_tokens=2).id for i in range(20)]
            assert upstream.state.arrived.wait(10)
            assert jobs.stats()["running"] > 0
        finally:
            os.kill(first.pid, signal.SIGKILL)
            first.wait(10)
            first.stderr.close()
            jobs.close()
        upstream.state.mode = "llama"
        release_stall(upstream)

        second = start_job_server(model.base_url, db, port)
        jobs = JobClient(f"http://127.0.0.1:{port}", poll_s=5)
        try:
            final = {job_id: jobs.wait(job_id, timeout_s=60) for job_id in done_before + in_flight}
            assert {job.status for job in final.values()} == {"succeeded"}
            assert jobs.stats()["running"] == jobs.stats()["queued"] == 0
            # Jobs the dead process was running were claimed again: attempts say so.
            assert any(final[job_id].attempts == 2 for job_id in in_flight)
            assert all(final[job_id].attempts == 1 for job_id in done_before)
        finally:
            second.terminate()
            second.wait(10)
            second.stderr.close()
            jobs.close()
