"""Where the course's server lives: the embedded one in a process of its own, or yours."""

import os
import select
import subprocess
import sys

import pytest

import inferlab
from inferlab import APIStatusError, ServerUnavailableError
from inferlab.lab import runtime
from inferlab.lab.servers import start_model_server, start_proxy


def test_without_a_configured_server_the_embedded_one_starts_once(monkeypatch):
    monkeypatch.delenv("INFERLAB_BASE_URL", raising=False)
    first, second = inferlab.base_url(), inferlab.base_url()
    assert first == second and first.startswith("http://127.0.0.1:")
    server = runtime.embedded_server()
    assert inferlab.embedded_model() is server and server.process.running


def test_inferlab_base_url_selects_an_external_server(monkeypatch, live_server):
    monkeypatch.setenv("INFERLAB_BASE_URL", live_server.base_url + "/")
    assert inferlab.base_url() == live_server.base_url
    assert inferlab.embedded_model() is None and inferlab.time_scale() == 1.0


def test_an_unreachable_server_says_what_to_do(monkeypatch):
    monkeypatch.setenv("INFERLAB_BASE_URL", "http://127.0.0.1:9/v1")
    with pytest.raises(ServerUnavailableError, match="unset INFERLAB_BASE_URL"):
        inferlab.base_url()


def test_a_server_in_its_own_process_is_turned_through_its_admin_api():
    """Knobs travel over HTTP; a refused change says why and changes nothing."""
    with start_model_server(time_scale=0.01, max_num_seqs=16) as server:
        assert server.configure(batching="static")["batching"] == "static"
        with pytest.raises(APIStatusError, match="max_num_seqs must be >= 1") as refused:
            server.configure(max_num_seqs=0)
        assert refused.value.status_code == 400
        assert server.configure()["max_num_seqs"] == 16
        assert server.set_faults(fail_rate=0.5)["fail_rate"] == 0.5
        with start_proxy(server.base_url, max_batch_size=4) as proxy:
            assert proxy.configure(max_batch_size=8)["max_batch_size"] == 8
            assert proxy.stats()["batches"] == 0
    assert not server.process.running


def test_a_bad_setting_fails_before_any_process_starts():
    with pytest.raises(TypeError, match="unknown setting 'max_num_seq'"):
        start_model_server(max_num_seq=8)


def test_a_server_never_outlives_the_kernel_that_started_it():
    """Kill the parent with SIGKILL (no atexit runs): the child sees its stdin close and
    exits. pidfd lets us wait for that exit as an event, not by polling."""
    code = (
        "from inferlab.lab.servers import start_model_server\n"
        "s = start_model_server(time_scale=0.01)\n"
        "print(s.process._process.pid, flush=True)\n"
        "import time; time.sleep(600)\n"
    )
    command = [sys.executable, "-c", code]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as parent:
        assert parent.stdout is not None
        pidfd = os.pidfd_open(int(parent.stdout.readline()))
        try:
            parent.kill()
            parent.wait()
            readable, _, _ = select.select([pidfd], [], [], 30)
            assert readable, "the server was still running 30 s after its parent died"
        finally:
            os.close(pidfd)
