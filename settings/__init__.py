"""Load config.json + .secrets.json + GATEWAY__* overrides, validate them, expose a frozen object.

The gateway and the workers read the same files through this one module, so they can never
disagree about queues, limits or job types.
"""
from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from settings.addresses import SentinelOptions, is_sentinel, parse_sentinel_url
from settings.cron import parse_cron, zone

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent  # where config.example.json and .secrets.example.json are (the clone, the image's /app)
JOB_SCHEMA_DIR = HERE.parent / "jobs" / "schemas"
ENV_PREFIX = "GATEWAY__"
MISSING = "file not found"


class SettingsError(Exception):
    """Configuration is invalid; `problems` lists every one, each starting with its key path."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Settings:
    """Validated settings. `config` and `secrets` are read-only mappings."""

    config: Mapping[str, Any]
    secrets: Mapping[str, Any]

    @property
    def broker_url(self) -> str:
        """The queue URL with the Redis credentials from .secrets.json folded in."""
        return _with_credentials(self.config["queue"]["url"], self.secrets.get("redis", {}))

    @property
    def result_url(self) -> str:
        url = self.config["queue"]["result_url"] or self.config["queue"]["url"]
        return _with_credentials(url, self.secrets.get("redis", {}))

    @property
    def sentinel(self) -> SentinelOptions | None:
        """The master's name and the sentinels' credentials, when a queue URL is sentinel:// (else None)."""
        named = self.config["queue"].get("sentinel")
        if not named:
            return None
        creds = self.secrets.get("redis", {})
        return SentinelOptions(named["master_name"], creds.get("sentinel_username"), creds.get("sentinel_password"))


def load_settings(
    config_path: str | os.PathLike | None = None,
    secrets_path: str | os.PathLike | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Read, merge over the defaults, apply environment overrides, validate; raise SettingsError."""
    environ = os.environ if environ is None else environ
    problems: list[str] = []
    config_file = _settings_file(config_path, environ, "GATEWAY_CONFIG", "config.json", "config.example.json")
    secrets_file = _settings_file(secrets_path, environ, "GATEWAY_SECRETS", ".secrets.json", ".secrets.example.json")
    config = _deep_merge(_read_json(HERE / "defaults.json", "", problems), _read_json(*config_file, problems))
    secrets = _read_json(*secrets_file, problems)
    if problems:
        raise SettingsError(problems)
    _apply_environment(environ, config, secrets)
    problems += _schema_problems(config, "config.schema.json", "config")
    problems += _schema_problems(secrets, "secrets.schema.json", "secrets")
    problems += _schedule_problems(config)  # its own guards: every schedule's problems at once, always
    if not problems:
        problems += _semantic_problems(config)
    if problems:
        raise SettingsError(problems)
    return Settings(config=_freeze(config), secrets=_freeze(secrets))


def load_settings_or_exit(environ: Mapping[str, str] | None = None, hint: str = "") -> Settings:
    """For entrypoints: on missing or invalid settings print every problem (and `hint`, the entrypoint's
    own way out, if any) and exit 2, without a traceback."""
    try:
        return load_settings(environ=environ)
    except SettingsError as exc:
        missing = all(MISSING in problem for problem in exc.problems)
        print(f"{'missing' if missing else 'invalid'} configuration, refusing to start:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        if missing:
            print("Both files: docs/operations.md, Configuration. The Redis a service uses is the config's "
                  "queue.url, or GATEWAY__QUEUE__URL=redis://HOST:PORT/DB.", file=sys.stderr)
        if hint:
            print(hint, file=sys.stderr)
        raise SystemExit(2) from None


def resolve_schema_path(name: str) -> Path:
    """Payload schemas named by a bare file name come with the project; paths are taken as given."""
    path = Path(name)
    return path if path.is_absolute() or len(path.parts) > 1 else JOB_SCHEMA_DIR / path


def _settings_file(given: str | os.PathLike | None, environ: Mapping[str, str], variable: str, default: str,
                   example: str) -> tuple[Path, str]:
    """The path of a settings file and what to tell whoever starts a service without it: where it was
    looked for and the two ways to provide it (a copy of the example, or the variable naming its path)."""
    if given:
        return Path(given), ""
    if environ.get(variable):
        return Path(environ[variable]), f" (the path {variable} names)"
    sample = PROJECT / example
    copy = f"copy {example if Path.cwd() == PROJECT else sample} to ./{default}" if sample.exists() else f"create ./{default}"
    return Path(default), f" in the working directory {Path.cwd()}: {copy}, or set {variable} to its path"


def _read_json(path: Path, hint: str, problems: list[str]) -> dict:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        problems.append(f"{path}: {MISSING}{hint}")
        return {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        problems.append(f"{path}: not readable JSON ({exc.__class__.__name__}: {exc})")
        return {}
    if not isinstance(data, dict):
        problems.append(f"{path}: must hold a JSON object")
        return {}
    return data


def _deep_merge(base: dict, override: dict) -> dict:
    """Objects merge key by key; anything else in `override` replaces the default."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _apply_environment(environ: Mapping[str, str], config: dict, secrets: dict) -> None:
    """GATEWAY__SECTION__KEY=value sets one key; values parse as JSON when they can (numbers, bools)."""
    secret_sections = json.loads((HERE / "secrets.schema.json").read_text())["properties"]
    for name, raw in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX):
            continue
        path = [part.lower() for part in name[len(ENV_PREFIX):].split("__") if part]
        if not path:
            continue
        section = secret_sections.get(path[0], {}).get("properties", {})
        target = secrets if len(path) > 1 and path[1] in section else config
        _set_path(target, path, _parse_env_value(raw))


def _parse_env_value(raw: str) -> Any:
    try:
        value = json.loads(raw)
    except ValueError:
        return raw
    return value if isinstance(value, (int, float, bool, list, dict)) or value is None else raw


def _set_path(target: dict, path: list[str], value: Any) -> None:
    """Environment names are upper case; keys match case-insensitively (`backupCount`)."""
    for segment in path[:-1]:
        key = _existing_key(target, segment)
        if not isinstance(target.get(key), dict):
            target[key] = {}
        target = target[key]
    target[_existing_key(target, path[-1])] = value


def _existing_key(mapping: dict, segment: str) -> str:
    return next((key for key in mapping if key.lower() == segment), segment)


def _schema_problems(document: dict, schema_file: str, label: str) -> list[str]:
    """Every schema violation, each as `label.key.path: rule`; secret values are never echoed."""
    schema = json.loads((HERE / schema_file).read_text())
    problems = []
    for error in Draft202012Validator(schema).iter_errors(document):
        path = [label, *map(str, error.absolute_path)]
        if error.validator == "additionalProperties":
            known = error.schema.get("properties", {})
            problems += [f"{_dotted([*path, key])}: unknown key" for key in error.instance if key not in known]
        elif label == "secrets":
            problems.append(f"{_dotted(path)}: fails the {error.validator!r} rule ({error.validator_value})")
        else:
            problems.append(f"{_dotted(path)}: {error.message}")
    return sorted(problems)


def _semantic_problems(config: dict) -> list[str]:
    """Rules JSON Schema cannot state: cross-field limits, schema files, role -> known job types."""
    problems = []
    for name, job in config["jobs"].items():
        if job["soft_time_limit"] >= job["time_limit"]:
            problems.append(f"config.jobs.{name}.soft_time_limit: must be below time_limit")
        path = resolve_schema_path(job["schema"])
        try:
            Draft202012Validator.check_schema(json.loads(path.read_text()))
        except OSError:
            problems.append(f"config.jobs.{name}.schema: cannot read {path}")
        except (ValueError, SchemaError) as exc:
            reason = exc.message if isinstance(exc, SchemaError) else exc
            problems.append(f"config.jobs.{name}.schema: {path} is not a valid JSON Schema ({reason})")
    problems += _queue_problems(config["queue"])
    for role, types in config["roles"].items():
        for unknown in sorted(set(types) - set(config["jobs"])):
            problems.append(f"config.roles.{role}: unknown job type {unknown!r}")
    return problems


def _schedule_problems(config: dict) -> list[str]:
    """Each schedule names a configured job type, an upload that type's schema accepts, either `every` or
    a `cron` expression Celery's crontab reads the same way (settings/cron.py), and an IANA time zone.
    Checked beside the schema's rules, not after them, so every schedule's problems show at once; a value
    of the wrong kind is the schema's to report. The owner is not looked up: it is a Vault client_id, and
    Vault may be away at start-up or the client made later (docs/operations.md: Periodic jobs)."""
    problems: list[str] = []
    schedules, jobs = config.get("schedules"), config.get("jobs")
    if not isinstance(schedules, dict) or not isinstance(jobs, dict):
        return problems
    for name, schedule in schedules.items():
        if not isinstance(schedule, dict):
            continue
        where = f"config.schedules.{name}"
        job_type = schedule.get("type")
        if isinstance(job_type, str):
            job = jobs.get(job_type)
            if not isinstance(job, dict):
                problems.append(f"{where}.type: unknown job type {job_type!r}")
            elif isinstance(schedule.get("upload"), dict):
                problems += _upload_problems(where, job, schedule["upload"])
        if ("every" in schedule) == ("cron" in schedule):
            problems.append(f"{where}: give either `every` (seconds) or `cron`, not {'both' if 'cron' in schedule else 'neither'}")
        if isinstance(schedule.get("cron"), str):
            try:
                parse_cron(schedule["cron"])
            except ValueError as exc:
                problems.append(f"{where}.cron: {exc}")
        if "timezone" in schedule and "cron" not in schedule:
            problems.append(f"{where}.timezone: only a cron schedule has a time zone (`every` counts seconds)")
        elif isinstance(schedule.get("timezone"), str):
            try:
                zone(schedule["timezone"])
            except ValueError as exc:
                problems.append(f"{where}.timezone: {exc}")
    return problems


def _upload_problems(where: str, job: dict, upload: dict) -> list[str]:
    """The upload checked against its type's schema, as a submit's would be; a schema that cannot be read
    is reported under config.jobs already."""
    try:
        schema = json.loads(resolve_schema_path(job["schema"]).read_text())
        errors = list(Draft202012Validator(schema).iter_errors(upload))
    except (OSError, ValueError, TypeError, KeyError, SchemaError):
        return []
    return sorted(f"{where}.upload{''.join(f'.{part}' for part in error.absolute_path)}: {error.message}"
                  for error in errors)


def _queue_problems(queue: dict) -> list[str]:
    """A sentinel:// address must parse and needs the master's name; a WAIT must end before the publish
    timeout, or every acknowledged save would answer "outcome unknown"."""
    problems = []
    for key in ("url", "result_url"):
        url = queue.get(key)
        if not url or not is_sentinel(url):
            continue
        try:
            parse_sentinel_url(url)
        except ValueError as exc:
            problems.append(f"config.queue.{key}: {exc}")
        if not queue.get("sentinel"):
            problems.append(f"config.queue.{key}: a sentinel:// address needs config.queue.sentinel.master_name")
    if queue["wait_replicas"] and queue["wait_timeout_ms"] >= queue["publish_timeout"] * 1000 * 0.8:
        problems.append("config.queue.wait_timeout_ms: must stay below 80% of publish_timeout "
                        "(the save and its WAIT share that socket timeout)")
    return problems


def _dotted(path) -> str:
    return ".".join(str(part) for part in path)


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return MappingProxyType({key: _freeze(item) for key, item in value.items()})
    if isinstance(value, list):
        return tuple(_freeze(item) for item in value)
    return value


def _with_credentials(url: str, creds: Mapping[str, Any]) -> str:
    """Fold username/password into a redis:// URL unless the URL already carries them."""
    password = creds.get("password")
    parts = urlsplit(url)
    if not password or parts.password:
        return url
    user = quote(creds.get("username") or "", safe="")
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{user}:{quote(password, safe='')}@{host}"))
