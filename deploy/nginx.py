"""Render deploy/nginx.conf.template: nginx in front of the gateway's gunicorn, with the gateway's limits.

    python -m deploy.nginx --listen 8000 --upstream gateway:8000 --out /etc/nginx/gateway/nginx.conf

The settings are read exactly as the gateway reads them (GATEWAY_CONFIG, GATEWAY_SECRETS, GATEWAY__…
variables; invalid settings exit 2), and gunicorn's limits from gunicorn.conf.py, so what nginx
enforces stays in step with the gateway by construction: the body limit is `limits.max_body_bytes`, the
header buffers fit gunicorn's request-line and header-field limits, the upstream timeout is gunicorn's.
docker-compose.yml renders it at every `up`; the slow-client test renders it for a real nginx.
"""
from __future__ import annotations

import argparse
import ast
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from werkzeug.http import HTTP_STATUS_CODES

from gateway.http.errors import ValidationFailed
from settings import Settings, load_settings_or_exit

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = Path(__file__).with_name("nginx.conf.template")
GUNICORN_CONF = ROOT / "gunicorn.conf.py"
PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")
ERROR_LOCATION = "/_gateway_error/"
# Statuses nginx itself may answer in this configuration, each with the gateway's envelope. 494 is
# nginx's internal code for a request header too large; it goes out as 400.
ERROR_STATUSES = (400, 404, 405, 408, 411, 413, 414, 500, 501, 502, 503, 504, 505)
ALSO_ANSWERED_AS = {400: (494,)}
# The CRLF that ends a line counts in nginx's header buffer and in gunicorn's limit_request_field_size,
# not in its limit_request_line (measured with gunicorn 27 and nginx 1.22: docs/operations.md "Behind nginx").
CRLF = 2


@dataclass(frozen=True)
class Paths:
    """Where nginx runs: pid, logs, temporary files, worker user. The defaults are the official image's
    (its logs are links to the container's stdout and stderr, its cache belongs to user nginx)."""

    pid: str = "/var/run/nginx.pid"
    error_log: str = "/var/log/nginx/error.log"
    access_log: str = "/var/log/nginx/access.log"
    temp: str = "/var/cache/nginx"
    user: str | None = "nginx"


def gunicorn_settings(path: Path = GUNICORN_CONF) -> dict[str, int]:
    """The integer constants gunicorn.conf.py assigns at top level (limit_request_line, timeout, ...),
    read without running the file: running it loads settings and creates gunicorn's metrics folder."""
    values = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and type(node.value.value) is int:
            values.update({target.id: node.value.value for target in node.targets if isinstance(target, ast.Name)})
    return values


def error_message(status: int) -> str:
    """The message the gateway gives for this status (gateway/http/errors.py: werkzeug's name of the status,
    but a 400 is ValidationFailed's), so a client cannot tell which layer refused it."""
    return ValidationFailed.message if status == 400 else HTTP_STATUS_CODES[status]


def error_pages() -> str:
    """error_page directives and one internal location per status, answering the JSON envelope."""
    lines = []
    for status in ERROR_STATUSES:
        body = json.dumps({"code": status, "message": error_message(status)})
        if "'" in body or "\\" in body:  # it is written inside nginx single quotes, unescaped
            raise ValueError(f"cannot quote {body} for nginx")
        codes = " ".join(map(str, (status, *ALSO_ANSWERED_AS.get(status, ()))))
        lines += [f"        error_page {codes} ={status} {ERROR_LOCATION}{status};",
                  f"        location = {ERROR_LOCATION}{status} {{",
                  "            internal;",
                  "            default_type application/json;",
                  '            add_header Cache-Control "no-store" always;',
                  '            add_header X-Content-Type-Options "nosniff" always;',
                  f"            return {status} '{body}';",
                  "        }"]
    return "\n".join(lines)


def values(settings: Settings, listen: str, upstream: str, paths: Paths) -> dict[str, str]:
    """What fills the template's placeholders, each from the module that owns the fact."""
    gunicorn = gunicorn_settings()
    # One buffer size bounds both the request line and each header line in nginx: the smaller of
    # gunicorn's two, so nginx refuses (in the envelope) whatever gunicorn would refuse in plain text.
    header_buffer = min(gunicorn["limit_request_line"] + CRLF, gunicorn["limit_request_field_size"])
    if gunicorn["keepalive"] <= 0:
        raise ValueError("gunicorn.conf.py keepalive must be on behind nginx (see deploy/nginx.conf.template)")
    servers = [address.strip() for address in upstream.split(",") if address.strip()]
    if not servers:
        raise ValueError("no upstream address")
    return {"listen": listen, "upstream": ";\n        server ".join(servers),
            "user": f"user {paths.user};" if paths.user else "",
            "pid": paths.pid, "error_log": paths.error_log, "access_log": paths.access_log, "temp": paths.temp,
            "max_body_bytes": str(settings.config["limits"]["max_body_bytes"]),
            "header_buffer": str(header_buffer), "keepalive": str(gunicorn["keepalive"]),
            "upstream_keepalive": f"{gunicorn['keepalive'] * 1000 // 2}ms",
            "upstream_timeout": str(gunicorn["timeout"]), "error_pages": error_pages()}


def render(settings: Settings, listen: str, upstream: str, paths: Paths = Paths()) -> str:
    """The nginx.conf text; `upstream` is one gateway's host:port or several, comma-separated. Every
    placeholder must be filled and every value used: a template edited without this module (or the
    reverse) fails here, not in production."""
    filled = values(settings, listen, upstream, paths)
    used = set(PLACEHOLDER.findall(TEMPLATE.read_text()))
    if used != set(filled):
        raise ValueError(f"template placeholders {sorted(used)} != rendered values {sorted(filled)}")
    return PLACEHOLDER.sub(lambda match: filled[match.group(1)], TEMPLATE.read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.nginx", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--listen", default="8000", help="nginx's listen address (port, or host:port)")
    parser.add_argument("--upstream", default="127.0.0.1:8000",
                        help="the gateway's gunicorn, host:port; several instances comma-separated (one "
                             "`server` line each; a host name that resolves to several addresses, as a scaled "
                             "compose service does, is every address already)")
    parser.add_argument("--out", type=Path, help="write here instead of standard output")
    defaults = Paths()
    for name in ("pid", "error_log", "access_log", "temp", "user"):
        parser.add_argument("--" + name.replace("_", "-"), default=getattr(defaults, name),
                            help=f"default: {getattr(defaults, name)} (the official nginx image's)")
    args = parser.parse_args(argv)
    paths = Paths(pid=args.pid, error_log=args.error_log, access_log=args.access_log, temp=args.temp, user=args.user or None)
    text = render(load_settings_or_exit(), args.listen, args.upstream, paths)
    if args.out:
        args.out.write_text(text)
        print(f"deploy.nginx: wrote {args.out}")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
