"""Server profiles: who a server is, from GET /models, with /metrics and slots measured."""

import httpx
import pytest

from inferlab.wire.server_profiles import INFERLAB, OLLAMA, UNKNOWN, VLLM, detect, server_root

pytestmark = pytest.mark.anyio


def _server(owned_by, metrics_status=200):
    def handler(request):
        if request.url.path == "/v1/models":
            return httpx.Response(200, json={"data": [{"id": "m", "owned_by": owned_by}]})
        if request.url.path == "/metrics":
            return httpx.Response(metrics_status, text="# TYPE x counter\nx 1\n")
        return httpx.Response(404)

    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


@pytest.mark.parametrize(
    ("owned_by", "expected"), [("vllm", VLLM), ("library", OLLAMA), ("someone", UNKNOWN)]
)
async def test_a_server_is_known_by_its_models_owner(owned_by, expected):
    async with _server(owned_by) as http:
        profile = await detect(http, "http://s/v1")
    assert (profile.name, profile.list_prompts, profile.plain_usage) == (
        expected.name,
        expected.list_prompts,
        expected.plain_usage,
    )


async def test_a_missing_metrics_endpoint_is_measured_not_assumed():
    async with _server("vllm", metrics_status=404) as http:
        assert (await detect(http, "http://s/v1")).metrics is False


async def test_the_embedded_server_is_inferlab_with_metrics(live_server):
    async with httpx.AsyncClient() as http:
        profile = await detect(http, live_server.base_url)
    assert (profile.name, profile.metrics, profile.plain_usage) == (INFERLAB.name, True, "course")


def test_the_server_root_drops_v1():
    assert server_root("http://h:1/v1/") == "http://h:1"
