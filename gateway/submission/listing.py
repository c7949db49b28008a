"""GET /tasks: a client's tasks, newest first, filtered and cursor-paginated, from its index
(jobs/keys.py OWNER_PREFIX) without ever scanning Redis keys. A cursor is the (score, uuid) of the last
index entry a page used, in an opaque url-safe text."""
from __future__ import annotations

import base64
import math
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from gateway.http.errors import ValidationFailed
from jobs.ids import canonical_uuid
from jobs.status import describe
from jobs.store import TaskStore

SCAN_BUDGET = 1000  # index entries one listing request may examine while filtering
Row = tuple[str, float | None]


class Listing:
    """One listing request: the store, who may read what, the filters and how old `expired` is."""

    def __init__(self, store: TaskStore, may_read: Callable[[str], bool], filters: Mapping[str, Any],
                 grace: float) -> None:
        self.store, self.may_read, self.filters, self.grace = store, may_read, filters, grace

    def page(self, owner: str, cursor: str | None, limit: int) -> tuple[list[dict[str, Any]], str | None]:
        """Walk the owner's index in batches until a page is full or the scan budget is spent."""
        found: list[dict[str, Any]]
        position, budget, found = decode_cursor(cursor), SCAN_BUDGET, []
        after = self.filters.get("created_after")
        while len(found) < limit and budget > 0:
            rows = self.store.page(owner, position, min(budget, max(limit * 2, 20)))
            if after is not None:
                rows = [(m, s) for m, s in rows if s > after.timestamp()]
            if not rows:
                return found, None
            budget -= len(rows)
            matched, position = self.matching(rows, limit - len(found))
            found += matched
        return found, encode_cursor(position) if position else None

    def matching(self, rows: Sequence[Row], want: int = 1) -> tuple[list[dict[str, Any]], tuple[float, str] | None]:
        """TaskInfo bodies of `rows` that pass the filters, at most `want`; and the position of the last
        row used."""
        loaded = self.store.load_many([uuid for uuid, _ in rows])
        out: list[dict[str, Any]]
        out, last = [], None
        now = datetime.now(UTC)
        for (uuid, score), (record, meta) in zip(rows, loaded, strict=True):
            if len(out) == want:
                break
            last = (score, uuid) if score is not None else None
            if record is not None and self.may_read(record.owner):
                info = describe(record, meta, now, self.grace)
                if self._wanted(info):
                    out.append(info)
        return out, last

    def _wanted(self, info: Mapping[str, Any]) -> bool:
        return all(self.filters.get(name, info[name]) == info[name] for name in ("type", "status"))


def encode_cursor(position: tuple[float, str]) -> str:
    return base64.urlsafe_b64encode(f"{position[0]!r}|{position[1]}".encode()).decode()


def decode_cursor(text: str | None) -> tuple[float, str] | None:
    """The position a cursor names; a 400 for anything this API did not hand out."""
    if not text:
        return None
    try:
        score, _, uuid = base64.urlsafe_b64decode(text.encode()).decode().partition("|")
        position = float(score), canonical_uuid(uuid)
    except (ValueError, UnicodeDecodeError):
        position = None
    if position is None or position[1] is None or not math.isfinite(position[0]):
        raise ValidationFailed(errors={"cursor": ["Not a cursor this API returned."]})
    return position[0], position[1]

