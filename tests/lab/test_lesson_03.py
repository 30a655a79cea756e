"""Lesson 03's exercises (labs/exercises_03.py): reading a stream, a stream that failed after its
200, and many requests on one WebSocket."""

from __future__ import annotations

import asyncio

import pytest

from inferlab import get_profile
from tests.lab.grading import broke, expect, explained

pytestmark = pytest.mark.lesson("03")


@pytest.fixture
def ex(lab):
    return lab("exercises_03")


def test_texts_from_sse(ex):
    """texts_from_sse() keeps the text of each data chunk, up to [DONE], and nothing else."""
    lines = [
        "data: null",
        ": ping",
        'data: {"choices": [{"index": 0, "text": " Hello"}]}',
        "",
        'data: {"choices": [{"index": 0, "text": " world"}]}',
        'data: {"choices": [], "usage": {"completion_tokens": 2}}',
        "data: [DONE]",
        'data: {"choices": [{"index": 0, "text": " after the end"}]}',
    ]
    expect(
        ex.texts_from_sse(lines),
        [" Hello", " world"],
        given="a stream with a null, a comment, a blank line, a usage chunk and [DONE]",
        look="which lines carry text, and where the stream ends",
    )


def test_longest_gap(ex):
    """longest_gap() finds the token that came after the longest wait, and that wait."""
    expect(
        ex.longest_gap([0.1, 0.2, 0.5, 0.6]),
        (2, 0.3),
        given="tokens at 0.1, 0.2, 0.5 and 0.6 s",
        look="the index is that of the token that arrived after the gap",
    )


def test_predicted_stall(ex):
    """predicted_stall_ms() prices the one step that prefills every newcomer together."""
    profile = get_profile("h100-llama3-8b")
    expected = profile.step_overhead_ms + profile.prefill_ms([203] * 16) + profile.decode_ms([20])
    expect(
        ex.predicted_stall_ms(profile, 16, 203, 20),
        expected,
        rel=1e-6,
        given="16 newcomers of 203 tokens while a stream is at a context of 20 (ms)",
        look="the newcomers' prompts are prefilled together, in one call to prefill_ms() (a "
        "batch shares the fixed cost), and the stream's own decode happens in the same step",
    )


# --- issue 17: a stream that failed after its 200 (stream_outcome) -----------------------------

HELLO = 'data: {"choices": [{"index": 0, "text": " Hello"}]}'
WORLD = 'data: {"choices": [{"index": 0, "text": " world"}]}'
BROKEN = 'data: {"error": {"message": "the accelerator failed mid-answer", "type": "server_error"}}'


def test_stream_outcome(ex):
    """stream_outcome() tells a finished stream from one that failed or was cut after its 200."""
    cases = [
        ([HELLO, "", ": ping", WORLD, "data: [DONE]"], (" Hello world", None), "a whole stream"),
        (
            [HELLO, "", BROKEN, "", "data: [DONE]"],
            (" Hello", "the accelerator failed mid-answer"),
            "a chunk, an error event, then [DONE] (what the course's server sends)",
        ),
        ([HELLO, "", WORLD, ""], (" Hello world", ex.CUT), "two chunks, then nothing"),
        (["data: null", HELLO, "data: [DONE]"], (" Hello", None), "llama.cpp's data: null"),
    ]
    for lines, expected, given in cases:
        expect(
            ex.stream_outcome(lines),
            expected,
            given=given,
            look="the status was 200 in every case: only the stream can say it failed. An "
            "error event can come before [DONE], and a stream that just stops never sends "
            "[DONE] at all",
        )


# --- issue 17: many requests on one WebSocket, one cancelled (several_on_one_socket) ----------


class FakeSocket:
    """The model server's side of a WebSocket, on a fixed schedule: it answers the requests in
    turn, one frame each (so frames of different requests interleave), a request named in
    `refuse` gets an error frame at once, and a cancelled request still delivers the two chunks
    already on their way before its `cancelled` frame."""

    IN_FLIGHT = 2

    def __init__(self, chunks: dict[str, int], refuse: tuple[str, ...] = ()):
        self.chunks, self.refuse = chunks, refuse
        self.requests: list[str] = []  # ids in the order their frames came
        self.cancels: list[str] = []
        self.bad_frames: list[object] = []
        self.read_before_sending_all = False
        self.sent_so_far: dict[str, int] = {}
        self.in_flight: dict[str, int] = {}  # cancelled: chunks still to deliver
        self.ended: set[str] = set()
        self._turn = 0

    async def send(self, frame: dict) -> None:
        kind = frame.get("type") if isinstance(frame, dict) else None
        if kind == "completions" and isinstance(frame.get("body"), dict):
            self.requests.append(frame["id"])
            self.sent_so_far[frame["id"]] = 0
        elif kind == "cancel":
            self.cancels.append(frame.get("id"))
            self.in_flight.setdefault(frame.get("id"), self.IN_FLIGHT)
        else:
            self.bad_frames.append(frame)

    def unended(self) -> list[str]:
        return [request for request in self.requests if request not in self.ended]

    async def receive(self) -> dict:
        if len(self.requests) < len(self.chunks):
            self.read_before_sending_all = True
        live = self.unended()
        if not live:
            raise RuntimeError(
                "receive() was called after every request had ended: nothing more will come, "
                "and on a real socket this call would wait forever"
            )
        request = live[self._turn % len(live)]
        self._turn += 1
        sent = self.sent_so_far[request]
        if request in self.refuse:
            self.ended.add(request)
            return {"id": request, "type": "error", "status": 400, "error": {"message": "no"}}
        if self.in_flight.get(request, 1) <= 0:
            self.ended.add(request)
            return {"id": request, "type": "cancelled", "chunks": sent}
        if sent == self.chunks.get(request, 0):
            self.ended.add(request)
            return {"id": request, "type": "done"}
        if request in self.in_flight:
            self.in_flight[request] -= 1
        self.sent_so_far[request] = sent + 1
        text = f" {request}-{sent}"
        return {"id": request, "type": "chunk", "chunk": {"choices": [{"index": 0, "text": text}]}}


def words(request: str, count: int) -> str:
    return "".join(f" {request}-{i}" for i in range(count))


def run_socket(ex, socket: FakeSocket, prompts: int, cancel: int, after: int):
    return asyncio.run(
        ex.several_on_one_socket(
            socket.send,
            socket.receive,
            [f"Prompt {i}" for i in range(prompts)],
            max_tokens=16,
            cancel=cancel,
            cancel_after_chunks=after,
        )
    )


def test_each_request_on_one_socket_gets_its_own_answer(ex):
    """several_on_one_socket() sends every request first, and files each frame under its id."""
    socket = FakeSocket({"r0": 3, "r1": 5, "r2": 0, "r3": 2}, refuse=("r2",))
    got = run_socket(ex, socket, prompts=4, cancel=0, after=99)
    expect(
        socket.requests,
        ["r0", "r1", "r2", "r3"],
        given="the request frames the server received, by id",
        look='one {"type": "completions", "id": "r0", "body": {...}} frame per prompt, ids in '
        "order",
    )
    if socket.read_before_sending_all:
        broke(
            test_each_request_on_one_socket_gets_its_own_answer.__doc__,
            f"you read a frame when only {len(socket.requests)} of 4 requests had been sent.",
            "send every request first: many requests in flight on one connection is the point",
        )
    expect(
        got,
        {
            "r0": (words("r0", 3), "done"),
            "r1": (words("r1", 5), "done"),
            "r2": ("", "error"),
            "r3": (words("r3", 2), "done"),
        },
        given="4 requests whose frames interleave, r2 refused with an error frame",
        look="frames of different requests interleave: file each chunk under its frame's "
        "`id`, and keep reading until every request has ended (done, cancelled or error)",
    )


def test_a_cancelled_request_ends_when_the_server_says_so(ex):
    """several_on_one_socket() cancels once, and keeps what crossed the cancel on the wire."""
    socket = FakeSocket({"r0": 3, "r1": 10, "r2": 3})
    got = run_socket(ex, socket, prompts=3, cancel=1, after=3)
    expect(
        socket.cancels,
        ["r1"],
        given="the cancel frames sent, cancelling r1 after 3 chunks",
        look="send one cancel frame, when the request's chunk count reaches the number: more "
        "chunks can still come after it",
    )
    left = socket.unended()
    if left:
        broke(
            test_a_cancelled_request_ends_when_the_server_says_so.__doc__,
            f"your function returned while {left} had not ended: their frames are still "
            "unread on the socket, and the next reader would get them.",
            "a cancelled request ends with the server's `cancelled` frame, not when you send "
            "the cancel: chunks sent before it reached the server are still on their way",
        )
    expect(
        got,
        {
            "r0": (words("r0", 3), "done"),
            "r1": (words("r1", 5), "cancelled"),
            "r2": (words("r2", 3), "done"),
        },
        given="r1 cancelled after 3 chunks, 2 more already on their way",
        look="keep the chunks that arrive after your cancel: they are text the client got",
    )


# --- issue 18: a checked free-text answer (h18b) -----------------------------------------------
def test_why_the_stream_stuttered(lab):
    """why_the_stream_stuttered() makes the right choice, and its reason names why."""
    module = lab("exercises_03")
    explained(
        module.why_the_stream_stuttered(),
        choices=module.STUTTER_CAUSES,
        expected="prefilling the newcomers",
        ideas={
            "that the running streams wait through that step": (
                "wait",
                "every running",
                "all running",
                "each running",
                "everyone",
                "the others",
                "running sequence",
                "running stream",
                "same step",
                "one step",
                "blocked",
                "stall",
            ),
        },
        given="why did the stream stutter?",
    )
