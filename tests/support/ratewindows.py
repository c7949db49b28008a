"""Rate windows are aligned to the clock (gateway/access/ratelimit.py): a test that counts requests
against a limit starts where its burst cannot straddle a window's edge, where the previous window's
count is weighted and the formula would admit one more."""
from __future__ import annotations

import time

from devsupport.processes import wait_until


def clear_of_window_edge(period: float, margin: float) -> None:
    """Return once at least `margin` seconds of the current `period`-long window are left: at once, or
    after the next window has begun."""
    left = period - time.time() % period
    if left < margin:
        edge = time.time() + left
        wait_until(lambda: time.time() >= edge, left + 1, "the next rate window")
