"""Settings objects: typed, frozen, checked whole before anything changes."""

import dataclasses

import pytest

from inferlab.jobs.settings import JobSettings
from inferlab.proxy.settings import ProxySettings
from inferlab.serve import ModelServer, ServerSettings, ServiceState, create_app
from inferlab.serve.settings import ENGINE_KNOBS

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("changes", "error", "says"),
    [
        ({"max_num_seqs": True}, TypeError, "max_num_seqs must be int, got True"),
        ({"max_num_seqs": 2.5}, TypeError, "max_num_seqs must be int"),
        ({"time_scale": "0.5"}, TypeError, "time_scale must be"),
        ({"time_scale": float("inf")}, ValueError, "finite"),
        ({"time_scale": 0}, ValueError, "time_scale must be > 0"),
        ({"batching": "dynamic"}, ValueError, "batching must be one of none, static, continuous"),
        ({"max_num_seq": 8}, TypeError, "unknown setting 'max_num_seq'"),
    ],
)
def test_a_bad_server_setting_is_refused_with_its_name(changes, error, says):
    with pytest.raises(error, match=says):
        ServerSettings.from_dict(changes)
    with pytest.raises(error, match=says):
        ServerSettings().replace(**changes)


def test_settings_are_frozen_and_replace_makes_a_checked_copy():
    settings = ServerSettings(time_scale=0.1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.time_scale = 1.0  # type: ignore[misc]
    assert settings.replace(max_num_seqs=8).max_num_seqs == 8 and settings.max_num_seqs == 256


def test_the_proxy_and_the_job_api_need_their_upstream():
    with pytest.raises(TypeError, match="needs upstream"):
        ProxySettings.from_dict({})
    with pytest.raises(ValueError, match="upstream must be an http"):
        JobSettings(upstream="localhost:8000")


def test_create_app_refuses_an_engine_setting_beside_a_model(virtual_model):
    """It used to ignore `batching` silently when given a model."""
    with pytest.raises(TypeError, match="'batching' is the model's to set"):
        create_app(virtual_model, batching="none")


async def test_a_model_server_turns_its_engine_knobs_and_keeps_its_state():
    server = ModelServer(ServerSettings(time_scale=0.01))
    assert server.state is ServiceState.NEW
    async with server:
        assert server.state is ServiceState.RUNNING
        changed = server.configure(batching="static", max_num_seqs=4)
        assert (changed.batching, changed.max_num_seqs) == ("static", 4)
        assert server.model.scheduler.max_num_seqs == 4
        with pytest.raises(ValueError, match="max_num_seqs must be >= 1"):
            server.configure(max_num_seqs=0)
        assert server.settings.max_num_seqs == 4  # the refused change did not apply
        with pytest.raises(TypeError, match="cannot change while serving"):
            server.configure(profile="h100-llama3-1b")
        assert server.configure(time_scale=0.02).time_scale == 0.02  # idle: it may
        assert server.model.time_scale == 0.02
    assert server.state is ServiceState.CLOSED
    with pytest.raises(RuntimeError, match="closed; make a new one"):
        await server.start()
    assert set(ENGINE_KNOBS) <= set(server.settings.to_dict())
