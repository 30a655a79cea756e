"""HTTP limits, tried from a raw socket against all three servers: too many headers, one huge
header, a head that dribbles in (slowloris), too many connections. Each refusal is OpenAI's
error shape (where a body can be sent) and a closed connection; a request within the limits is
served as before."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from inferlab import ServerThread, create_app
from inferlab.jobs import create_jobs_app
from inferlab.proxy.app import create_proxy_app
from inferlab.serve.settings import ServerSettings

NOWHERE = "http://127.0.0.1:9/v1"  # the limits act before any request reaches an upstream
HEAD = b"GET /health HTTP/1.1\r\nhost: inferlab.test\r\n"
ANSWER_WITHIN_S = 30.0  # a bound on a hang, not a speed claim


def _app(kind: str, tmp_path, **limits):
    if kind == "model server":
        return create_app(time_scale=0.01, **limits)
    if kind == "proxy":
        return create_proxy_app(NOWHERE, **limits)
    return create_jobs_app(NOWHERE, db=str(tmp_path / "jobs.db"), workers=0, **limits)


@pytest.fixture(params=["model server", "proxy", "job API"])
def server(request, tmp_path) -> Iterator[ServerThread]:
    """Each server with a short header timeout, so the slow cases are quick to test."""
    app = _app(request.param, tmp_path, header_timeout_s=0.5, max_connections=16)
    with ServerThread(app) as running:
        yield running


def _connect(server: ServerThread) -> socket.socket:
    connection = socket.create_connection((server.host, server.port))
    connection.settimeout(ANSWER_WITHIN_S)
    return connection


def _read_all(connection: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection ("" if it said nothing)."""
    received = b""
    while True:
        try:
            chunk = connection.recv(65536)
        except ConnectionResetError:
            return received
        if not chunk:
            return received
        received += chunk


def _status_and_error(answer: bytes) -> tuple[int, dict]:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"connection: close" in head.lower()
    return int(head.split()[1]), json.loads(body)["error"]


def _assert_openai_error(answer: bytes, status: int) -> str:
    got, error = _status_and_error(answer)
    assert got == status, answer[:300]
    assert set(error) == {"message", "type", "param", "code"}
    return error["message"]


def _answer_to_a_dribble(
    server: ServerThread, at_once: bytes, slowly: bytes, gap_s: float
) -> bytes:
    """Send `at_once`, then `slowly` a byte every `gap_s` from a thread of its own; return all
    the server said until it closed the connection, and stop the sender."""
    connection = _connect(server)
    closed = threading.Event()

    def dribble() -> None:
        try:
            connection.sendall(at_once)
            for byte in slowly:
                if closed.wait(gap_s):
                    return
                connection.sendall(bytes([byte]))
        except OSError:
            pass  # the server closed: what the test waits for

    dribbler = threading.Thread(target=dribble, daemon=True)
    dribbler.start()
    with connection:
        answer = _read_all(connection)
    closed.set()
    dribbler.join(ANSWER_WITHIN_S)
    return answer


def test_two_hundred_headers_are_a_431(server):
    with _connect(server) as connection:
        headers = b"".join(b"x-header-%d: v\r\n" % i for i in range(200))
        connection.sendall(HEAD + headers + b"\r\n")
        assert "100 request headers" in _assert_openai_error(_read_all(connection), 431)


def test_one_100_kb_header_is_a_431(server):
    with _connect(server) as connection:
        connection.sendall(HEAD + b"x-big: " + b"a" * 100_000 + b"\r\n\r\n")
        assert "16384 bytes" in _assert_openai_error(_read_all(connection), 431)


def test_a_client_that_keeps_sending_its_header_still_reads_the_431(server):
    """The server stops reading at 16 KB; it half-closes and drains rather than close with
    bytes unread, since that would reset the connection and destroy the answer."""
    connection = _connect(server)

    def send_forever() -> None:
        try:
            connection.sendall(HEAD + b"x-big: ")
            for _ in range(1_000):  # 64 MB at most
                connection.sendall(b"a" * 65536)
        except OSError:
            pass  # the server closed: what we wanted

    sender = threading.Thread(target=send_forever, daemon=True)
    sender.start()
    with connection:
        _assert_openai_error(_read_all(connection), 431)
    sender.join(ANSWER_WITHIN_S)


def test_a_head_that_dribbles_in_is_a_408(server):
    """Slowloris: a byte every 50 ms would hold a connection for ever, since each byte resets
    uvicorn's keep-alive timer. The head timeout counts from the first byte, whatever follows."""
    answer = _answer_to_a_dribble(server, b"", HEAD + b"x-slow: " + b"z" * 10_000, gap_s=0.05)
    message = _assert_openai_error(answer, 408)
    assert "0.5 s" in message


def test_requests_within_the_limits_are_served_and_kept_alive(server):
    """Fifty headers, 8 KB of them, twice on one connection, with an idle pause longer than
    the head timeout between them: the timeout is for heads, not for idle keep-alive."""
    headers = b"".join(b"x-header-%d: %s\r\n" % (i, b"v" * 150) for i in range(50))
    with _connect(server) as connection:
        for _ in range(2):
            connection.sendall(HEAD + headers + b"\r\n")
            answer = b""
            while b'{"status":"ok"}' not in answer:
                chunk = connection.recv(65536)
                assert chunk, f"closed after {answer!r}"
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 200")
            threading.Event().wait(0.8)  # idle, past the 0.5 s head timeout: must stay open


def test_connections_past_the_cap_are_closed_and_served_again_once_one_closes(tmp_path):
    def request(connection: socket.socket) -> bytes:
        connection.sendall(HEAD + b"\r\n")
        return connection.recv(65536)

    with ServerThread(create_app(time_scale=0.01, max_connections=2)) as server:
        held = [_connect(server), _connect(server)]
        assert all(request(c).startswith(b"HTTP/1.1 200") for c in held)  # both accepted
        with _connect(server) as third:
            try:
                third.sendall(HEAD + b"\r\n")
            except OSError:
                pass
            assert _read_all(third) == b""  # closed unread: no descriptor held for it
        held.pop().close()
        deadline = time.monotonic() + ANSWER_WITHIN_S
        while True:  # the server notices the close a moment later; retry until it has
            with _connect(server) as again:
                if request(again).startswith(b"HTTP/1.1 200"):
                    break
            assert time.monotonic() < deadline, "never served again after a connection closed"
        for connection in held:
            connection.close()


def test_limits_are_settings_with_flags_and_bounds():
    settings = ServerSettings(max_header_bytes=1024, header_timeout_s=2.5)
    assert settings.http_limits.max_header_bytes == 1024
    assert settings.http_limits.header_timeout_s == 2.5
    with pytest.raises(ValueError, match="max_connections"):
        ServerSettings(max_connections=0)
    with pytest.raises(ValueError, match="header_timeout_s"):
        ServerSettings(header_timeout_s=0)
    with pytest.raises(ValueError, match="body_timeout_s"):
        ServerSettings(body_timeout_s=-1)


def test_a_body_that_dribbles_in_is_a_408_and_the_next_request_is_served(tmp_path):
    """A head in full, then a body a byte at a time: without a body timeout the app waits for
    the rest for ever, holding the connection. The server answers 408 and closes; then it
    serves a new connection as before."""
    with ServerThread(create_app(time_scale=0.01, body_timeout_s=0.5)) as server:
        body = json.dumps({"prompt": "hi", "max_tokens": 1}).encode()
        head = (
            b"POST /v1/completions HTTP/1.1\r\nhost: inferlab.test\r\n"
            b"content-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(body)
        )
        # 0.2 s a byte: the body needs ~4 s, well past the 0.5 s allowed
        message = _assert_openai_error(_answer_to_a_dribble(server, head, body, gap_s=0.2), 408)
        assert "body did not arrive within 0.5 s" in message
        with _connect(server) as again:  # a whole request, at once, is served
            again.sendall(head + body)
            assert again.recv(65536).startswith(b"HTTP/1.1 200")


def _completion(body: dict) -> bytes:
    data = json.dumps(body).encode()
    head = (
        b"POST /v1/completions HTTP/1.1\r\nhost: inferlab.test\r\n"
        b"content-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(data)
    )
    return head + data


def _read_answers(connection: socket.socket, count: int) -> bytes:
    """What the server sends until `count` answers have begun and the last has ended, or it
    closes the connection."""
    received = b""
    while True:
        try:
            chunk = connection.recv(65536)
        except ConnectionResetError:
            return received
        if not chunk:
            return received
        received += chunk
        if received.count(b"HTTP/1.1 ") >= count and received.endswith((b"}", b"0\r\n\r\n")):
            return received


def test_a_keep_alive_body_in_the_same_read_as_the_next_head_is_not_counted_as_head():
    """Request 1 with a 20 kB body and the first line of request 2 arrive in one read: only
    request 2's own bytes are its head. (Counted as head, the whole read was over 16 kB: a 431
    for request 2, written while request 1 was still being answered, whose answer then failed.)
    """
    with ServerThread(create_app(time_scale=0.01)) as server, _connect(server) as connection:
        first = _completion({"prompt": "word " * 4000, "max_tokens": 1})
        connection.sendall(first + b"GET /health HTTP/1.1\r\n")
        time.sleep(0.2)  # the rest of request 2's head comes later
        connection.sendall(b"host: inferlab.test\r\n\r\n")
        answers = _read_answers(connection, 2)
        assert re.findall(rb"HTTP/1.1 (\d+)", answers) == [b"200", b"200"], answers[-300:]


def test_a_late_second_head_is_refused_after_the_first_answer_not_inside_it():
    """A stream is being answered when the next request's head starts and stalls past the
    header timeout: the stream ends whole, with [DONE], and only then comes the 408."""
    app = create_app(time_scale=1.0, header_timeout_s=0.3)
    with ServerThread(app) as server, _connect(server) as connection:
        stream = {"prompt": "hi", "max_tokens": 100, "stream": True, "ignore_eos": True}
        connection.sendall(_completion(stream) + b"GET /health HTTP/1.1\r\n")
        answer = _read_all(connection)
        first, _, second = answer.partition(b"0\r\n\r\nHTTP/1.1 ")
        assert first.startswith(b"HTTP/1.1 200") and b"data: [DONE]" in first, answer[-300:]
        assert "did not arrive within 0.3 s" in _assert_openai_error(b"HTTP/1.1 " + second, 408)


def test_a_malformed_chunk_of_a_body_is_a_400_at_once():
    """The refused request is the one whose body is arriving: it is answered now, not after
    itself (its app waits for the rest of that body)."""
    with ServerThread(create_app(time_scale=0.01)) as server, _connect(server) as connection:
        connection.sendall(
            b"POST /v1/completions HTTP/1.1\r\nhost: inferlab.test\r\n"
            b"content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
            b'5\r\n{"pro\r\nZZZ\r\n'
        )
        assert "Invalid HTTP request" in _assert_openai_error(_read_all(connection), 400)


def test_a_connection_that_never_sends_a_byte_is_closed_after_the_idle_timeout(tmp_path):
    """Silent sockets must not stay for ever: a client could hold every one of max_connections.
    A new connection gets a kept-alive one's idle timeout; one that speaks in time is served."""
    with ServerThread(create_app(time_scale=0.01, idle_timeout_s=0.5)) as server:
        with _connect(server) as silent:
            assert _read_all(silent) == b""  # closed by the server, nothing said
        with _connect(server) as talking:
            talking.sendall(HEAD + b"\r\n")
            assert talking.recv(65536).startswith(b"HTTP/1.1 200")
