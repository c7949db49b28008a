"""Domain exceptions raised by job logic. Plain Python (no Celery, no Pillow) so both sides can name
them; their class names are what jobs/status.py maps to stable error codes."""


class JobError(Exception):
    """A job that cannot succeed with this input: retrying would fail the same way."""


class BadContent(JobError):
    """The uploaded content cannot be decoded or processed (not base64, not an image, too big)."""


class OutOfBounds(BadContent):
    """The request or its result would exceed one of the job type's resource bounds (jobs.<type>.*);
    the message names the bound, so the client knows what to ask for instead."""


class TransientError(Exception):
    """A failure worth retrying (a resource briefly unavailable): retried per the job type's policy."""


class RetriesExhausted(Exception):
    """A transient failure that outlived its job type's retry policy; the job is dead-lettered."""


class WorkerLost(Exception):
    """The job's worker died while running it on each of its allowed deliveries (`workers.max_deliveries`):
    it is not started again, and is dead-lettered."""


class WorkerReportedFailure(Exception):
    """An HTTP worker reported that the job failed (code 1, gateway/workers/): its message is the
    worker's, never shown to the client."""
