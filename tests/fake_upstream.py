"""A small OpenAI-ish upstream that misbehaves on purpose, for proxy tests.

Modes: "llama" answers like llama.cpp (it says `owned_by: llamacpp`; list streams open with
`data: null`, chunks of different prompts interleave, a list's usage counts the first prompt
only, each prompt's final chunk carries its own exact usage, POST /tokenize, no /metrics, a
prompt over the context is a 200 stream with `{"error": {"code": 400}}` in it); "no_lists"
refuses list prompts like a server without batching support; "fail" answers 500; "stall" never
answers until released. Its token rule is deliberately not the course's (a BOS on every prompt),
so a test can tell the server's count from the course's.
`state.fail_next = k` answers 500 to the next k requests, whatever the mode.
`state.break_stream = (after, how)` breaks the next stream after `after` chunks (the last
prompt's first tokens, so some callers of a batch have text and others none): how = 500 or 400
sends `{"error": {"code": ...}}` inside the stream, "drop" closes the connection mid-body.
"""

from __future__ import annotations

import asyncio
import json
import threading

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from inferlab import count_tokens

TOO_LONG = "too long"  # a prompt containing this is over the fake's context


def server_tokens(text: str, *, special: bool) -> int:
    """The fake's own tokenizer: the course's rule plus a BOS, as llama's vocabulary adds."""
    return count_tokens(text) + (1 if special else 0)


def make_fake_upstream() -> FastAPI:
    app = FastAPI()
    app.state.mode = "llama"
    app.state.requests = []
    app.state.fail_next = 0
    app.state.break_stream = None
    app.state.release = None  # an asyncio.Event, created on the server's loop when stalling
    app.state.loop = None  # that loop, so a test can release the stall from its own thread
    app.state.arrived = threading.Event()  # set at each request, for tests to wait on

    def text_for(prompt: str, max_tokens: int, sample: int = 0) -> list[str]:
        """One token per step, as a real server streams: " two_words_0", " b_s1_2", ..."""
        name = prompt.replace(" ", "_") + (f"_s{sample}" if sample else "")
        return [f" {name}_{i}" for i in range(max_tokens)]

    @app.post("/v1/completions")
    async def completions(request: Request):
        body = await request.json()
        app.state.requests.append(body)
        app.state.arrived.set()
        prompts = body["prompt"] if isinstance(body["prompt"], list) else [body["prompt"]]
        mode = app.state.mode
        if app.state.fail_next > 0:
            app.state.fail_next -= 1
            return JSONResponse({"error": {"message": "a passing hiccup"}}, 503)
        if mode == "fail":
            return JSONResponse({"error": {"message": "GPU fell over"}}, 500)
        if mode == "stall":
            app.state.loop = asyncio.get_running_loop()
            app.state.release = app.state.release or asyncio.Event()
            await app.state.release.wait()
        if mode == "no_lists" and isinstance(body["prompt"], list):
            return JSONResponse({"error": {"message": "prompt must be a string"}}, 400)
        if any("poison" in prompt for prompt in prompts):
            return JSONResponse({"error": {"message": "poisoned prompt", "code": "bad"}}, 400)
        max_tokens, n = body.get("max_tokens", 16), body.get("n", 1)
        # (choice index, tokens) in OpenAI's numbering: prompt_number * n + sample
        outputs = [
            (i * n + j, text_for(p, max_tokens, j)) for i, p in enumerate(prompts) for j in range(n)
        ]

        def usage_of(prompt: str) -> dict[str, int]:
            prompt_tokens = server_tokens(prompt, special=True)
            total = prompt_tokens + max_tokens
            return {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": max_tokens,
                "total_tokens": total,
            }

        first_usage = usage_of(prompts[0])  # llama.cpp's usage of a list: its first prompt only
        if any(TOO_LONG in prompt for prompt in prompts) and not body.get("stream"):
            return JSONResponse({"error": {"code": 400, "message": "exceeds the context"}}, 400)
        if not body.get("stream"):
            choices = [
                {"index": index, "text": "".join(tokens), "finish_reason": "length"}
                for index, tokens in outputs
            ]
            return {
                "id": "x",
                "object": "text_completion",
                "model": "fake",
                "choices": choices,
                "usage": first_usage,
            }

        async def events():
            yield "data: null\n\n"
            sent, broken = 0, app.state.break_stream
            app.state.break_stream = None  # only this stream: retries of its callers succeed
            if any(TOO_LONG in prompt for prompt in prompts):  # after the 200, as llama.cpp does
                error = {
                    "code": 400,
                    "message": "exceeds the context",
                    "type": "invalid_request_error",
                }
                yield f"data: {json.dumps({'error': error})}\n\n"
                return
            for step in range(max_tokens):
                for index, tokens in reversed(outputs):  # interleaved, last prompt first
                    if broken is not None and sent == broken[0]:
                        if broken[1] == "drop":
                            raise ConnectionAbortedError("the fake drops the stream")
                        error = {"code": broken[1], "message": f"failed mid-stream ({broken[1]})"}
                        yield f"data: {json.dumps({'error': error})}\n\n"
                        return
                    sent += 1
                    finish = "length" if step == max_tokens - 1 else None
                    chunk = {
                        "id": "x",
                        "object": "text_completion",
                        "model": "fake",
                        "choices": [
                            {"index": index, "text": tokens[step], "finish_reason": finish}
                        ],
                    }
                    if finish:  # each prompt's final chunk: that prompt's exact usage
                        chunk["usage"] = usage_of(prompts[index // n])
                    yield f"data: {json.dumps(chunk)}\n\n"
            yield f"data: {json.dumps({'choices': [], 'usage': first_usage})}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    @app.get("/v1/models")
    async def models():
        return {
            "object": "list",
            "data": [{"id": "fake", "object": "model", "owned_by": "llamacpp"}],
        }

    @app.post("/tokenize")
    async def tokenize(request: Request):
        body = await request.json()
        app.state.tokenized = getattr(app.state, "tokenized", 0) + 1
        count = server_tokens(body["content"], special=bool(body.get("add_special")))
        return {"tokens": list(range(count))}

    @app.get("/props")
    async def props():
        return {"total_slots": 4}

    return app


def release_stall(app: FastAPI) -> None:
    """Let stalled requests finish (from any thread), so the server can stop promptly."""
    if app.state.release is not None:
        app.state.loop.call_soon_threadsafe(app.state.release.set)
