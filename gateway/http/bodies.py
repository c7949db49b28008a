"""How a request body is read and parsed, and every way that can fail mapped to a 4xx here, in one
place (SPEC §8 "Bounded everything").

- Reading: a WSGI server's own errors while the body streams in (gunicorn's chunked-encoding parser
  raises its ParseException classes, which Werkzeug passes through) are a 400; a chunked body longer
  than `limits.max_body_bytes` is a 413 (Werkzeug's stream stops at the limit and returns the
  truncated body, which would otherwise read as broken JSON).
- Parsing: strict JSON (app.json): nesting deeper than `limits.max_json_depth` is refused before the
  parser runs (Python's parser recurses and a 10,000-deep array raises RecursionError); NaN,
  Infinity and -Infinity are not JSON; a lone UTF-16 surrogate ("\\ud800") is not a character and
  could be neither hashed, stored nor logged.
- A failed parse is remembered for the request, so the two readers of a submit body (the role check
  and the body validation) do not parse a broken body twice.
- Behind the buffering proxy (`proxy.trusted_hops` > 0: nginx, which holds the whole body before it
  forwards it), answering before the body was read (a 401, 403 or 429 decided from the headers) still
  reads it, up to its declared Content-Length (at most `limits.max_body_bytes`), before the answer goes
  out: a server that closes a socket with unread bytes resets the connection, and nginx, still sending
  the body, then answered 502 instead of the gateway's own answer (tests/test_nginx.py saw it about 1
  run in 12). Without a proxy nothing is drained: a client could declare a length and never send it.
"""
from __future__ import annotations

import json
import re
from typing import Any

from flask import Flask, Request, Response, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from gateway.http.errors import ApiError, UnsupportedMediaType, ValidationFailed

STRINGS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
OPEN, CLOSE = b"[{", b"]}"
NOT_BRACKETS = bytes(set(range(256)) - set(OPEN + CLOSE))
TO_PARENS = bytes.maketrans(OPEN + CLOSE, b"(())")
# A surrogate escape (\uD800-\uDFFF) or a UTF-8-encoded surrogate (ED A0..BF ..): only then is a walk needed.
# Two patterns, each starting with a literal, which re searches for fast (one alternation is 20x slower).
MAYBE_SURROGATE = (re.compile(rb"\\u[dD][89a-fA-F]"), re.compile(rb"\xed[\xa0-\xbf]"))
NOT_JSON = "Request body is not valid JSON"


class JsonRefused(ValueError):
    """A body that parses as Python's json would, but that the gateway refuses; the message is safe to
    show (it never quotes the body)."""


def nesting_within(text: bytes, limit: int) -> bool:
    """Whether arrays and objects in `text` nest at most `limit` deep, without recursion.

    Strings are blanked out and everything but brackets dropped (both C-speed passes), then innermost
    pairs are removed one level per pass: a balanced text of depth d is empty after d passes. A run of
    more than `limit` openers is too deep at once, so a 16 MiB "[[[[..." fails in the first pass."""
    brackets = _without_strings(text).translate(TO_PARENS, NOT_BRACKETS)
    too_deep = b"(" * (limit + 1)
    for _ in range(limit):
        if not brackets:
            return True
        if too_deep in brackets:
            return False
        brackets = brackets.replace(b"()", b"")
    return b"()" not in brackets and too_deep not in brackets  # leftovers unbalanced: the parser says why


def _without_strings(text: bytes) -> bytes:
    """`text` with the contents of JSON strings removed. Without a backslash no quote is escaped, so
    every other piece between quotes is outside a string (a split: several times faster than the regex)."""
    if b"\\" not in text:
        return b"".join(text.split(b'"')[0::2])
    return STRINGS.sub(b"", text)


def _refuse_constant(name: str) -> Any:
    raise JsonRefused(f"{name} is not a JSON number")


def has_lone_surrogate(value: Any) -> bool:
    """Whether any string (key or value) in the parsed document holds an unpaired surrogate; an
    explicit stack, not recursion, though the depth is already bounded."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if not item.isascii():
                try:
                    item.encode("utf-8")
                except UnicodeEncodeError:
                    return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


class StrictJSONProvider(DefaultJSONProvider):
    """app.json: Flask's provider, parsing strictly (see the module docstring); responses unchanged."""

    sort_keys = False
    max_depth = 32

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        raw = s.encode("utf-8", "surrogatepass") if isinstance(s, str) else s
        if not nesting_within(raw, self.max_depth):
            raise JsonRefused(f"JSON nested deeper than {self.max_depth} levels")
        value = json.loads(s, parse_constant=_refuse_constant, **kwargs)
        if any(pattern.search(raw) for pattern in MAYBE_SURROGATE) and has_lone_surrogate(value):
            raise JsonRefused("JSON string holds an unpaired UTF-16 surrogate (invalid Unicode)")
        return value


class GatewayRequest(Request):
    """app.request_class: the body read and parsed with the failures above as 4xx envelopes."""

    _json_failure: HTTPException | ApiError | None = None

    def get_data(self, cache: bool = True, as_text: bool = False, parse_form_data: bool = False) -> Any:
        try:
            # Werkzeug types get_data by the literal value of as_text: pass it as one.
            data = super().get_data(cache, True, parse_form_data) if as_text else super().get_data(cache, False, parse_form_data)
        except HTTPException:
            raise
        except Exception:  # noqa: BLE001 - the server's parse error on the client's bytes; its class is the server's
            raise ValidationFailed("Malformed request body (transfer encoding)") from None
        if self.content_length is None and _more_than_allowed(self, len(data)):
            raise RequestEntityTooLarge()
        return data

    def get_json(self, force: bool = False, silent: bool = False, cache: bool = True) -> Any:
        """Werkzeug's, with a failure kept for the request: the silent reader (the role check) and
        the strict one (body validation) see one parse."""
        if self._json_failure is None:
            try:
                return super().get_json(force=force, silent=False, cache=cache)
            except (HTTPException, ApiError) as failure:
                self._json_failure = failure
        if silent:
            return None
        raise self._json_failure

    def on_json_loading_failed(self, e: ValueError | None) -> Any:
        if e is None:
            raise UnsupportedMediaType()
        raise ValidationFailed(str(e) if isinstance(e, JsonRefused) else NOT_JSON)


def init_app(app: Flask, behind_proxy: bool) -> None:
    if behind_proxy:
        app.after_request(drain_unread_body)


DRAIN_CHUNK = 64 * 1024


def drain_unread_body(response: Response) -> Response:
    """Read what is left of a body with a declared length the view did not read (see the module's
    docstring); a chunked body is left alone (nginx always forwards a length)."""
    length = request.content_length
    if not length or (request.max_content_length is not None and length > request.max_content_length):
        return response
    try:
        while request.stream.read(DRAIN_CHUNK):
            pass
    except Exception:  # noqa: BLE001 - a client that stops sending: the answer stands, the server closes
        pass
    return response


def _more_than_allowed(request: Request, read: int) -> bool:
    """After a streamed (chunked) body was read up to the limit: does the client send more? One byte
    from the server's own stream says so without reading the rest."""
    if request.max_content_length is None or read < request.max_content_length:
        return False
    try:
        return bool(request.input_stream.read(1))
    except Exception:  # noqa: BLE001 - a broken tail is still a body over the limit
        return True
