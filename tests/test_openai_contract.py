"""The official `openai` client, unchanged, against a real `inferlab` server on loopback."""

import openai
import pytest


@pytest.fixture(scope="module")
def client(live_server):
    return openai.OpenAI(base_url=live_server.base_url, api_key="unused", max_retries=0)


def test_completion_with_a_string_prompt(client):
    completion = client.completions.create(
        model="h100-llama3-8b", prompt="Say hi", max_tokens=5, extra_body={"ignore_eos": True}
    )
    assert completion.choices[0].text and completion.choices[0].finish_reason == "length"
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (2, 5)


def test_completion_with_a_list_of_prompts(client):
    completion = client.completions.create(
        model="h100-llama3-8b", prompt=["One", "Two", "Three"], max_tokens=3
    )
    assert sorted(choice.index for choice in completion.choices) == [0, 1, 2]
    assert completion.usage.prompt_tokens == 3


def test_chat_completion(client):
    chat = client.chat.completions.create(
        model="h100-llama3-8b", messages=[{"role": "user", "content": "Hello"}], max_tokens=8
    )
    assert chat.choices[0].message.role == "assistant" and chat.choices[0].message.content
    assert chat.usage.total_tokens == chat.usage.prompt_tokens + chat.usage.completion_tokens


def test_streamed_completion_with_usage(client):
    stream = client.completions.create(
        model="h100-llama3-8b",
        prompt="Stream",
        max_tokens=6,
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"ignore_eos": True},
    )
    chunks = list(stream)
    text = "".join(chunk.choices[0].text for chunk in chunks if chunk.choices)
    assert text and chunks[-1].usage.completion_tokens == 6


def test_streamed_chat(client):
    stream = client.chat.completions.create(
        model="h100-llama3-8b",
        messages=[{"role": "user", "content": "Hi"}],
        max_tokens=5,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    reasons = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert content and reasons[-1] in {"length", "stop"}
    assert chunks[-1].usage is not None


def test_listing_models(client):
    assert [model.id for model in client.models.list()] == ["h100-llama3-8b"]


@pytest.mark.parametrize(
    ("options", "exception", "code"),
    [
        ({"max_tokens": -1}, openai.BadRequestError, None),
        ({"max_tokens": 10**6}, openai.BadRequestError, "context_length_exceeded"),
        ({"prompt": "word " * 9000}, openai.BadRequestError, "context_length_exceeded"),
        ({"temperature": 3.0}, openai.BadRequestError, None),
        ({"model": "no-such-model"}, openai.NotFoundError, "model_not_found"),
        ({"prompt": "x" * (5 * 1024 * 1024)}, openai.APIStatusError, None),
    ],
    ids=[
        "negative max_tokens",
        "huge max_tokens",
        "prompt over the context",
        "temperature",
        "unknown model",
        "body too large",
    ],
)
def test_each_error_raises_the_matching_openai_exception(client, options, exception, code):
    request = {"model": "h100-llama3-8b", "prompt": "Hi", "max_tokens": 4, **options}
    with pytest.raises(exception) as raised:
        client.completions.create(**request)
    if code is not None:
        assert raised.value.code == code
    if exception is openai.APIStatusError:
        assert raised.value.status_code == 413


def test_a_wrong_key_raises_authentication_error(keyed_server):
    wrong = openai.OpenAI(base_url=keyed_server.base_url, api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.models.list()
    right = openai.OpenAI(base_url=keyed_server.base_url, api_key="secret-key", max_retries=0)
    assert right.models.list().data
