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
    # A delayed job's due time (jobs/delayed.py): its message waits off the queue until then, and its TTL
    # (`expires`) counts from then. None for a job queued when submitted.
    scheduled_for: datetime | None = None

    @classmethod
    def new(cls, uuid: str, job_type: str, ttl: float, external_id: str | None, owner: str,
            callback_url: str | None = None, due: datetime | None = None) -> TaskRecord:
        """`due`: when a delayed job is due (None, or a time already past: at once)."""
        created = datetime.now(UTC)
        scheduled = due.astimezone(UTC) if due is not None and due > created else None
        return cls(uuid, job_type, created, (scheduled or created) + timedelta(seconds=ttl), external_id, owner,
                   callback_url, scheduled_for=scheduled)

    @property
    def due(self) -> datetime:
        """When the job may first run: its scheduled time, or when it was submitted."""
        return self.scheduled_for or self.created

    def to_hash(self) -> dict[str, str]:
        fields = {"type": self.type, "created": self.created.isoformat(), "expires": self.expires.isoformat(),
                  "external_id": self.external_id or "", "owner": self.owner, "callback_url": self.callback_url or ""}
        return fields | ({"scheduled_for": self.scheduled_for.isoformat()} if self.scheduled_for else {})

    @classmethod
    def from_hash(cls, uuid: str, data: dict[str, str]) -> TaskRecord:
        return cls(uuid, data["type"], datetime.fromisoformat(data["created"]),
                   datetime.fromisoformat(data["expires"]), data.get("external_id") or None, data["owner"],
                   data.get("callback_url") or None, data.get("cancelled") == "1", bool(data.get("started")),
                   scheduled_for=datetime.fromisoformat(data["scheduled_for"]) if data.get("scheduled_for") else None)
