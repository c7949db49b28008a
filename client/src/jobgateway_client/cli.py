"""`jobgw`: the gateway from a shell, on top of `Client`.

    jobgw submit calc_hash --file photo.png --wait
    jobgw submit resize_image --file photo.png --set width=100 --set format=webp --wait --out small.webp
    jobgw get UUID | jobgw wait UUID | jobgw result UUID --out FILE | jobgw list --status done | jobgw cancel UUID
    jobgw health

Gateway and credentials from GATEWAY_URL and one of GATEWAY_USERNAME + GATEWAY_PASSWORD, GATEWAY_TOKEN,
GATEWAY_TOKEN_COMMAND (a shell command printing a token, run again after a 401), or the same as
options. Exit status: 0 done, 2 usage error or a 4xx answer, 3 the job ended `error`, 4 a wait timed
out, 5 the gateway unavailable, 1 anything else (a 500). Passwords and tokens are never printed."""
from __future__ import annotations

import argparse
import getpass
import json
import os
import subprocess
import sys
import uuid as uuidlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from jobgateway_client._version import API_VERSION, __version__
from jobgateway_client.auth import Auth, BasicAuth, BearerToken, TokenProvider
from jobgateway_client.client import Client
from jobgateway_client.content import content_from_bytes
from jobgateway_client.errors import (
    ApiError,
    ClientError,
    GatewayUnavailable,
    JobFailed,
    TokenProviderError,
    WaitTimeout,
)
from jobgateway_client.models import Result, TaskInfo, error_name
from jobgateway_client.policy import RetryEvent, RetryPolicy

EXIT_OK, EXIT_OTHER, EXIT_USAGE, EXIT_JOB_ERROR, EXIT_TIMEOUT, EXIT_UNAVAILABLE = 0, 1, 2, 3, 4, 5
STATUSES = ("created", "pending", "done", "error")
TOKEN_COMMAND_TIMEOUT = 60


class UsageError(Exception):
    """A mistake in the command line or its environment (exit 2)."""


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Run one command; its exit status."""
    args = parser().parse_args(argv)
    env = os.environ if environ is None else environ
    try:
        with connect(args, env) as client:
            return int(args.run(client, args))
    except UsageError as exc:
        return fail(EXIT_USAGE, f"usage: {exc}")
    except JobFailed as exc:
        emit_info(exc.task, args)
        return fail(EXIT_JOB_ERROR, f"task {exc.task.uuid} ended with error code {exc.code} "
                                    f"({error_name(exc.code)}): {exc.message}")
    except WaitTimeout as exc:
        if exc.last is not None and args.json:
            emit_info(exc.last, args)
        return fail(EXIT_TIMEOUT, f"{exc}; it goes on: jobgw wait {exc.uuid}")
    except GatewayUnavailable as exc:
        return fail(EXIT_UNAVAILABLE, describe(exc) + unknown_outcome_hint(exc, args))
    except (ClientError, TokenProviderError) as exc:
        return fail(EXIT_USAGE, describe(exc))
    except ApiError as exc:
        return fail(EXIT_OTHER, describe(exc))
    except KeyboardInterrupt:
        return fail(130, "interrupted")


# --- arguments ----------------------------------------------------------------------------------------

def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    where = common.add_argument_group("gateway and credentials (default: the environment variable named)")
    where.add_argument("--url", help="the gateway's URL (GATEWAY_URL)")
    where.add_argument("--username", help="Vault userpass user (GATEWAY_USERNAME); prompted for its password on a "
                                          "terminal if GATEWAY_PASSWORD is not set")
    where.add_argument("--password", help="(GATEWAY_PASSWORD) prefer the variable: an option shows in the process list")
    where.add_argument("--token", help="a bearer token (GATEWAY_TOKEN)")
    where.add_argument("--token-command", help="a shell command printing a token, run again after a 401 "
                                               "(GATEWAY_TOKEN_COMMAND)")
    where.add_argument("--retry-deadline", type=float, default=30.0, metavar="SECONDS",
                       help="keep repeating a request answered 429 or 503, or not answered, this long (default 30)")
    where.add_argument("--request-timeout", type=float, default=10.0, metavar="SECONDS",
                       help="seconds for one HTTP request (default 10)")
    common.add_argument("--json", action="store_true", help="print JSON for scripts: the TaskInfo as one object")
    common.add_argument("-v", "--verbose", action="store_true", help="say on stderr when a request is repeated")

    top = argparse.ArgumentParser(prog="jobgw", description="The job gateway from a shell (client "
                                  f"{__version__}, API {API_VERSION}).", epilog=EPILOG,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    top.add_argument("--version", action="version", version=f"jobgw {__version__} (API {API_VERSION})")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    submit = commands.add_parser("submit", parents=[common], help="submit a job",
                                 description="Submit a job. Its upload is --file's content plus --set fields.")
    submit.add_argument("type", help="job type: calc_hash, resize_image, water_marks, ...")
    submit.add_argument("--file", type=Path, help="the content to upload ('-': standard input)")
    submit.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="fields",
                        help="an upload field; VALUE is read as JSON if it is JSON (100, true, [\"md5\"]), else as "
                             "text; repeatable")
    submit.add_argument("--external-id", help="your own id for the task (also its idempotency key)")
    submit.add_argument("--callback-url", help="URL the gateway POSTs the finished TaskInfo to")
    submit.add_argument("--idempotency-key", help="repeat a submit safely: the same key never makes a second job")
    when = submit.add_mutually_exclusive_group()
    when.add_argument("--delay", type=float, metavar="SECONDS", help="run the job once, this many seconds from now")
    when.add_argument("--run-at", metavar="TIME", help="run the job once at this RFC 3339 time with a zone "
                                                       "(2026-12-24T18:00:00+01:00)")
    submit.add_argument("--wait", action="store_true", help="wait for the job to finish, with its progress")
    add_wait_options(submit)
    submit.set_defaults(run=run_submit)

    get = commands.add_parser("get", parents=[common], help="a task's state")
    get.add_argument("uuid")
    get.set_defaults(run=run_get)

    wait = commands.add_parser("wait", parents=[common], help="wait for a task to finish, with its progress")
    wait.add_argument("uuid")
    add_wait_options(wait)
    wait.set_defaults(run=run_wait)

    result = commands.add_parser("result", parents=[common], help="a done task's whole result")
    result.add_argument("uuid")
    result.add_argument("--out", type=Path, help="file to write it to (default: standard output, not for an image "
                                                 "on a terminal)")
    result.set_defaults(run=run_result)

    listing = commands.add_parser("list", parents=[common], help="your tasks, newest first (--json: one per line)")
    listing.add_argument("--status", choices=STATUSES)
    listing.add_argument("--type", dest="job_type")
    listing.add_argument("--external-id")
    listing.add_argument("--created-after", metavar="ISO8601")
    listing.add_argument("--client-id", help="admin only: another client's tasks")
    listing.add_argument("--limit", type=int, help="print at most this many")
    listing.set_defaults(run=run_list)

    cancel = commands.add_parser("cancel", parents=[common], help="cancel a task")
    cancel.add_argument("uuid")
    cancel.set_defaults(run=run_cancel)

    health = commands.add_parser("health", parents=[common], help="is the gateway healthy (exit 0, else 5)")
    health.set_defaults(run=run_health)
    return top


def add_wait_options(command: argparse.ArgumentParser) -> None:
    command.add_argument("--timeout", type=float, default=600.0, metavar="SECONDS",
                         help="give up waiting after this long (exit 4; the job goes on) (default 600)")
    command.add_argument("--out", type=Path, help="once done, write the whole result to this file (an image job's image)")
    command.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                         help="a progress bar on stderr (default: when stderr is a terminal and not --json)")


EPILOG = """exit status: 0 done; 2 usage error or a 4xx answer; 3 the job ended `error`; 4 a wait timed out;
5 the gateway unavailable; 1 anything else

environment: GATEWAY_URL; then GATEWAY_USERNAME and GATEWAY_PASSWORD, or GATEWAY_TOKEN, or
GATEWAY_TOKEN_COMMAND (a shell command printing a token, run again when the gateway answers 401)"""


# --- connecting ---------------------------------------------------------------------------------------

@contextmanager
def connect(args: argparse.Namespace, env: Mapping[str, str]) -> Iterator[Client]:
    url = args.url or env.get("GATEWAY_URL")
    if not url:
        raise UsageError("no gateway: set GATEWAY_URL or give --url")
    hook = (lambda event: print_retry(event)) if args.verbose else None
    try:
        auth = None if args.command == "health" else credentials(args, env)
        client = Client(url, auth, timeout=args.request_timeout, retry=RetryPolicy(deadline=args.retry_deadline),
                        on_retry=hook)
    except ValueError as exc:  # a malformed URL, token or username: the message names none of them
        raise UsageError(str(exc)) from None
    with client:
        yield client


def credentials(args: argparse.Namespace, env: Mapping[str, str]) -> Auth:
    """Options win over the environment; exactly one kind of credential."""
    given = any((args.username, args.password, args.token, args.token_command))
    username = args.username if given else env.get("GATEWAY_USERNAME")
    password = args.password if given and args.password else env.get("GATEWAY_PASSWORD") if username else None
    token = args.token if given else env.get("GATEWAY_TOKEN")
    command = args.token_command if given else env.get("GATEWAY_TOKEN_COMMAND")
    kinds = [kind for kind, value in (("username and password", username or password), ("token", token),
                                      ("token command", command)) if value]
    if len(kinds) != 1:
        raise UsageError("give exactly one of GATEWAY_USERNAME + GATEWAY_PASSWORD, GATEWAY_TOKEN or GATEWAY_TOKEN_COMMAND "
                         f"(or --username/--password, --token, --token-command); found {len(kinds)}")
    if token:
        return BearerToken(token)
    if command:
        return TokenProvider(token_command(command))
    if not username:
        raise UsageError("a password needs a username (GATEWAY_USERNAME or --username)")
    if not password:
        if not sys.stdin.isatty():
            raise UsageError("no password: set GATEWAY_PASSWORD")
        password = getpass.getpass(f"password for {username}: ")
    return BasicAuth(username, password)


def token_command(command: str) -> Callable[[], str]:
    """A token provider running `command` in the shell; its standard error passes through, its output
    (the token) is never shown."""
    def fetch() -> str:
        try:
            done = subprocess.run(command, shell=True, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  timeout=TOKEN_COMMAND_TIMEOUT, check=False, text=True)
        except subprocess.TimeoutExpired:
            raise TokenProviderError(f"the token command did not finish within {TOKEN_COMMAND_TIMEOUT}s") from None
        if done.returncode != 0:
            raise TokenProviderError(f"the token command exited with status {done.returncode}")
        return done.stdout
    return fetch


# --- commands -----------------------------------------------------------------------------------------

def run_submit(client: Client, args: argparse.Namespace) -> int:
    upload = upload_of(args.file, args.fields)
    # The key is chosen here, not in the library, so a failure can tell the user how to repeat safely.
    args.key = args.idempotency_key or (None if args.external_id else f"jgc-{uuidlib.uuid4()}")
    task = client.submit(args.type, upload, external_id=args.external_id, callback_url=args.callback_url,
                         idempotency_key=args.key, delay_seconds=args.delay, run_at=args.run_at)
    if not args.wait:
        if args.json:
            print(json.dumps(task.submitted.to_dict() if task.submitted else {"uuid": task.uuid}))
        else:
            print(f"{'submitted' if task.new else 'already submitted'} {task.uuid}")
        return EXIT_OK
    note(f"{'submitted' if task.new else 'already submitted'} {task.uuid}")
    return wait_and_show(client, task.uuid, args)


def run_wait(client: Client, args: argparse.Namespace) -> int:
    return wait_and_show(client, args.uuid, args)


def wait_and_show(client: Client, task_id: str, args: argparse.Namespace) -> int:
    with progress(args) as on_update:
        info = client.wait(task_id, args.timeout, on_update=on_update)
    saved = client.result(task_id, args.out) if args.out is not None else None
    emit_info(info, args)
    if saved is not None and not args.json:
        print(f"saved {saved.media_type}, {saved.size} bytes, to {saved.path}")
    return EXIT_OK


def run_get(client: Client, args: argparse.Namespace) -> int:
    emit_info(client.get(args.uuid), args)
    return EXIT_OK


def run_cancel(client: Client, args: argparse.Namespace) -> int:
    emit_info(client.cancel(args.uuid), args)
    return EXIT_OK


def run_result(client: Client, args: argparse.Namespace) -> int:
    if args.out is not None:
        saved = client.result(args.uuid, args.out)
        if args.json:
            print(json.dumps({"uuid": saved.uuid, "media_type": saved.media_type, "size": saved.size, "path": str(saved.path)}))
        else:
            print(f"saved {saved.media_type}, {saved.size} bytes, to {saved.path}")
        return EXIT_OK
    result = client.result(args.uuid)
    write_result(result, args, sys.stdout)
    return EXIT_OK


def write_result(result: Result, args: argparse.Namespace, out: TextIO) -> None:
    if not result.is_image:
        print(json.dumps(result.json(), indent=None if args.json else 2), file=out)
        return
    if out.isatty():
        raise UsageError(f"the result is an image ({result.media_type}): give --out FILE or redirect standard output")
    out.flush()
    out.buffer.write(result.content or b"")
    out.buffer.flush()


def run_list(client: Client, args: argparse.Namespace) -> int:
    rows = client.tasks(status=args.status, job_type=args.job_type, external_id=args.external_id,
                        created_after=args.created_after, client_id=args.client_id,
                        page_size=min(200, args.limit) if args.limit else 200)
    for count, row in enumerate(rows):
        if args.limit is not None and count >= args.limit:
            break
        if args.json:
            print(json.dumps(row.to_dict()))
        else:
            when = row.created.isoformat(timespec="seconds") if row.created else "-"
            print(f"{row.uuid}  {row.type:<14} {status_text(row):<20} {when}")
    return EXIT_OK


def run_health(client: Client, args: argparse.Namespace) -> int:
    health = client.health()
    print(json.dumps({"message": health.message, "code": health.code}) if args.json else health.message)
    return EXIT_OK if health.ok else EXIT_UNAVAILABLE


# --- input and output ---------------------------------------------------------------------------------

def upload_of(file: Path | None, fields: Sequence[str]) -> dict[str, Any]:
    upload: dict[str, Any] = {}
    for field in fields:
        key, sep, text = field.partition("=")
        if not sep or not key:
            raise UsageError(f"--set takes KEY=VALUE, not {field!r}")
        try:
            upload[key] = json.loads(text)
        except ValueError:
            upload[key] = text
    if file is not None:
        if "content" in upload:
            raise UsageError("give the content with --file or --set content=, not both")
        try:
            data = sys.stdin.buffer.read() if str(file) == "-" else file.read_bytes()
        except OSError as exc:
            raise UsageError(f"cannot read {file}: {exc.strerror}") from None
        upload["content"] = content_from_bytes(data)
    return upload


def emit_info(info: TaskInfo, args: argparse.Namespace) -> None:
    if args.json:
        print(json.dumps(info.to_dict()))
        return
    rows = [("uuid", info.uuid), ("type", info.type), ("status", status_text(info)),
            ("created", info.raw.get("created")), ("processed", info.raw.get("processed")), ("message", info.message)]
    for name, value in rows:
        if value not in (None, ""):
            print(f"{name:<10} {value}")
    if info.result is not None:
        for i, line in enumerate(result_lines(info)):
            print(f"{'result' if i == 0 else '':<10} {line}")


def status_text(info: TaskInfo) -> str:
    if info.failed:
        return f"error {info.code} ({error_name(info.code)})"
    if info.progress is not None:
        return f"{info.status} {info.progress.percent:g}% {info.progress.stage}".rstrip()
    return info.status


def result_lines(info: TaskInfo) -> list[str]:
    """A readable result: nested fields flattened, an image's base64 content replaced by how to get it."""
    result = info.result
    if not isinstance(result, dict):
        return [json.dumps(result)]
    lines = []
    for key, value in flatten(result):
        if key == "content" and isinstance(value, str):
            value = f"<{len(value) * 3 // 4 - value[-2:].count('=')} bytes: jobgw result {info.uuid} --out FILE>"
        elif key == "result_url":
            value = f"{value}  (jobgw result {info.uuid} --out FILE)"
        lines.append(f"{key}: {value}")
    return lines


def flatten(data: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in data.items():
        if isinstance(value, Mapping) and value:
            yield from flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


@contextmanager
def progress(args: argparse.Namespace) -> Iterator[Callable[[TaskInfo], None] | None]:
    """What a wait shows on stderr: a bar (a terminal, or --progress), lines (stderr not a terminal), or
    nothing (--json, --no-progress)."""
    if args.progress is False or (args.progress is None and args.json):
        yield None
        return
    if args.progress is None and not sys.stderr.isatty():
        yield lambda info: note(status_text(info))
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    console = Console(stderr=True, force_terminal=True if args.progress else None)
    with Progress(TextColumn("{task.description:<24}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn(),
                  console=console, transient=False) as bar:
        job = bar.add_task("created", total=100)

        def update(info: TaskInfo) -> None:
            done = 100.0 if info.done else info.progress.percent if info.progress else 0.0
            bar.update(job, description=status_text(info), completed=done)
        yield update


def describe(error: ApiError | TokenProviderError) -> str:
    if isinstance(error, TokenProviderError):
        return str(error)
    lines = [str(error)]
    lines += [f"  {field}: {'; '.join(reasons)}" for field, reasons in sorted(error.errors.items())]
    if error.retry_after is not None:
        lines.append(f"  retry after {error.retry_after:g}s")
    return "\n".join(lines)


def unknown_outcome_hint(error: GatewayUnavailable, args: argparse.Namespace) -> str:
    key = getattr(args, "key", None)
    if getattr(args, "command", None) != "submit":
        return ""
    again = f"--idempotency-key {key}" if key else f"--external-id {args.external_id}"
    where = f" (it may exist as {error.uuid})" if error.uuid else ""
    return f"\n  the job may have been accepted{where}: repeat the same submit with {again} to be safe"


def print_retry(event: RetryEvent) -> None:
    note(f"retrying in {event.delay:.1f}s ({event.reason}): {event.error}")


def note(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def fail(status: int, message: str) -> int:
    note(f"error: {message}")
    return status
