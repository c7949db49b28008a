"""The one backoff formula, for job retries and webhook deliveries: exponential, capped, jittered."""
from __future__ import annotations

import random


def backoff(retries: int, base: float, cap: float, jitter: bool = True) -> float:
    """Seconds before attempt `retries + 1`: base * 2^retries, at most `cap`, times U(0.5, 1) with jitter
    (so a crowd of failures does not come back at the same instant)."""
    delay = min(cap, base * 2 ** retries)
    return delay * random.uniform(0.5, 1.0) if jitter else delay
