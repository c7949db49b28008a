"""Schemathesis hooks for tests/gateway/test_openapi.py (loaded through SCHEMATHESIS_HOOKS).

The gateway takes an integer field only as an integer: `"width": 1000`, not `1000.0` or `1e3` (a job
would receive a float). JSON Schema cannot say so (for it 1000.0 *is* the integer 1000), and
Schemathesis deliberately spells schema integers as whole floats in JSON bodies. This hook drops
generated submit bodies whose upload holds a whole float, the one thing the document cannot express;
every other case and every check still runs.

It also drops generated submit bodies with a `run_at`: whether a date-time is too far ahead
(`limits.max_delay`) depends on the clock when the request arrives, which no schema can say.
"""
from __future__ import annotations

from typing import Any

import schemathesis


@schemathesis.hook
def filter_body(context: Any, body: Any) -> bool:
    if not (isinstance(body, dict) and isinstance(body.get("upload"), dict)):
        return True
    if isinstance(body.get("run_at"), str):
        return False
    return not any(isinstance(value, float) and value.is_integer() for value in _leaves(body["upload"]))


def _leaves(value: Any):
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        else:
            yield item
