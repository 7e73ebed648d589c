"""The HTTP layer of a real `gradient-flow-lab` process (app/connections.py): the limit on a
request's headers and malformed requests answered with a 4xx, whatever the parser."""

from __future__ import annotations

import json
import socket
import time

import pytest

from gradient_flow_lab.app import connections
from tests.helpers import running_server

LIMIT = connections.MAX_HEADER_BYTES


@pytest.fixture(scope="module")
def port():
    with running_server() as server:
        yield int(server.url.rsplit(":", 1)[1])


def exchange(port: int, *pieces: bytes) -> bytes:
    """Sends ``pieces`` (stopping early if the server closes) and reads until the server closes
    the connection; returns what it answered."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        for piece in pieces:
            try:
                sock.sendall(piece)
            except OSError:  # closed (or reset) by the server: read what it said
                break
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
        return answer


def status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def request(headers: bytes = b"", body: bytes = b"", method: bytes = b"GET",
            path: bytes = b"/healthz") -> bytes:
    return (method + b" " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + headers
            + b"\r\n" + body)


def test_headers_within_the_limit_are_served(port):
    answer = exchange(port, request(b"X-Pad: " + b"a" * (LIMIT - 1024) + b"\r\n"))
    assert status(answer) == 200


def test_headers_over_the_limit_in_one_piece_get_400_and_the_connection_closes(port):
    answer = exchange(port, request(b"X-Pad: " + b"a" * (LIMIT + 1024) + b"\r\n"))
    assert status(answer) == 400
    assert b"Invalid HTTP request received." in answer


def test_many_header_lines_over_the_limit_get_400(port):
    lines = b"".join(b"X-Line-%d: %s\r\n" % (i, b"b" * 100) for i in range(LIMIT // 100))
    assert status(exchange(port, request(lines))) == 400


def test_an_endless_header_is_cut_off_near_the_limit(port):
    """A header value that never ends: refused once the bytes received pass the limit (about
    one read over it), not kept growing in memory until the header timeout."""
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Endless: "
    pieces = [head] + [b"c" * 4096] * (4 * LIMIT // 4096)
    answer = exchange(port, *pieces)
    assert status(answer) == 400


def test_a_long_query_string_gets_a_4xx_not_a_500(port):
    answer = exchange(port, request(path=b"/api/simulate?seed=1&x=" + b"y" * (2 * LIMIT)))
    assert 400 <= status(answer) < 500


def test_a_body_arriving_with_its_headers_is_not_counted_as_headers(port):
    """A POST whose headers and 60 KB body arrive together: the body is not part of the limit."""
    body = b'{"seed": 1' + b" " * 60_000 + b"}"  # valid JSON, padded with white space
    answer = exchange(port, request(b"Content-Type: application/json\r\nContent-Length: %d\r\n"
                                    % len(body), body, b"POST", b"/api/simulate"))
    assert status(answer) == 200  # read whole and parsed


@pytest.mark.parametrize("length", [b"12abc", b"-1", b"1 2", b"0x10"])
def test_a_malformed_content_length_gets_400_not_500(port, length):
    answer = exchange(port, request(b"Content-Type: application/json\r\nContent-Length: "
                                    + length + b"\r\n", b"{}", b"POST", b"/api/simulate"))
    assert status(answer) == 400


def test_two_different_content_lengths_get_400(port):
    answer = exchange(port, request(b"Content-Length: 2\r\nContent-Length: 3\r\n", b"{}",
                                    b"POST", b"/api/simulate"))
    assert status(answer) == 400


def test_kept_alive_requests_with_bodies_in_one_write_are_all_answered(port):
    """Pipelined POSTs with bodies in one write: each request's headers are measured on their
    own, never with the body or the request before them."""
    body = json.dumps({"seed": 1}).encode()
    one = (b"POST /api/simulate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    last = one.replace(b"Host: x\r\n", b"Host: x\r\nConnection: close\r\n")
    answer = exchange(port, one * 3 + last)
    assert answer.count(b"HTTP/1.1 200 OK") == 4


def _head_and_body(answer: bytes) -> tuple[dict[bytes, bytes], bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    pairs = (line.split(b": ", 1) for line in head.split(b"\r\n")[1:])
    return {name.lower(): value for name, value in pairs}, body


def test_healthz_answered_at_the_connection_is_the_apps_answer(port, client):
    app_answer = client.get("/healthz")
    for method in (b"GET", b"HEAD"):
        answer = exchange(port, request(method=method))
        assert status(answer) == 200
        headers, body = _head_and_body(answer)
        assert body == (app_answer.content if method == b"GET" else b"")
        for name in ("content-type", "content-length", "content-security-policy",
                     "x-content-type-options", "referrer-policy", "x-frame-options"):
            assert headers[name.encode()].decode() == app_answer.headers[name], name
        assert headers[b"connection"] == b"close"


def test_healthz_between_kept_alive_requests_keeps_their_order(port):
    simulate = b"POST /api/simulate HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
    health = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    last = request(path=b"/healthz")
    answer = exchange(port, simulate + health + simulate + health + last)
    assert answer.count(b"HTTP/1.1 200 OK\r\n") == 5, answer[:300]
    # the answers in the order asked: a document, {"status":"ok"}, a document, ok, ok
    order = [answer.find(b'"config"'), answer.find(b'{"status":"ok"}')]
    assert order[0] < order[1]
    assert answer.endswith(b'{"status":"ok"}')


@pytest.mark.slow
def test_a_body_trickled_too_slowly_is_cut_off(port):
    # a 1,000-byte body: 10 s plus 1000 / 65536 s to arrive; a byte a second never gets there
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"POST /api/simulate HTTP/1.1\r\nHost: x\r\nContent-Type: "
                     b"application/json\r\nContent-Length: 1000\r\n\r\n{")
        closed = False
        while time.monotonic() - started < 25 and not closed:
            try:
                sock.sendall(b" ")
                time.sleep(1)
                sock.setblocking(False)
                try:
                    closed = sock.recv(65536) == b""
                except BlockingIOError:
                    pass
                finally:
                    sock.setblocking(True)
            except OSError:
                closed = True
    elapsed = time.monotonic() - started
    assert closed, "the trickled body was never cut off"
    assert connections.HEADER_TIMEOUT <= elapsed < connections.HEADER_TIMEOUT + 5, elapsed
