"""Security headers on every response, errors included (SPEC §8; OWASP's REST Security Cheat Sheet).

- `X-Content-Type-Options: nosniff`: a browser never runs a JSON body (which may quote a client's
  ExternalId) as HTML or script.
- `Cache-Control: no-store` unless the response chose its own (only /docs/assets does): answers to
  authenticated requests name tasks and results, and no cache between the client and us may keep them.
- `Content-Security-Policy: default-src 'none'; frame-ancestors 'none'` and `X-Frame-Options: DENY`
  unless the response chose its own: an API answer loads nothing and is framed nowhere. The /docs page
  sets its own policy (gateway/routes/docs.py), which also forbids framing.
"""
from __future__ import annotations

from flask import Flask, Response

API_POLICY = "default-src 'none'; frame-ancestors 'none'"


def init_app(app: Flask) -> None:
    app.after_request(_secure)


def _secure(response: Response) -> Response:
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Cache-Control", "no-store")
    headers.setdefault("Content-Security-Policy", API_POLICY)
    headers.setdefault("X-Frame-Options", "DENY")
    return response
