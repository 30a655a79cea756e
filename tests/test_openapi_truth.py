"""The OpenAPI documents tell the truth: what each server refuses, its schema refuses; a refusal
is documented as the 400 it is, in OpenAI's shape (never FastAPI's 422); streams and /metrics
declare their real content types; a wrong method's 405 names every method the path has."""

from __future__ import annotations

import httpx
import pytest

from inferlab import SimulatedModel, create_app
from inferlab.engine.clock import VirtualClock
from inferlab.jobs import create_jobs_app
from inferlab.proxy.app import create_proxy_app

PLACEHOLDER = "http://127.0.0.1:9/v1"
pytestmark = pytest.mark.anyio


def _apps(tmp_path):
    return {
        "model server": create_app(SimulatedModel(clock=VirtualClock())),
        "proxy": create_proxy_app(PLACEHOLDER),
        "job API": create_jobs_app(PLACEHOLDER, db=str(tmp_path / "jobs.db"), workers=0),
    }


@pytest.fixture(params=["model server", "proxy", "job API"])
def app(request, tmp_path):
    return _apps(tmp_path)[request.param]


def _client(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


def _operations(document):
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            yield f"{method.upper()} {path}", operation


def test_every_operation_documents_openai_errors_and_none_documents_422(app):
    document = app.openapi()
    error = {"$ref": "#/components/schemas/ErrorResponse"}
    for name, operation in _operations(document):
        responses = operation["responses"]
        assert "422" not in responses, name
        for status in ("400", "default"):
            assert responses[status]["content"]["application/json"]["schema"] == error, name
    detail = document["components"]["schemas"]["_ErrorDetail"]
    assert set(detail["required"]) == {"message", "type", "param", "code"}
    assert "HTTPValidationError" not in document["components"]["schemas"]


def test_streams_and_metrics_declare_their_content_types(app):
    document = app.openapi()["paths"]
    metrics = document["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(metrics) == ["text/plain; version=0.0.4"]
    streamed = [
        path
        for path, operations in document.items()
        for operation in operations.values()
        if "text/event-stream" in operation["responses"].get("200", {}).get("content", {})
    ]
    assert streamed, "no operation declares its Server-Sent Events"


async def test_the_documented_stream_content_types_are_the_real_ones():
    app = create_app(SimulatedModel(clock=VirtualClock()))
    async with _client(app) as client:
        body = {"prompt": "hi", "max_tokens": 2, "stream": True}
        streamed = await client.post("/v1/completions", json=body)
        metrics = await client.get("/metrics")
    assert streamed.headers["content-type"].startswith("text/event-stream")
    assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
    documented = app.openapi()["paths"]["/v1/completions"]["post"]["responses"]["200"]
    assert set(documented["content"]) == {"application/json", "text/event-stream"}


@pytest.mark.parametrize(
    ("kind", "path", "methods"),
    [
        ("model server", "/admin/engine", {"GET", "PUT"}),
        ("proxy", "/admin/batching", {"GET", "PUT"}),
        ("job API", "/admin/workers", {"GET", "PUT"}),
        ("job API", "/v1/jobs/some-id", {"GET", "DELETE"}),
    ],
)
async def test_a_wrong_method_is_a_405_that_names_every_method_of_the_path(
    tmp_path, kind, path, methods
):
    async with _client(_apps(tmp_path)[kind]) as client:
        response = await client.post(path, json={})
    assert response.status_code == 405
    assert set(response.headers["allow"].split(", ")) == methods
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}


# --- what the schema says and what the server does agree, case by case ----------------------


def _completion_schema():
    app = create_app(SimulatedModel(clock=VirtualClock()))
    return app.openapi()["components"]["schemas"], app


async def _post(app, path, body):
    async with _client(app) as client:
        return await client.post(path, json=body)


async def test_a_whole_float_is_an_integer_as_json_schema_says():
    """JSON Schema counts 1.0 as an integer, so `n: 1.0` must be served; 1.5 and "1" are not."""
    schemas, app = _completion_schema()
    assert schemas["CompletionRequest"]["properties"]["n"]["type"] == "integer"
    body = {"prompt": "hi", "max_tokens": 2.0}
    assert (await _post(app, "/v1/completions", {**body, "n": 1.0})).status_code == 200
    for wrong in (1.5, "1", True):
        assert (await _post(app, "/v1/completions", {**body, "n": wrong})).status_code == 400


async def test_unsupported_logprobs_are_refused_by_the_schema_too():
    schemas, app = _completion_schema()
    assert schemas["CompletionRequest"]["properties"]["logprobs"]["type"] == "null"
    assert schemas["ChatCompletionRequest"]["properties"]["logprobs"]["const"] is False
    chat = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    for logprobs in (True, 0):  # subtle: 0 == False, and a Literal[False] alone took 0
        response = await _post(app, "/v1/chat/completions", {**chat, "logprobs": logprobs})
        assert response.status_code == 400, logprobs
    assert (await _post(app, "/v1/chat/completions", {**chat, "logprobs": False})).is_success
    response = await _post(app, "/v1/completions", {"prompt": "hi", "logprobs": 1})
    assert response.status_code == 400


async def test_an_empty_prompt_list_is_refused_by_the_schema_too():
    schemas, app = _completion_schema()
    as_list = schemas["CompletionRequest"]["properties"]["prompt"]["anyOf"][1]
    assert (as_list["minItems"], as_list["maxItems"]) == (1, 1024)
    assert (await _post(app, "/v1/completions", {"prompt": []})).status_code == 400


async def test_a_chat_message_needs_a_role_at_the_proxy_as_well():
    """The proxy passed messages through unchecked, and its schema said any object would do."""
    proxy = create_proxy_app(PLACEHOLDER)
    message = proxy.openapi()["components"]["schemas"]["ProxyChatMessage"]
    assert message["required"] == ["role"]
    response = await _post(proxy, "/v1/chat/completions", {"messages": [{"content": "hi"}]})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "messages.0.role"


async def test_a_job_submission_is_strict_as_its_schema(tmp_path):
    """Its schema says integer; the lax model took "3" (found by the fuzz)."""
    jobs = create_jobs_app(PLACEHOLDER, db=str(tmp_path / "jobs.db"), workers=0)
    body = {"request": {"prompt": "hi"}, "max_attempts": "3"}
    assert (await _post(jobs, "/v1/jobs", body)).status_code == 400


def test_an_empty_answer_is_not_documented_as_json():
    """POST /reset_prefix_cache answers 200 with no body, as vLLM's (found by the fuzz)."""
    _, app = _completion_schema()
    ok = app.openapi()["paths"]["/reset_prefix_cache"]["post"]["responses"]["200"]
    assert "content" not in ok


def _keys(value):
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _keys(item)
    elif isinstance(value, list):
        for item in value:
            yield from _keys(item)


def test_bounds_are_written_in_json_schema_words(app):
    """pydantic wrote `{"ge": 1}` for `max_tokens` once it had a validator of its own, and a
    fuzzer that reads the document then sent max_tokens: 0 as valid (a positive-only
    schemathesis run found it)."""
    assert not {"ge", "le", "gt", "lt"} & set(_keys(app.openapi()))


def test_max_tokens_is_documented_as_at_least_one():
    schemas, _ = _completion_schema()
    for model, field in [
        ("CompletionRequest", "max_tokens"),
        ("ChatCompletionRequest", "max_tokens"),
        ("ChatCompletionRequest", "max_completion_tokens"),
    ]:
        as_int = schemas[model]["properties"][field]["anyOf"][0]
        assert as_int == {"type": "integer", "minimum": 1}, (model, field)
