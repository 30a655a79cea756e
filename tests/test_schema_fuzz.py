"""Each server fuzzed from its own OpenAPI document (schemathesis): the document is the truth.

For every operation of the model server, the batching proxy and the job API, schemathesis
generates requests that fit the schema and requests that do not, sends them over real HTTP,
and checks the answers: no 5xx; the status, content type, headers and body are what the
document says (every error documented as OpenAI's shape, so the body check is the shape
check); a request the schema refuses is refused (a 4xx, not served). The job API also gets a
stateful run that follows the document's links: submit, then poll, listen to or cancel that
job. About a minute in all: a few examples per operation, on a virtual clock. To search
longer: INFERLAB_FUZZ_EXAMPLES=200 pytest tests/test_schema_fuzz.py
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from inferlab import ServerThread, SimulatedModel, create_app
from inferlab.engine.clock import VirtualClock
from inferlab.jobs import create_jobs_app
from inferlab.proxy.app import create_proxy_app

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
EXAMPLES_PER_OPERATION = int(os.environ.get("INFERLAB_FUZZ_EXAMPLES", "12"))
ANSWER_WITHIN_S = 30.0  # a hang fails the case instead of stalling the suite
FUZZ = settings(
    deadline=None,
    max_examples=EXAMPLES_PER_OPERATION,
    suppress_health_check=list(HealthCheck),
)
PLACEHOLDER = "http://127.0.0.1:9/v1"  # the documents do not depend on the upstream


def _schema(app) -> schemathesis.schemas.BaseSchema:
    schema = schemathesis.openapi.from_dict(app.openapi())
    schema.config.generation.update(max_examples=EXAMPLES_PER_OPERATION)
    return schema


model_schema = _schema(create_app(SimulatedModel(clock=VirtualClock())))
proxy_schema = _schema(create_proxy_app(PLACEHOLDER))
jobs_schema = _schema(create_jobs_app(PLACEHOLDER, db=":memory:"))


# A virtual clock costs no waiting, but every token still costs CPU: the default budget
# (262,144 tokens a request) is a minute of CPU on a busy machine. A small one keeps each
# case quick; past it is a 400, which the document says.
FUZZ_BUDGET = 4096


@pytest.fixture(scope="module")
def model_server() -> Iterator[ServerThread]:
    model = SimulatedModel(clock=VirtualClock())
    app = create_app(model, max_tokens_per_request=FUZZ_BUDGET)
    with ServerThread(app) as server:
        yield server


@pytest.fixture(scope="module")
def proxy(model_server) -> Iterator[ServerThread]:
    app = create_proxy_app(model_server.base_url, batch_wait_timeout_s=0.001)
    with ServerThread(app) as server:
        yield server


@pytest.fixture(scope="module")
def job_api(model_server, tmp_path_factory) -> Iterator[ServerThread]:
    db = tmp_path_factory.mktemp("fuzz") / "jobs.db"
    with ServerThread(create_jobs_app(model_server.base_url, db=str(db))) as server:
        yield server


def _root(server: ServerThread) -> str:
    return f"http://{server.host}:{server.port}"


def _call(case, server: ServerThread) -> None:
    response = case.call_and_validate(
        base_url=_root(server), checks=CHECKS, timeout=ANSWER_WITHIN_S
    )
    if response.status_code >= 400:  # said twice: the schema check, and plainly here
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}


@model_schema.parametrize()
@FUZZ
def test_the_model_server_does_what_its_document_says(case, model_server):
    _call(case, model_server)


@proxy_schema.parametrize()
@FUZZ
def test_the_proxy_does_what_its_document_says(case, proxy):
    _call(case, proxy)


@jobs_schema.parametrize()
@FUZZ
def test_the_job_api_does_what_its_document_says(case, job_api):
    _call(case, job_api)


JobApiMachine = jobs_schema.as_state_machine()


def test_the_job_api_follows_its_links(job_api):
    """Submit, then poll, listen to or cancel the job the answer names (the 202's links)."""

    class Machine(JobApiMachine):  # type: ignore[misc, valid-type]
        def get_call_kwargs(self, case):
            return {"base_url": _root(job_api), "timeout": ANSWER_WITHIN_S}

        def validate_response(self, response, case, **kwargs):
            case.validate_response(response, checks=CHECKS)

    steps = settings(max_examples=max(8, EXAMPLES_PER_OPERATION // 2), stateful_step_count=4)
    Machine.run(settings=settings(steps, deadline=None))
