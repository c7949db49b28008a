"""Schemathesis hooks for tests/gateway/test_openapi.py (loaded through SCHEMATHESIS_HOOKS).

The gateway takes an integer field only as an integer: `"width": 1000`, not `1000.0` or `1e3` (a job
would receive a float). JSON Schema cannot say so (for it 1000.0 *is* the integer 1000), and
Schemathesis deliberately spells schema integers as whole floats in JSON bodies. This hook drops
generated submit bodies whose upload holds a whole float, the one thing the document cannot express;
every other case and every check still runs.
"""
from __future__ import annotations

from typing import Any

import schemathesis


@schemathesis.hook
def filter_body(context: Any, body: Any) -> bool:
    if not (isinstance(body, dict) and isinstance(body.get("upload"), dict)):
        return True
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
