"""Property-based fuzz of the HTTP API: whatever the body, an answer below 500, and soon.

Hypothesis builds request bodies from the real field names with values of every JSON type
(mostly wrong ones) plus raw bytes. The app runs in-process on virtual time, and each request
must be answered within a time bound, so a hang fails the test instead of stalling the suite.
"""

import asyncio
import json

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inferlab import SimulatedModel, create_app
from inferlab._clock import VirtualClock

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


async def _post(path: str, body: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=_app)
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
