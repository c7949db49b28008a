"""Task ids: the one parser. Anything that is not a UUID names no task."""
from __future__ import annotations

from uuid import UUID


def canonical_uuid(text: str) -> str | None:
    """The canonical lower-case form of a UUID, or None for anything else."""
    try:
        return str(UUID(text))
    except (ValueError, TypeError, AttributeError):
        return None
