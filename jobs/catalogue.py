"""The job catalogue: job type -> Celery task, queue, payload schema, TTL, limits (SPEC §3), and the
one list of queues (every job type's, plus the webhook queue).

Built once per process from configuration; payload validators are compiled here, once, not per request.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from jsonschema import Draft202012Validator, validators

from jobs import webhooks
from jobs.content import decoded_length
from settings import resolve_schema_path


def _is_integer(_checker: Any, instance: Any) -> bool:
    """JSON Schema counts 1000.0 (and so `1e3`) as an integer; a job receives what the JSON parser
    made of it, a float, so here an integer is an int and never a bool or a float."""
    return isinstance(instance, int) and not isinstance(instance, bool)


# The payload validator: Draft 2020-12 with "integer" meaning a Python int (see _is_integer).
PayloadValidator = validators.extend(
    Draft202012Validator, type_checker=Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_integer))

NO_RETRY: Mapping[str, Any] = MappingProxyType({"max_attempts": 1, "backoff": 1.0, "backoff_max": 60.0, "jitter": True})


@dataclass(frozen=True)
class Bounds:
    """A job type's resource bounds (`jobs.<type>.max_output_pixels`, `max_output_side`,
    `input_formats`, `max_result_bytes`), enforced by the worker before the work they bound, so an
    out-of-bounds request ends as bad content (code 2) instead of taking a worker's memory. These
    defaults apply to a type configured without them; the built-in types state their own."""

    max_output_pixels: int = 40_000_000   # width x height of an image the job makes
    max_output_side: int = 10_000         # either side of it, in pixels
    input_formats: tuple[str, ...] = ("PNG", "JPEG", "WEBP", "GIF", "BMP")  # Pillow decoders allowed
    max_result_bytes: int = 16 * 1024 * 1024  # what the result stores in Redis (an image: its base64)


BOUND_KEYS = tuple(Bounds.__dataclass_fields__)


@dataclass(frozen=True)
class JobType:
    name: str
    task: str
    queue: str
    ttl: float
    time_limit: float
    soft_time_limit: float
    max_content_bytes: int
    validator: Draft202012Validator  # a PayloadValidator
    cancel_terminates: bool = False  # may DELETE /tasks/<uuid> kill a running job (SIGTERM to its process)
    retry: Mapping[str, Any] = field(default_factory=lambda: NO_RETRY)  # max_attempts, backoff, backoff_max, jitter (jobs/retry.py)
    bounds: Bounds = field(default_factory=Bounds)
    # What a worker's result must look like (`jobs.<type>.result_schema`), checked where a result comes
    # in over HTTP (gateway/workers/): None accepts any JSON object.
    result_validator: Draft202012Validator | None = None

    def upload_errors(self, upload: Mapping[str, Any]) -> dict[str, list[str]]:
        """Every schema violation of `upload` at once, keyed by dotted field path."""
        errors: dict[str, list[str]] = {}
        for error in self.validator.iter_errors(upload):
            for name, message in _describe(error):
                errors.setdefault(name, []).append(message)
        return errors

    def result_errors(self, result: Mapping[str, Any]) -> dict[str, list[str]]:
        """Every violation of the type's result schema at once, keyed by dotted field path under `result`."""
        errors: dict[str, list[str]] = {}
        for error in self.result_validator.iter_errors(result) if self.result_validator is not None else ():
            for name, message in _describe(error, root="result"):
                errors.setdefault(name, []).append(message)
        return errors

    def content_too_large(self, upload: Mapping[str, Any]) -> bool:
        """Whether the upload's content decodes to more than the type allows, from its length alone."""
        content = upload.get("content")
        return isinstance(content, str) and decoded_length(content) > self.max_content_bytes


class JobCatalogue:
    def __init__(self, jobs: Mapping[str, Mapping[str, Any]]) -> None:
        self._jobs = {name: _job_type(name, conf) for name, conf in jobs.items()}

    def get(self, name: str) -> JobType | None:
        return self._jobs.get(name)

    def __getitem__(self, name: str) -> JobType:
        return self._jobs[name]

    @property
    def names(self) -> list[str]:
        return sorted(self._jobs)

    @property
    def job_queues(self) -> list[str]:
        return sorted({job.queue for job in self._jobs.values()})

    @property
    def queues(self) -> list[str]:
        """Every queue a worker may consume: the job types' and the webhook queue."""
        return sorted({*self.job_queues, webhooks.QUEUE})

    def for_task(self, task_name: str) -> list[JobType]:
        """The job types a Celery task serves (a task may serve several)."""
        return [job for job in self._jobs.values() if job.task == task_name]


def _job_type(name: str, conf: Mapping[str, Any]) -> JobType:
    schema = json.loads(resolve_schema_path(conf["schema"]).read_text())
    return JobType(
        name=name, task=conf["task"], queue=conf["queue"], ttl=conf["ttl"],
        time_limit=conf["time_limit"], soft_time_limit=conf["soft_time_limit"],
        max_content_bytes=conf["max_content_bytes"], validator=PayloadValidator(schema),
        cancel_terminates=conf.get("cancel_terminates", False), retry=MappingProxyType({**NO_RETRY, **(conf.get("retry") or {})}),
        bounds=_bounds(conf),
        result_validator=PayloadValidator(json.loads(resolve_schema_path(conf["result_schema"]).read_text()))
        if conf.get("result_schema") else None,
    )


def _bounds(conf: Mapping[str, Any]) -> Bounds:
    """The bounds a job type states, the defaults for those it leaves out."""
    given = {key: conf[key] for key in BOUND_KEYS if key in conf}
    if "input_formats" in given:
        given["input_formats"] = tuple(name.upper() for name in given["input_formats"])
    return Bounds(**given)


def _describe(error, root: str = "upload") -> list[tuple[str, str]]:
    """(field path, message) pairs naming the rule broken, never echoing the (possibly huge) value."""
    path = [root, *map(str, error.absolute_path)]
    if error.validator == "required":
        missing = error.message.split("'")[1]
        return [(".".join([*path, missing]), "Missing data for required field.")]
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        return [(".".join([*path, name]), "Unknown field.") for name in extra]
    if error.validator == "anyOf" and not error.absolute_path:
        return [(root, "At least one of " + " / ".join(sorted(_required_in(error.validator_value))) + " is required.")]
    value = error.validator_value
    messages = {
        "type": lambda: f"Must be of type {value}.",
        "pattern": lambda: "Must be valid base64." if path[-1] == "content" else "Does not match the expected pattern.",
        "enum": lambda: f"Must be one of: {', '.join(map(str, value))}.",
        "minimum": lambda: f"Must be at least {value}.",
        "maximum": lambda: f"Must be at most {value}.",
        "minLength": lambda: f"Must be at least {value} characters long.",
        "maxLength": lambda: f"Must be at most {value} characters long.",
        "minItems": lambda: f"Must have at least {value} items.",
        "uniqueItems": lambda: "Items must be unique.",
    }
    describe = messages.get(error.validator, lambda: f"Fails the {error.validator} rule.")
    return [(".".join(path), describe())]


def _required_in(alternatives: list[dict]) -> set[str]:
    return {name for alt in alternatives for name in alt.get("required", [])}
