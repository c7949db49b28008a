"""A gateway process's bounded memory of small facts about shared Redis keys: that it set a key's TTL
for this period, trimmed an index lately, or read a finished window's count.

Each fact lets a request skip a Redis command that would only repeat what is already true. Another
process may repeat the command once (each remembers for itself); forgetting (a restart, the bound
reached) only costs that command again, never a wrong answer.
"""
from __future__ import annotations

import threading
from collections.abc import Hashable
from typing import Any

BOUND = 10_000  # facts one memory keeps; past that it starts over


class Marks:
    """key -> value, thread-safe, at most `bound` entries (all forgotten at once when full)."""

    def __init__(self, bound: int = BOUND) -> None:
        self.bound = bound
        self._values: dict[Hashable, Any] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any:
        return self._values.get(key)

    def put(self, key: Hashable, value: Any) -> None:
        with self._lock:
            if len(self._values) >= self.bound and key not in self._values:
                self._values.clear()
            self._values[key] = value

    def holds(self, key: Hashable, value: Any) -> bool:
        """Whether `value` is what is recorded under `key` (record it with `put` only once the command it
        stands for has succeeded)."""
        return self._values.get(key) == value

    def forget(self, key: Hashable) -> None:
        with self._lock:
            self._values.pop(key, None)
