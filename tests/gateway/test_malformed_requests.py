"""Hostile request bodies (issue 11, classes 3, 4 and 6): every malformed request is a 4xx envelope,
never a 500, and nothing reads a body before authentication has passed.

The chunked-encoding cases go through gunicorn over a raw socket: its chunk parser is what fails, and no
HTTP client library sends a broken chunk size."""
from __future__ import annotations

import base64
import json
import socket
from collections.abc import Iterable
from typing import Any

import pytest

from devsupport.processes import wait_until
from gateway import create_app
from gateway.http.contract import contract_of
from tests.gateway.test_errors import assert_envelope
from tests.support.api import b64

JSON = {"Content-Type": "application/json"}


def post_raw(api, body: str) -> Any:
    return api.request("POST", "/submit", data=body.encode("utf-8", "surrogatepass"), headers=JSON)


def test_json_nested_10000_deep_is_a_400_naming_the_limit(api, settings):
    body = assert_envelope(post_raw(api, "[" * 10_000 + "]" * 10_000), 400)
    assert str(settings.config["limits"]["max_json_depth"]) in body["message"]


def test_json_nested_just_within_the_limit_parses(api, settings):
    depth = settings.config["limits"]["max_json_depth"]
    deep_upload = {"type": "calc_hash", "upload": {"content": "aGk=", "x": _nested(depth - 2)}}
    errors = assert_envelope(post_raw(api, json.dumps(deep_upload)), 400)["errors"]
    assert errors == {"upload.x": ["Unknown field."]}  # parsed: the payload schema had its say


def test_deep_json_without_a_credential_is_a_401_with_its_log_line(api_as, gateway_log):
    response = post_raw(api_as(None), "[" * 10_000 + "]" * 10_000)
    assert_envelope(response, 401)
    request_id = response.headers["X-Request-ID"]
    lines = wait_until(lambda: [line for line in gateway_log.read_text().splitlines() if request_id in line],
                       10, "the request's log line")
    assert len(lines) == 1 and "POST /submit 401" in lines[0]


@pytest.mark.parametrize("body", [
    '{"type": "calc_hash", "ExternalId": "\\ud800", "upload": {"content": "aGk="}}',
    '{"type": "calc_hash", "upload": {"content": "aGk=", "algorithms": ["md5\\udc00"]}}',
    '{"type": "calc_hash", "upload": {"content": "aGk=", "\\udfff": 1}}',
    '{"type": "calc_hash", "ExternalId": "\ud800", "upload": {"content": "aGk="}}',  # sent as bytes ED A0 80
], ids=["ExternalId", "nested-value", "key", "utf8-encoded"])
def test_lone_surrogate_anywhere_in_a_string_is_a_400(api, body):
    assert "surrogate" in assert_envelope(post_raw(api, body), 400)["message"]


def test_a_surrogate_pair_is_a_character_and_passes(api):
    response = post_raw(api, '{"type": "calc_hash", "ExternalId": "pair-\\ud83d\\ude00", "upload": {"content": "aGk="}}')
    assert response.status_code in (200, 202), response.text


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_not_json(api, constant):
    body = '{"type": "water_marks", "upload": {"content": "aGk=", "text": "t", "opacity": VALUE}}'.replace("VALUE", constant)
    assert constant.lstrip("-") in assert_envelope(post_raw(api, body), 400)["message"]


@pytest.mark.parametrize("spelling", ["1e3", "1000.0", "true"])
def test_an_integer_field_takes_only_an_integer(api, spelling):
    body = '{"type": "resize_image", "upload": {"content": "aGk=", "width": VALUE}}'.replace("VALUE", spelling)
    assert assert_envelope(post_raw(api, body), 400)["errors"] == {"upload.width": ["Must be of type integer."]}


def test_a_number_field_still_takes_a_whole_number(api):
    body = '{"type": "water_marks", "upload": {"content": "aGk=", "text": "t", "opacity": 1}}'
    assert post_raw(api, body).status_code == 202


def http(url: str, head: bytes, body: Iterable[bytes]) -> tuple[int, dict[str, Any]]:
    """One request over a raw socket; the status and JSON body of the answer. The body is sent in full
    before the answer is read, as a client that does not wait would."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head)
        for piece in body:
            sock.sendall(piece)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), json.loads(rest.partition(b"\r\n\r\n")[2])


def chunked_head(vault) -> bytes:
    credential = base64.b64encode(":".join(vault.basic("admin")).encode())
    return (b"POST /submit HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
            b"Authorization: Basic " + credential + b"\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")


@pytest.mark.parametrize("chunks", [b"zz\r\n{}\r\n0\r\n\r\n", b"2\r\n{}XX0\r\n\r\n", b"-1\r\n{}\r\n0\r\n\r\n"],
                         ids=["bad-size", "no-terminator", "negative-size"])
def test_malformed_chunked_body_is_a_400(gateway_url, vault, worker, chunks):
    status, body = http(gateway_url, chunked_head(vault), [chunks])
    assert status == 400 and body["code"] == 400


def test_chunked_body_over_the_limit_is_a_413(gateway_url, vault, worker, settings):
    limit = settings.config["limits"]["max_body_bytes"]
    piece = b"A" * (1 << 20)
    pieces = [piece] * (limit // len(piece)) + [b"A" * 1000]  # a little over the limit

    def chunks():
        for part in pieces:
            yield b"%x\r\n" % len(part) + part + b"\r\n"
        yield b"0\r\n\r\n"
    status, body = http(gateway_url, chunked_head(vault), chunks())
    assert (status, body) == (413, {"code": 413, "message": "Request Entity Too Large"})


def test_chunked_body_within_the_limit_is_read(gateway_url, vault, worker):
    payload = json.dumps({"type": "calc_hash", "upload": {"content": b64(b"chunked")}}).encode()
    status, body = http(gateway_url, chunked_head(vault), [b"%x\r\n" % len(payload) + payload + b"\r\n0\r\n\r\n"])
    assert status == 202 and body["type"] == "calc_hash"


class CountingInput:
    """wsgi.input that counts the bytes anything reads from it."""

    def __init__(self, environ: dict, counter: list[int]) -> None:
        self.stream, self.counter = environ["wsgi.input"], counter

    def read(self, *args: Any) -> bytes:
        data = self.stream.read(*args)
        self.counter[0] += len(data)
        return data

    def readline(self, *args: Any) -> bytes:
        data = self.stream.readline(*args)
        self.counter[0] += len(data)
        return data


@pytest.fixture
def counted_app(settings):
    """The gateway in process, with the bytes read from each request body counted."""
    app = create_app(settings)
    counter, inner = [0], app.wsgi_app

    def counting(environ, start_response):
        environ["wsgi.input"] = CountingInput(environ, counter)
        return inner(environ, start_response)
    app.wsgi_app = counting
    return app, counter


def test_no_body_is_read_before_authentication_on_any_route(counted_app, vault):
    """16 MB to every route and method without a credential: each answers without reading one byte of
    it (SPEC §8: nothing unauthenticated is expensive). Before the metrics hook stopped parsing /submit
    bodies, this read and parsed the whole 16 MB first (1.4 s of CPU per request)."""
    app, counter = counted_app
    client = app.test_client()
    junk = b"[" * (16 * 1024 * 1024 - 1024)
    for rule in app.url_map.iter_rules():
        path = rule.rule.replace("<task_id>", "6f1c0d3e-8a9b-4c2d-9e1f-0a1b2c3d4e5f").replace("<path:name>", "docs.js")
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            response = client.open(path, method=method, data=junk, headers=JSON)
            assert counter[0] == 0, f"{method} {rule.rule} read {counter[0]} bytes of an unauthenticated body"
            required = {} not in (contract_of(app.view_functions[rule.endpoint]).security or [{}])
            expected = (401,) if required else (200, 503)  # /health: 503 names what is down
            assert response.status_code in expected, f"{method} {rule.rule}: {response.status_code}"


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value
