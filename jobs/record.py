"""The gateway's record of one accepted task, as stored in its Redis hash (jobs/keys.py RECORD_PREFIX)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta


@dataclass(frozen=True)
class TaskRecord:
    uuid: str
    type: str
    created: datetime
    expires: datetime
    external_id: str | None
    owner: str
    callback_url: str | None = None
    cancelled: bool = False
    # Whether a worker has started it (the start check's `started` field, tasks/delivery/startcheck.py):
    # Celery's meta says nothing until the job ends, retries or reports progress.
    started: bool = False
    # Whether a live worker holds a lease on the task (jobs/keys.py LEASE_PREFIX); read beside the
    # record by the store, never stored in it.
    held: bool = True

    @classmethod
    def new(cls, uuid: str, job_type: str, ttl: float, external_id: str | None, owner: str,
            callback_url: str | None = None) -> TaskRecord:
        created = datetime.now(UTC)
        return cls(uuid, job_type, created, created + timedelta(seconds=ttl), external_id, owner, callback_url)

    def to_hash(self) -> dict[str, str]:
        return {"type": self.type, "created": self.created.isoformat(), "expires": self.expires.isoformat(),
                "external_id": self.external_id or "", "owner": self.owner, "callback_url": self.callback_url or ""}

    @classmethod
    def from_hash(cls, uuid: str, data: dict[str, str]) -> TaskRecord:
        return cls(uuid, data["type"], datetime.fromisoformat(data["created"]),
                   datetime.fromisoformat(data["expires"]), data.get("external_id") or None, data["owner"],
                   data.get("callback_url") or None, data.get("cancelled") == "1", bool(data.get("started")))
