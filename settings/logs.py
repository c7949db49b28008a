"""One logging setup for the gateway and the workers: loguru sinks, stdlib records routed into it.

Sinks never render variable values in tracebacks (`diagnose=False`): a local variable may hold a
credential or a payload, and those must never reach a log line.

Text lines cannot be forged (SPEC §8): the text sink escapes every message and context value as it
writes it (control characters such as newline and ESC, backslashes, line separators, lone
surrogates), so a path, header or claim quoted in a line never starts a line of its own or colours a
terminal, whoever logged it. JSON lines are escaped by the JSON encoder.
"""
from __future__ import annotations

import json
import logging
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from loguru import logger

from settings import Settings

if TYPE_CHECKING:
    from loguru import Record  # loguru's stubs only: no such name at run time

# Loggers that install their own handlers (gunicorn) or would double-print (werkzeug, celery).
FOREIGN_LOGGERS = ("gunicorn", "gunicorn.error", "gunicorn.access", "werkzeug", "celery", "flask.app")
CONTEXT_KEYS = ("request_id", "task_id", "client_id")
UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\\\u2028\u2029\ud800-\udfff]")


def escaped(value: str) -> str:
    """`value` made safe for one line of a text log: control characters, backslashes, line separators
    and lone surrogates written as escapes (\\n, \\x1b, \\\\, \\u2028, \\ud800)."""
    return UNSAFE.sub(lambda m: m.group().encode("unicode_escape", "backslashreplace").decode("ascii"), value)


class InterceptHandler(logging.Handler):
    """Hand every standard-library record to loguru, keeping its level and its caller."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        logger.opt(depth=6, exception=record.exc_info).bind(source=record.name).log(level, record.getMessage())


def setup_logging(settings: Settings, process: str) -> None:
    """Configure loguru from settings.logging; `process` names this process in every line."""
    conf = settings.config["logging"]
    logger.remove()
    logger.configure(extra={"process": process})
    sink_options = {"level": conf["level"], "backtrace": False, "diagnose": False}
    # A fixed format string (compiled once by loguru) and a patcher filling its fields: a callable
    # format would make loguru re-parse the returned template for every record.
    if conf.get("json"):
        sink_options["format"] = "{extra[_json]}"
        logger.configure(patcher=_json_patcher)
    else:
        sink_options["format"] = TEXT_FORMAT
        logger.configure(patcher=_text_patcher)
    logger.add(sys.stderr, colorize=False, **sink_options)
    if conf.get("log_file"):
        Path(conf["log_file"]).parent.mkdir(parents=True, exist_ok=True)
        rotation = conf["rotation"]
        # No enqueue: every process adds its own sink anyway, so loguru's queue would only add a
        # pickling round trip per record (measured: the largest logging cost on the request path).
        logger.add(conf["log_file"], rotation=rotation["when"], retention=rotation["backupCount"],
                   encoding="utf-8", **sink_options)
    _route_standard_logging()


def _route_standard_logging() -> None:
    logging.basicConfig(handlers=[InterceptHandler()], level=logging.INFO, force=True)
    for name in FOREIGN_LOGGERS:
        std = logging.getLogger(name)
        std.handlers = [InterceptHandler()]
        std.propagate = False
    # Celery's own per-task success line repeats the return value (base64 images); our task base
    # class logs one line per task instead, so only warnings and errors pass from here.
    logging.getLogger("celery.app.trace").setLevel(logging.WARNING)


TEXT_FORMAT = "{time:YYYY-MM-DD HH:mm:ss.SSS} | {level: <7} | {extra[process]} | {extra[_source]} | {message}{extra[_ctx]}"


def _context(record: Record) -> str:
    extra = record["extra"]
    return " ".join(f"{key}={escaped(str(extra[key]))}" for key in CONTEXT_KEYS if extra.get(key))


def _text_patcher(record: Record) -> None:
    record["message"] = escaped(record["message"])
    context = _context(record)
    record["extra"]["_ctx"] = f" | {context}" if context else ""
    record["extra"]["_source"] = record["extra"].get("source", record["name"])
    record["extra"].setdefault("process", "-")


def _json_patcher(record: Record) -> None:
    payload = {
        "time": record["time"].isoformat(), "level": record["level"].name,
        "process": record["extra"].get("process"), "source": record["extra"].get("source", record["name"]),
        "message": record["message"],
        **{key: record["extra"][key] for key in CONTEXT_KEYS if record["extra"].get(key)},
    }
    if record["exception"] is not None:
        payload["exception"] = repr(record["exception"].value)
    record["extra"]["_json"] = json.dumps(payload)
