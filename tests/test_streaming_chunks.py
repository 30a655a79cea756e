"""A token's SSE event from the template is byte for byte the event the whole chunk encodes to."""

import json

from hypothesis import given
from hypothesis import strategies as st

from inferlab.serve.shapes import CHAT, COMPLETION, TokenChunks, sse

HEAD = {"id": "cmpl-1", "object": "text_completion", "created": 1, "model": 'm "quoted" é'}


@given(text=st.text(min_size=1), index=st.integers(0, 3))
def test_a_completion_token_event_is_the_encoded_chunk(text, index):
    chunks = TokenChunks(HEAD, COMPLETION)
    expected = sse({**HEAD, "choices": [COMPLETION.delta(index, text, None, first=False)]})
    assert chunks.event(index, text) == expected
    assert json.loads(expected.removeprefix("data: "))["choices"][0]["text"] == text


@given(text=st.text(min_size=1), index=st.integers(0, 3))
def test_a_chat_token_event_is_the_encoded_chunk(text, index):
    chunks = TokenChunks(HEAD, CHAT)
    expected = sse({**HEAD, "choices": [CHAT.delta(index, text, None, first=False)]})
    assert chunks.event(index, text) == expected
    assert json.loads(expected.removeprefix("data: "))["choices"][0]["delta"] == {"content": text}


def test_the_text_may_hold_the_marker_itself():
    chunks = TokenChunks(HEAD, COMPLETION)
    text = TokenChunks._MARK * 2
    assert chunks.event(0, text) == sse(
        {**HEAD, "choices": [COMPLETION.delta(0, text, None, first=False)]}
    )
