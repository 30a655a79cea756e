"""Property-based fuzz of the HTTP API: whatever the body, an answer below 500, and soon.

Hypothesis builds request bodies from the real field names with values of every JSON type
(mostly wrong ones) plus raw bytes. The app runs in-process on virtual time, and each request
must be answered within a time bound, so a hang fails the test instead of stalling the suite.
"""

import asyncio
import json

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inferlab import ServerThread, SimulatedModel, create_app
from inferlab.engine.clock import VirtualClock
from inferlab.proxy.app import create_proxy_app

ANSWER_WITHIN_S = 10.0

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**64), 2**64),
    st.floats(allow_nan=False),
    st.text(max_size=30),
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
small_ints = st.integers(-3, 40) | st.sampled_from([0, 8191, 8192, 10**9, -(10**9)])
plausible = {
    "prompt": st.text(max_size=40) | st.lists(st.text(max_size=10), max_size=5) | json_values,
    "messages": st.lists(
        st.fixed_dictionaries(
            {
                "role": st.sampled_from(["user", "system", "assistant", "robot"]),
                "content": st.text(max_size=20) | json_values,
            }
        ),
        max_size=3,
    )
    | json_values,
    "max_tokens": small_ints | json_values,
    "n": st.integers(-1, 4) | json_values,
    "temperature": st.floats(-1, 3) | json_values,
    "stream": st.booleans() | json_values,
    "stop": st.text(max_size=3) | st.lists(st.text(max_size=3), max_size=6) | json_values,
    "seed": st.integers() | json_values,
    "ignore_eos": st.booleans(),
    "model": st.sampled_from(["h100-llama3-8b", "other"]) | json_values,
    "stream_options": st.fixed_dictionaries({"include_usage": st.booleans()}) | json_values,
}
bodies = st.one_of(
    st.fixed_dictionaries({}, optional=plausible).map(json.dumps),
    json_values.map(json.dumps),
    st.binary(max_size=64).map(lambda raw: raw.decode("latin-1")),
)

_loop = asyncio.new_event_loop()
_app = create_app(SimulatedModel(clock=VirtualClock()))


@pytest.fixture(scope="module", autouse=True)
def _close_the_loops():
    """The fuzz drives its own event loops (hypothesis calls plain functions); close them after."""
    yield
    _loop.close()
    _proxy_loop.close()


async def _post(path: str, body: str, app=_app) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://fuzz") as client:
        return await asyncio.wait_for(
            client.post(
                path,
                content=body.encode("utf-8", "surrogatepass"),
                headers={"content-type": "application/json"},
            ),
            ANSWER_WITHIN_S,
        )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.sampled_from(["/v1/completions", "/v1/chat/completions"]), body=bodies)
def test_no_body_crashes_or_hangs_the_server(path, body):
    response = _loop.run_until_complete(_post(path, body))
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}
    elif '"stream": true' not in body:
        assert response.json()["choices"]


# ---------------------------------------------------------------------------------------------
# The batching proxy gets the same treatment, in front of a real upstream on virtual time. It
# checks only what it needs (prompt, n, stream) and passes the rest on, so upstream 4xx answers
# travel back through it; short max_tokens keep valid requests quick.

_proxy_loop = asyncio.new_event_loop()


@pytest.fixture(scope="module")
def proxy_app():
    upstream = ServerThread(create_app(SimulatedModel(clock=VirtualClock()))).start()
    yield create_proxy_app(upstream.base_url, batch_wait_timeout_s=0.001)
    upstream.stop()


short_plausible = {
    **plausible,
    "max_tokens": st.integers(-3, 8) | json_values,
    "n": st.integers(-1, 3) | json_values,
}
proxy_bodies = st.one_of(
    st.fixed_dictionaries({}, optional=short_plausible).map(json.dumps),
    json_values.map(json.dumps),
    st.binary(max_size=64).map(lambda raw: raw.decode("latin-1")),
)


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(path=st.sampled_from(["/v1/completions", "/v1/chat/completions"]), body=proxy_bodies)
def test_no_body_crashes_or_hangs_the_proxy(proxy_app, path, body):
    response = _proxy_loop.run_until_complete(_post(path, body, proxy_app))
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert "error" in response.json()
