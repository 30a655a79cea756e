import pytest

import inferlab
from inferlab import ServerUnavailableError
from inferlab.lab import runtime


def test_without_a_configured_server_the_embedded_one_starts_once(monkeypatch):
    monkeypatch.delenv("INFERLAB_BASE_URL", raising=False)
    first, second = inferlab.base_url(), inferlab.base_url()
    assert first == second and first.startswith("http://127.0.0.1:")
    assert inferlab.embedded_model() is runtime.embedded_server().app.state.model


def test_inferlab_base_url_selects_an_external_server(monkeypatch, live_server):
    monkeypatch.setenv("INFERLAB_BASE_URL", live_server.base_url + "/")
    assert inferlab.base_url() == live_server.base_url
    assert inferlab.embedded_model() is None and inferlab.time_scale() == 1.0


def test_an_unreachable_server_says_what_to_do(monkeypatch):
    monkeypatch.setenv("INFERLAB_BASE_URL", "http://127.0.0.1:9/v1")
    with pytest.raises(ServerUnavailableError, match="unset INFERLAB_BASE_URL"):
        inferlab.base_url()
