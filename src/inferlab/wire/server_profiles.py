"""What each real model server can do, in one place: the proxy, the bench tool and doctor read it.

    llama.cpp  list prompts yes, but a list's usage counts its first prompt only; each prompt's
               final stream chunk carries that prompt's exact usage; POST /tokenize {"content"};
               /metrics only with --metrics; parallel slots from GET /props.
    vLLM       a list's usage is the total; with stream_options.continuous_usage_stats every
               chunk carries its own prompt's usage; `return_token_ids` gives the exact tokens
               of a plain answer; /metrics always.
    Ollama     no list prompts (one prompt a request), no /metrics, no ignore_eos.
    inferlab   the embedded server: counts tokens with the course's own rule, so that rule is
               exact for it; everything else as vLLM.

`detect()` asks the server who it is (GET /models `owned_by`) and measures the rest; an unknown
server is batched as before, its usage estimated with the course's rule, and doctor warns.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

import httpx

# How a caller's usage is made exact when its prompts shared one upstream request:
#   "course"     the course's count_tokens (exact for the embedded server only)
#   "token_ids"  vLLM's return_token_ids: count the tokens the answer itself lists
#   "tokenize"   the server's POST /tokenize, per prompt and per generated text
#   "per_choice" (streams) the usage each prompt's chunks carry
#   "fan_out"    one request per caller: the server counts each one itself
PlainUsage = Literal["course", "token_ids", "tokenize", "fan_out"]
StreamUsage = Literal["course", "per_choice", "fan_out"]


@dataclass(frozen=True)
class ServerProfile:
    """One server's abilities, as the course depends on them."""

    name: str
    list_prompts: bool  # one choice per prompt of a list prompt
    counts_lists: bool  # a list's usage counts every prompt (llama.cpp: the first only)
    plain_usage: PlainUsage
    stream_usage: StreamUsage
    stream_options: dict[str, bool]  # what to ask for so that chunks carry usage
    tokenize: Literal["vllm", "llama"] | None  # the dialect of POST /tokenize, if any
    metrics: bool  # GET /metrics answers Prometheus text
    ignore_eos: bool  # honours ignore_eos, so max_tokens is exactly what is generated
    slots: int | None = None  # sequences decoded in parallel, where the server says

    def describe(self) -> list[str]:
        """What the course will do about this server, one line per ability."""
        return [
            "list prompts: batched into one request"
            if self.list_prompts
            else "no list prompts: the proxy fans out, one request per caller",
            f"usage per caller: {self.plain_usage} (plain), {self.stream_usage} (streams)",
            "/metrics answers: notebook 09 reads the step time where it is reported"
            if self.metrics
            else "no /metrics: 03 skips its hang-up count, 09 shows n/a for accelerator seconds",
            "ignore_eos honoured"
            if self.ignore_eos
            else "ignore_eos not honoured: answers may stop early (warn)",
            f"parallel slots: {self.slots}" if self.slots else "parallel slots: not reported",
        ]


INFERLAB = ServerProfile(
    "inferlab", True, True, "course", "course", {}, None, metrics=True, ignore_eos=True
)
VLLM = ServerProfile(
    "vllm",
    True,
    True,
    "token_ids",
    "per_choice",
    {"include_usage": True, "continuous_usage_stats": True},
    "vllm",
    metrics=True,
    ignore_eos=True,
)
LLAMA_CPP = ServerProfile(
    "llama.cpp",
    True,
    False,
    "tokenize",
    "per_choice",
    {"include_usage": True},
    "llama",
    metrics=False,
    ignore_eos=True,
)
OLLAMA = ServerProfile(
    "ollama", False, False, "fan_out", "fan_out", {}, None, metrics=False, ignore_eos=False
)
# An unknown server keeps today's behaviour: batched, usage from its chunks where they carry
# it, else the course's rule; doctor warns that those counts are estimates.
UNKNOWN = ServerProfile(
    "unknown",
    True,
    False,
    "course",
    "per_choice",
    {"include_usage": True},
    None,
    metrics=False,
    ignore_eos=False,
)

# GET /v1/models' owned_by, as each server fills it in.
_OWNERS = {"inferlab": INFERLAB, "vllm": VLLM, "llamacpp": LLAMA_CPP, "library": OLLAMA}


def server_root(base_url: str) -> str:
    """The server's root, where /metrics, /tokenize and /props live: 'http://h:1/v1' -> 'http://h:1'"""
    base = base_url.rstrip("/")
    return base[: -len("/v1")] if base.endswith("/v1") else base


async def detect(http: httpx.AsyncClient, base_url: str) -> ServerProfile:
    """Ask the server who it is, then measure what its name does not settle (/metrics, slots)."""
    root = server_root(base_url)
    try:
        models = (await http.get(base_url.rstrip("/") + "/models")).json()
        owner = str((models.get("data") or [{}])[0].get("owned_by", ""))
    except (httpx.HTTPError, ValueError, AttributeError, IndexError):
        owner = ""
    profile = _OWNERS.get(owner, UNKNOWN)
    return dataclasses.replace(
        profile,
        metrics=await _answers_metrics(http, root),
        slots=await _slots(http, root) if profile is LLAMA_CPP else None,
    )


async def _answers_metrics(http: httpx.AsyncClient, root: str) -> bool:
    try:
        response = await http.get(root + "/metrics")
    except httpx.HTTPError:
        return False
    return response.status_code == 200 and "# TYPE" in response.text


async def _slots(http: httpx.AsyncClient, root: str) -> int | None:
    try:
        props: Any = (await http.get(root + "/props")).json()
    except (httpx.HTTPError, ValueError):
        return None
    slots = props.get("total_slots") if isinstance(props, dict) else None
    return slots if isinstance(slots, int) else None


async def count_tokens_on(
    http: httpx.AsyncClient, base_url: str, profile: ServerProfile, text: str, *, special: bool
) -> int:
    """The server's own token count of `text` (`special`: with BOS, as a prompt is counted)."""
    root = server_root(base_url)
    body: dict[str, Any]
    if profile.tokenize == "vllm":
        body = {"prompt": text, "add_special_tokens": special}
    elif profile.tokenize == "llama":
        body = {"content": text, "add_special": special}
    else:
        raise ValueError(f"{profile.name} has no /tokenize")
    response = await http.post(root + "/tokenize", json=body)
    response.raise_for_status()
    return len(response.json()["tokens"])
