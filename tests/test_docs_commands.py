"""Every shell block in README.md and docs/*.md is either run here or says why not. The line before each
```sh/```bash fence is a marker:

  <!-- run: local -->          run against a stack started by scripts/run-local.sh
  <!-- run: local setup -->    the same, and prepended to every other file's blocks (README's Try it variables)
  <!-- run: no (reason) -->    not run; the reason says what it needs (compose, a production deployment, ...)

Per file, its `run: local` blocks (after the setup block) become one bash script, in order, with
`set -euo pipefail`, so they share variables like one terminal session. It runs in a folder that mirrors
the clone (every top-level entry linked, `.run` the stack's run folder, so the docs' `.run/vault/...`
paths are this stack's) with the stack's GATEWAY_PORT etc. in its environment; it must exit 0 and print
what the docs print beside the commands (EXPECTED, each also found in the file's text)."""
from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from devsupport.processes import ROOT
from tests.support.local_stack import LocalStack, local_stack

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^(\s*)```(sh|bash)\s*$")
MARKER = re.compile(r"^\s*<!-- run: (local setup|local|no \(.+\)) -->\s*$")
SCRIPT_TIMEOUT = 180

# What each file's blocks print, as the docs show it beside them: (regex on the script's output, text the
# doc shows for it).
EXPECTED: dict[str, list[tuple[str, str]]] = {
    "README.md": [
        (r"HTTP/1\.1 202 ACCEPTED", "# HTTP/1.1 202 ACCEPTED"),
        (r"Location: /taskinfo\?taskid=[0-9a-f-]{36}", "Location: /taskinfo?taskid=<uuid>"),
        (r'"ExternalId": ?"doc-1"', '"ExternalId":"doc-1"'),
        (r'"status": ?"done"', '"status": "done"'),
        (r'"sha256": ?"2cf24dba', '"sha256": "2cf24dba'),
        (r'"md5": ?"5d41402a', '"md5": "5d41402a'),
        (r'^\{"ExternalId": ?null, ?"type": ?"water_marks", ?"uuid": ?"[0-9a-f-]{36}", ?"created": ?"[^"]+"\}$',
         '{"ExternalId":null,"type":"water_marks","uuid":"<uuid>","created":"..."}'),
        (r'"message": ?"Role may not submit resize_image"', '"message": "Role may not submit resize_image"'),
        (r"^done 100 75 webp$", "# done 100 75 webp"),
        # The JWT block's submit (the only calc_hash submit printed without an ExternalId).
        (r'^\{"ExternalId": ?null, ?"type": ?"calc_hash", ?"uuid": ?"[0-9a-f-]{36}", ?"created": ?"[^"]+"\}$',
         '{"ExternalId":null,"type":"calc_hash","uuid":"<uuid>","created":"..."}'),
        (r"^status +done$(.|\n)*digests\.sha256: [0-9a-f]{64}$", "# status     done   ...   result     size: ...   digests.sha256:"),
    ],
    "docs/workers.md": [
        (r'"lease": ?\{"token"', '"lease": {"token"'),
        (r"'stage': 'hashing'", "'stage': 'hashing'"),
        (r'"status": ?"done"', '"status": "done"'),
        (r"^done$", "# done"),
    ],
    "docs/api.md": [
        (r"HTTP/1\.1 202 ACCEPTED\s+HTTP/1\.1 200 OK", "# HTTP/1.1 202 ACCEPTED\n# HTTP/1.1 200 OK"),
        (r"no longer consuming from hash", "no longer consuming from hash"),
        (r"^created$", "# created"),
        (r'^(?=.*"status": ?"error")(?=.*"code": ?4\b)(?=.*"message": ?"The job was cancelled").*\n202$',
         '"code": 4, "message": "The job was cancelled", ...}\n# 202'),
        (r'^(?=.*"status": ?"created")(?=.*"scheduled_for": ?"[^"]+").*$', '"scheduled_for": "'),
        (r'"next_cursor"', "`next_cursor`"),
    ],
    "docs/operations.md": [
        (r'\{"queues": ?\[\{"name": ?"hash", ?"depth": ?0', '{"queues": [{"name": "hash", "depth": 0'),
        (r'"waited_seconds"', '"waited_seconds"'),
        (r'"window_hours": ?24, ?"totals"', '{"window_hours": 24, "totals"'),
        (r'^(?=.*"revoked": ?true)(?=.*"terminate": ?false).*\n202$', '"revoked": true, "terminate": false}\n# 202'),
        (r"^The job was cancelled$", "# The job was cancelled"),
        (r"^done$", "# done"),
        (r'^(?=.*"message": ?"Task already finished").*\n409$', '"message": "Task already finished", "uuid": "<uuid>"}\n# 409'),
        # run-local's scheduler holds the lock; the example configuration's schedule, not yet fired.
        (r'\{"scheduler": ?\{"lock_held": ?true', '{"scheduler": {"lock_held": true'),
        (r'"name": ?"nightly-digest", ?"type": ?"calc_hash", ?"owner": ?"client-service"',
         '"name": "nightly-digest", "type": "calc_hash", "owner": "client-service"'),
    ],
}


@dataclass
class Block:
    doc: Path
    line: int  # of the fence, 1-based
    marker: str | None
    text: str

    @property
    def where(self) -> str:
        return f"{self.doc.relative_to(ROOT)}:{self.line}"


def blocks(doc: Path) -> Iterator[Block]:
    lines = doc.read_text().splitlines()
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent, start = opening.group(1), i
        i += 1
        body = []
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i])
            i += 1
        marker = MARKER.match(lines[start - 1]) if start else None
        yield Block(doc, start + 1, marker.group(1) if marker else None, "\n".join(body))
        i += 1


def local_blocks(doc: Path) -> list[Block]:
    return [block for block in blocks(doc) if block.marker in ("local", "local setup")]


def setup_blocks() -> list[Block]:
    return [block for doc in DOCS for block in blocks(doc) if block.marker == "local setup"]


def test_every_shell_block_says_whether_it_runs():
    unmarked = [block.where for doc in DOCS for block in blocks(doc) if block.marker is None]
    assert not unmarked, ("shell blocks without a <!-- run: local --> or <!-- run: no (reason) --> line "
                          f"before the fence: {', '.join(unmarked)}")


def test_the_markers_find_the_blocks():
    """The parser sees README's Try it: one setup block first, then the blocks that use it."""
    readme = local_blocks(ROOT / "README.md")
    assert [block.marker for block in setup_blocks()] == ["local setup"]
    assert readme[0].marker == "local setup" and len(readme) >= 5
    assert "GW=http://127.0.0.1:${GATEWAY_PORT:-8000}" in readme[0].text


def test_what_is_expected_is_what_the_docs_show():
    for name, expected in EXPECTED.items():
        text = (ROOT / name).read_text()
        assert [shown for _, shown in expected if shown not in text] == [], name


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[LocalStack]:
    with local_stack(tmp_path_factory.mktemp("stack"), GATEWAY_WORKERS="1") as running:
        yield running


@pytest.fixture(scope="module")
def clone(stack: LocalStack, tmp_path_factory) -> Path:
    """A folder that looks like the clone to the docs' commands, with .run the stack's run folder."""
    folder = tmp_path_factory.mktemp("clone")
    for entry in ROOT.iterdir():
        if entry.name != ".run":
            (folder / entry.name).symlink_to(entry)
    (folder / ".run").symlink_to(stack.run_dir)
    return folder


RUNNABLE = [doc for doc in DOCS if any(block.marker == "local" for block in blocks(doc))]


@pytest.mark.parametrize("doc", RUNNABLE, ids=[doc.name for doc in RUNNABLE])
def test_the_local_blocks_run_against_run_local(doc: Path, stack: LocalStack, clone: Path):
    parts = ["set -euo pipefail"]
    for block in [*setup_blocks(), *[b for b in local_blocks(doc) if b.marker == "local"]]:
        parts += [f"# --- {block.where}", f"echo '### {block.where}' >&2", block.text]
    script = "\n".join(parts) + "\n"
    env = {k: v for k, v in stack.env.items() if k != "RUN_DIR"}
    done = subprocess.run(["bash", "-c", script], cwd=clone, env=dict(env, PATH=os.environ["PATH"]),
                          capture_output=True, text=True, timeout=SCRIPT_TIMEOUT)
    shown = f"--- script\n{script}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    assert done.returncode == 0, shown
    missing = [pattern for pattern, _ in EXPECTED.get(doc.relative_to(ROOT).as_posix(), [])
               if not re.search(pattern, done.stdout, re.MULTILINE)]
    assert not missing, f"not printed: {missing}\n{shown}"
    # The docs pause and resume a worker's queue (Cancel): they leave each worker on its own queue.
    assert worker_queues(stack) == {"hash": ["hash"], "images": ["images"], "webhooks": ["webhooks"]}, shown


def worker_queues(stack: LocalStack) -> dict[str, list[str]]:
    password = json.loads((stack.run_dir / "vault" / "demo-users.json").read_text())["admin"]
    answer = requests.get(f"{stack.gateway}/ops/workers", auth=("admin", password), timeout=10)
    assert answer.status_code == 200, answer.text
    # The Celery workers (an HTTP worker a doc leased with, docs/workers.md, is listed too, as `http`).
    return {worker["name"].split("@")[0]: worker["queues"] for worker in answer.json()["workers"]
            if worker["kind"] == "celery"}
