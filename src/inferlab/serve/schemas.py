"""Request bodies of the OpenAI API, as pydantic models: the only place pydantic appears.

Strict types (a string is not a number, `true` is not 1), bounds on every number, and unknown
fields ignored, as real servers do, so that clients which send extra options still work.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

MAX_PROMPTS_PER_REQUEST = 1024
MAX_CHOICES_PER_PROMPT = 16


def _unsendable_at(value: Any, path: str = "", *, finite: bool = False) -> str | None:
    """What in a JSON value could not be sent on, and where: "prompt[1]: the text is not valid
    Unicode ..." or None. With `finite`, a number that is NaN or infinite too.

    subtle: JSON may escape half of a UTF-16 pair on its own ("\\ud800"), and Python's JSON
    reader turns it into a str holding a lone surrogate. Such a str cannot be encoded, so it
    breaks whatever writes it later (the engine's hash, a JSON answer, a database row).
    Python's reader also takes NaN and Infinity, which JSON itself has not.
    """
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return f"{path or 'the body'}: {_NOT_UNICODE}"
        return None
    if isinstance(value, float):
        if finite and not math.isfinite(value):
            return f"{path or 'the body'}: {_NOT_FINITE}"
        return None
    if not isinstance(value, (dict, list)):
        return None
    for key, item in value.items() if isinstance(value, dict) else enumerate(value):
        if isinstance(key, int):
            where = f"{path}[{key}]"
        else:  # a key can be unencodable too: name it with the surrogate spelled out
            where = f"{path}.{key.encode('utf-8', 'backslashreplace').decode()}".lstrip(".")
            if _unsendable_at(key) is not None:
                return f"{where}: {_NOT_UNICODE}"
        found = _unsendable_at(item, where, finite=finite)
        if found:
            return found
    return None


_NOT_UNICODE = (
    "the text is not valid Unicode (a lone surrogate such as \\ud800 cannot be encoded as UTF-8)"
)
_NOT_FINITE = "numbers must be finite (NaN and Infinity are not JSON)"


def refuse_unencodable(data: Any) -> Any:
    """A before-validator for a whole body: a 400 at the edge for text that is not Unicode."""
    problem = _unsendable_at(data)
    if problem is not None:
        raise ValueError(problem)
    return data


def refuse_unsendable(data: Any) -> Any:
    """refuse_unencodable, and numbers that are not finite, in one walk: for bodies passed on
    to an upstream, which could not be sent with either."""
    problem = _unsendable_at(data, finite=True)
    if problem is not None:
        raise ValueError(problem)
    return data


def whole_float_as_int(value: Any) -> Any:
    """1.0 -> 1; 1.5, "1" and true stay as they are (and are refused as ints)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# subtle: JSON Schema counts 1.0 as an integer, so the OpenAPI document says `n: 1.0` is fine.
# The server must then agree: a whole float is its int, while strict mode still refuses "1",
# true and 1.5. (vLLM's lax models take 1.0 too.)
WholeNumber = Annotated[int, BeforeValidator(whole_float_as_int)]
# subtle: bounds go inside, before the validator. `WholeNumber | None = Field(ge=1)` validates
# the same but writes {"ge": 1} into the document, a keyword JSON Schema does not have.
TokenCount = Annotated[int, Field(ge=1), BeforeValidator(whole_float_as_int)]
PromptList = Annotated[list[str], Field(min_length=1, max_length=MAX_PROMPTS_PER_REQUEST)]


class _Request(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")


class _Body(_Request):
    """A whole request body: checked for unencodable text once, before any field."""

    _encodable = model_validator(mode="before")(refuse_unencodable)


class StreamOptions(_Request):
    include_usage: bool = False


class _Sampling(_Body):
    """Options shared by completions and chat completions."""

    model: str | None = None
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, ge=0.0, le=1.0)
    n: WholeNumber = Field(1, ge=1, le=MAX_CHOICES_PER_PROMPT)
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = None
    seed: WholeNumber | None = None
    presence_penalty: float = Field(0.0, ge=-2.0, le=2.0)  # accepted, no effect on the text
    frequency_penalty: float = Field(0.0, ge=-2.0, le=2.0)  # accepted, no effect on the text
    ignore_eos: bool = False  # vLLM and llama.cpp extension: always generate max_tokens
    user: str | None = None

    @field_validator("stop")
    @classmethod
    def _at_most_four_stops(cls, stop: str | list[str] | None) -> str | list[str] | None:
        if isinstance(stop, list) and len(stop) > 4:
            raise ValueError(f"at most 4 stop sequences are allowed, got {len(stop)}")
        return stop

    @property
    def stop_list(self) -> list[str]:
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or [])

    @property
    def include_usage_in_stream(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage


def _text_prompts_only(prompt: Any) -> Any:
    if not isinstance(prompt, (str, list)):
        raise ValueError("prompt must be a string or a list of strings")
    if isinstance(prompt, list):
        if not prompt:
            raise ValueError("prompt must not be an empty list")
        if len(prompt) > MAX_PROMPTS_PER_REQUEST:
            raise ValueError(f"at most {MAX_PROMPTS_PER_REQUEST} prompts per request")
        if any(not isinstance(item, str) for item in prompt):
            raise ValueError(
                "prompt must be a string or a list of strings (token ids are not supported here)"
            )
    return prompt


class CompletionRequest(_Sampling):
    prompt: str | PromptList
    max_tokens: TokenCount | None = 16
    echo: bool = False
    logprobs: None = None  # not supported: the document says only null is accepted

    _prompt = field_validator("prompt", mode="before")(_text_prompts_only)

    @field_validator("logprobs", mode="before")
    @classmethod
    def _no_logprobs(cls, logprobs: Any) -> None:
        if logprobs is not None:
            raise ValueError("logprobs are not supported by the simulated model")
        return logprobs

    @property
    def prompts(self) -> list[str]:
        return [self.prompt] if isinstance(self.prompt, str) else self.prompt


class TextPart(_Request):
    type: Literal["text"]
    text: str


class ChatMessage(_Request):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    name: str | None = None

    @property
    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content)
        return self.content or ""


class ChatCompletionRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: TokenCount | None = None
    max_completion_tokens: TokenCount | None = None
    logprobs: Literal[False] = False  # not supported: the document says only false

    @field_validator("logprobs", mode="before")
    @classmethod
    def _no_logprobs(cls, logprobs: Any) -> Any:
        if logprobs is True:
            raise ValueError("logprobs are not supported by the simulated model")
        if not isinstance(logprobs, bool):  # subtle: 0 == False, so the Literal alone takes 0
            raise ValueError(f"logprobs must be false, got {logprobs!r}")
        return logprobs

    @property
    def completion_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


def render_chat(messages: list[ChatMessage]) -> str:
    """The chat template: the text the model actually reads, so its tokens are what we count.

    [user: "Hi"] -> "<|user|>\\nHi\\n<|assistant|>\\n"
    """
    turns = [f"<|{message.role}|>\n{message.text}\n" for message in messages]
    return "".join(turns) + "<|assistant|>\n"


# ---------------------------------------------------------------------------------------------
# What the batching proxy checks: only what it needs itself. Everything else passes through to
# the upstream, which knows its own options (vLLM's top_k, llama.cpp's cache_prompt, ...).


class _PassThrough(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")

    # Every field is passed on, known or not: refuse here, with a 400, what could not be sent
    # (one walk of the raw body, not a dump and a trial encoding of the validated one).
    _sendable = model_validator(mode="before")(refuse_unsendable)


class ProxyCompletionRequest(_PassThrough):
    prompt: str | PromptList
    n: WholeNumber = Field(1, ge=1, le=MAX_CHOICES_PER_PROMPT)
    stream: bool = False
    stream_options: StreamOptions | None = None

    _prompt = field_validator("prompt", mode="before")(_text_prompts_only)

    @property
    def prompts(self) -> list[str]:
        return [self.prompt] if isinstance(self.prompt, str) else self.prompt


class ProxyChatMessage(BaseModel):
    """What every chat message has, whatever the upstream: a role. The rest passes through."""

    model_config = ConfigDict(strict=True, extra="allow")
    role: str


class ProxyChatRequest(_PassThrough):
    messages: list[ProxyChatMessage] = Field(min_length=1)
    stream: bool = False
