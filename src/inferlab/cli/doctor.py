"""`inferlab doctor`: checks this environment and an OpenAI-compatible server, as a table.

Each check is one small function returning (ok, detail); a failing check never stops the others,
so one run tells a learner everything that is wrong at once.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import sys
from collections.abc import Callable

import httpx

from ..errors import InferlabError
from ..wire.client import Client
from ..wire.server_profiles import ServerProfile, detect

Check = tuple[str, bool, str]

_PACKAGES = (
    "fastapi",
    "uvicorn",
    "httpx",
    "prometheus-client",
    "jupyterlab",
    "ipywidgets",
    "matplotlib",
    "openai",
)


def environment_checks() -> list[Check]:
    version = ".".join(map(str, sys.version_info[:3]))
    checks = [("python >= 3.10", sys.version_info >= (3, 10), version)]
    for package in _PACKAGES:
        try:
            checks.append((f"package {package}", True, importlib.metadata.version(package)))
        except importlib.metadata.PackageNotFoundError:
            checks.append((f"package {package}", False, "not installed: run `make lab` once"))
    return checks


class CheckFailed(InferlabError):
    """A server check found something wrong; its message is what the table shows."""


def _require(condition: object, message: str) -> None:
    # Not `assert`: `python -O` strips asserts, and a check must never pass because of that.
    if not condition:
        raise CheckFailed(message)


def _models(client: Client) -> str:
    return f"serves {client.model}"


def _completion(client: Client) -> str:
    answer = client.complete("The three ways to serve a model are", max_tokens=8)
    _require(answer.text, "empty text")
    return f"{answer.text.strip()[:30]!r} in {answer.timing.e2e_latency_s * 1000:.0f} ms"


def _list_prompts(client: Client) -> str:
    answer = client.complete(["First prompt", "Second prompt"], max_tokens=4)
    _require(
        len(answer.texts) == 2,
        f"{len(answer.texts)} choices for 2 prompts: run `inferlab proxy --no-list-prompts`",
    )
    return "one choice per prompt: the proxy can batch into this server"


def _streaming(client: Client) -> str:
    answer = client.complete("Count to five:", max_tokens=8, stream=True)
    tokens = len(answer.timing.token_times_s)
    _require(tokens >= 1, "no tokens streamed")
    return f"{tokens} chunks, TTFT {answer.timing.ttft_s * 1000:.0f} ms"


def _usage(client: Client) -> str:
    answer = client.complete("Hello", max_tokens=5)
    _require(answer.prompt_tokens and answer.completion_tokens, "no usage in the answer")
    return f"{answer.prompt_tokens} prompt + {answer.completion_tokens} completion tokens"


def _list_usage(client: Client) -> str:
    """Does a list's usage count every prompt? llama.cpp counts the first only."""
    prompts = ["First prompt here", "Second, longer prompt over here"]
    alone = sum(client.complete(p, max_tokens=1).prompt_tokens or 0 for p in prompts)
    listed = client.complete(prompts, max_tokens=1).prompt_tokens or 0
    if listed == alone:
        return f"a list's usage counts every prompt ({listed} tokens)"
    return (
        f"a list's usage counted {listed} of {alone} prompt tokens: the proxy counts each "
        "caller per prompt (stream chunks, /tokenize), never from the list's usage"
    )


def _ignore_eos(client: Client) -> str:
    answer = client.complete("Stop early?", max_tokens=16, ignore_eos=True)
    _require(
        answer.completion_tokens == 16,
        f"{answer.completion_tokens} of 16 tokens with ignore_eos: output lengths will vary",
    )
    return "honoured: max_tokens is what is generated"


_SERVER_CHECKS: list[tuple[str, Callable[[Client], str]]] = [
    ("GET /models", _models),
    ("completion", _completion),
    ("list of prompts", _list_prompts),
    ("streaming (SSE)", _streaming),
    ("usage", _usage),
    ("usage of a list", _list_usage),
    ("ignore_eos", _ignore_eos),
]


def server_profile(base_url: str, api_key: str | None = None) -> ServerProfile:
    """Which known server this is, with /metrics and parallel slots measured."""

    async def ask() -> ServerProfile:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        async with httpx.AsyncClient(headers=headers, timeout=30.0) as http:
            return await detect(http, base_url)

    return asyncio.run(ask())


def profile_checks(profile: ServerProfile) -> list[Check]:
    """The profile as rows: what the course will do about each ability (warnings, not faults)."""
    rows: list[Check] = [("server", True, f"{profile.name}: what the course will do below")]
    names = ("list prompts", "usage per caller", "/metrics", "ignore_eos", "parallel slots")
    rows += [
        ("  " + name, True, line) for name, line in zip(names, profile.describe(), strict=True)
    ]
    return rows


def server_checks(base_url: str, api_key: str | None = None) -> list[Check]:
    checks: list[Check] = []
    with Client(base_url, api_key=api_key, timeout=30.0) as client:
        for name, check in _SERVER_CHECKS:
            try:
                checks.append((name, True, check(client)))
            except Exception as exc:  # report every failure, keep checking
                checks.append((name, False, f"{type(exc).__name__}: {exc}"[:90]))
    return checks


def format_table(checks: list[Check]) -> str:
    width = max(len(name) for name, _, _ in checks)
    lines = [f"{'ok' if ok else 'FAIL':4}  {name:{width}}  {detail}" for name, ok, detail in checks]
    return "\n".join(lines)
