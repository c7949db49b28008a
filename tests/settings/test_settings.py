"""config.json + .secrets.json + GATEWAY__* overrides, validated all at once, exit 2 on bad files."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from devsupport.processes import BIN, ROOT
from jobs import webhooks
from settings import SettingsError, load_settings

EXAMPLES = (ROOT / "config.example.json", ROOT / ".secrets.example.json")


def write(tmp_path, config: dict, secrets: dict | None = None):
    config_path, secrets_path = tmp_path / "config.json", tmp_path / ".secrets.json"
    config_path.write_text(json.dumps(config))
    secrets_path.write_text(json.dumps(secrets if secrets is not None else {"vault": {"token": "t"}}))
    return config_path, secrets_path


def problems_of(*paths, environ=None) -> list[str]:
    with pytest.raises(SettingsError) as caught:
        load_settings(*paths, environ=environ or {})
    return caught.value.problems


def test_example_files_are_valid():
    settings = load_settings(*EXAMPLES, environ={})
    assert set(settings.config["jobs"]) == {"calc_hash", "resize_image", "water_marks"}
    assert settings.config["jobs"]["calc_hash"]["queue"] == "hash"


def test_spec_seed_layout_is_valid_with_defaults_filling_the_rest(tmp_path):
    seed = {"vault": {"url": "http://127.0.0.1:8200", "auth_path": "auth/jwt"},
            "queue": {"type": "redis", "url": "redis://localhost:6379"},
            "logging": {"level": "DEBUG", "log_file": "./logs/gateway.log", "rotation": {"when": "1 day", "backupCount": 7}}}
    settings = load_settings(*write(tmp_path, seed), environ={})
    assert settings.config["roles"]["copytrust_site"] == ("calc_hash",)


def test_paths_come_from_the_environment(tmp_path):
    config_path, secrets_path = write(tmp_path, {})
    settings = load_settings(environ={"GATEWAY_CONFIG": str(config_path), "GATEWAY_SECRETS": str(secrets_path)})
    assert settings.secrets["vault"]["token"] == "t"


def test_environment_overrides_single_keys_with_typed_values(tmp_path):
    settings = load_settings(*write(tmp_path, {}), environ={
        "GATEWAY__QUEUE__URL": "redis://redis:6379/2",
        "GATEWAY__QUEUE__PUBLISH_TIMEOUT": "0.5",
        "GATEWAY__LOGGING__ROTATION__BACKUPCOUNT": "3",
        "GATEWAY__VAULT__TOKEN": "from-env",
        "GATEWAY__REDIS__PASSWORD": "p@ss/word",
    })
    assert settings.config["queue"]["url"] == "redis://redis:6379/2"
    assert settings.config["queue"]["publish_timeout"] == 0.5
    assert settings.config["logging"]["rotation"]["backupCount"] == 3
    assert settings.secrets["vault"]["token"] == "from-env" and "token" not in settings.config["vault"]
    assert settings.broker_url == "redis://:p%40ss%2Fword@redis:6379/2"


def test_settings_are_read_only():
    settings = load_settings(*EXAMPLES, environ={})
    with pytest.raises(TypeError):
        settings.config["queue"]["url"] = "redis://elsewhere"


def test_every_problem_is_listed_at_once_by_key_path(tmp_path):
    config = {"queue": {"url": "amqp://x", "publish_timeout": 5}, "logging": {"level": "LOUD"}, "typo": 1,
              "jobs": {"calc_hash": {"soft_time_limit": 90}}}
    problems = problems_of(*write(tmp_path, config))
    joined = "\n".join(problems)
    for path in ("config.queue.url", "config.queue.publish_timeout", "config.logging.level", "config.typo"):
        assert path in joined
    assert len(problems) == 4


def test_cross_field_rules_are_checked(tmp_path):
    config = {"jobs": {"calc_hash": {"soft_time_limit": 60, "schema": "missing.json"}},
              "roles": {"service": ["calc_hash", "teleport"]}}
    problems = problems_of(*write(tmp_path, config))
    assert any(p.startswith("config.jobs.calc_hash.soft_time_limit") for p in problems)
    assert any(p.startswith("config.jobs.calc_hash.schema") for p in problems)
    assert any(p.startswith("config.roles.service") and "teleport" in p for p in problems)


def test_unknown_environment_key_is_reported(tmp_path):
    problems = problems_of(*write(tmp_path, {}), environ={"GATEWAY__QUEUE__URLL": "redis://x"})
    assert problems == ["config.queue.urll: unknown key"]


def test_secret_values_are_never_echoed(tmp_path):
    problems = problems_of(*write(tmp_path, {}, {"vault": {"token": 1234567}, "redis": {"password": 98765}}))
    assert len(problems) == 2
    assert not any("1234567" in p or "98765" in p for p in problems)


OLD_SECRET, NEW_SECRET = "old-webhook-secret-0123", "new-webhook-secret-4567"


@pytest.mark.parametrize("value", [OLD_SECRET, [OLD_SECRET], [OLD_SECRET, NEW_SECRET]], ids=["string", "one", "two"])
def test_webhook_secrets_take_one_string_or_a_list_of_up_to_two(tmp_path, value):
    secrets = {"vault": {"token": "t"}, "webhooks": {"secrets": {"c": value}}}
    settings = load_settings(*write(tmp_path, {}, secrets), environ={})
    assert webhooks.secrets_for(settings.secrets, "c") == ((value,) if isinstance(value, str) else tuple(value))
    assert webhooks.secrets_for(settings.secrets, "someone-else") == ()


@pytest.mark.parametrize(("value", "problem"), [
    ([], "secrets.webhooks.secrets.c: fails the 'minItems' rule (1)"),
    ([OLD_SECRET, NEW_SECRET, NEW_SECRET + "x"], "secrets.webhooks.secrets.c: fails the 'maxItems' rule (2)"),
    ([OLD_SECRET, OLD_SECRET], "secrets.webhooks.secrets.c: fails the 'uniqueItems' rule (True)"),
    ([OLD_SECRET, "short"], "secrets.webhooks.secrets.c.1: fails the 'minLength' rule (16)"),
    ({"current": OLD_SECRET}, "secrets.webhooks.secrets.c: fails the 'type' rule (['string', 'array'])"),
], ids=["empty", "three", "twice", "short", "object"])
def test_bad_webhook_secret_lists_are_named_by_path_without_their_values(tmp_path, value, problem):
    problems = problems_of(*write(tmp_path, {}, {"vault": {"token": "t"}, "webhooks": {"secrets": {"c": value}}}))
    assert problems == [problem]
    assert not any(secret in p for p in problems for secret in (OLD_SECRET, "short"))


def test_missing_and_unparsable_files_are_reported_together(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    problems = problems_of(bad, tmp_path / "absent.json")
    assert len(problems) == 2 and "not readable JSON" in problems[0] and "file not found" in problems[1]


BAD_CONFIG = {"queue": {"url": "http://not-redis"}, "logging": {"level": "LOUD"}}


@pytest.mark.parametrize("argv", [
    [sys.executable, "-c", "import wsgi"],
    [str(BIN / "gunicorn"), "wsgi:app"],
    [str(BIN / "celery"), "-A", "tasks", "worker", "-Q", "hash"],
], ids=["wsgi", "gunicorn", "celery-worker"])
def test_entrypoints_exit_2_listing_problems_without_traceback(tmp_path, argv):
    config_path, secrets_path = write(tmp_path, BAD_CONFIG)
    env = {"PATH": "/usr/bin:/bin", "GATEWAY_CONFIG": str(config_path), "GATEWAY_SECRETS": str(secrets_path)}
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "config.queue.url" in done.stderr and "config.logging.level" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_every_schedule_problem_is_listed_at_once_with_the_schemas(tmp_path):
    """Beside a schema error elsewhere, each bad schedule is named by its path; a good one passes."""
    upload = {"content": "eA=="}
    config = {"logging": {"level": "LOUD"}, "schedules": {
        "fine": {"type": "calc_hash", "upload": upload, "owner": "client-a", "cron": "30 2 * * mon-fri",
                 "timezone": "Europe/Paris"},
        "type": {"type": "teleport", "upload": upload, "owner": "client-a", "every": 60},
        "upload": {"type": "calc_hash", "upload": {"content": ""}, "owner": "client-a", "every": 60},
        "cron": {"type": "calc_hash", "upload": upload, "owner": "client-a", "cron": "0 24 * * *"},
        "zone": {"type": "calc_hash", "upload": upload, "owner": "client-a", "cron": "0 3 * * *", "timezone": "Nowhere"},
        "zoned-interval": {"type": "calc_hash", "upload": upload, "owner": "client-a", "every": 60, "timezone": "UTC"},
        "when": {"type": "calc_hash", "upload": upload, "owner": "client-a"},
        "owner": {"type": "calc_hash", "upload": upload, "owner": "", "every": 0},
    }}
    problems = problems_of(*write(tmp_path, config))
    assert not any("schedules.fine" in p for p in problems)
    for expected in ("config.logging.level: ", "config.schedules.type.type: unknown job type 'teleport'",
                     "config.schedules.upload.upload.content: '' should be non-empty",
                     "config.schedules.cron.cron: hour: 24 is outside 0..23",
                     "config.schedules.zone.timezone: 'Nowhere' is not an IANA time zone name",
                     "config.schedules.zoned-interval.timezone: only a cron schedule has a time zone",
                     "config.schedules.when: give either `every` (seconds) or `cron`, not neither",
                     "config.schedules.owner.owner: ", "config.schedules.owner.every: "):
        assert any(p.startswith(expected) for p in problems), (expected, problems)
