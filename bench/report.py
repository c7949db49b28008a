"""The printed report: markdown tables from a result document (the same dict that goes to JSON)."""
from __future__ import annotations

from typing import Any


def _f(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def render(result: dict[str, Any]) -> str:
    out = [f"# Gateway bench — {result['started']}", "", "```sh", result["command"], "```", ""]
    setup = result["setup"]
    out += [f"Machine: {setup['machine']}. Code: {setup['code']}.",
            f"Load: {setup['load']}. Gateway: {setup['gateway']}. Workers: {setup['workers']}.",
            f"Vault: {setup.get('vault', '?')}. Logging: {setup['logging']}. Redis: {setup.get('redis', 'no persistence')}.",
            *([f"Proxy: {setup['proxy']}."] if setup.get("proxy", "none") != "none" else []),
            ""]

    http = result["http"]
    if http:
        out += ["## HTTP rows (wrk)", ""]
        rows = []
        for row in http.values():
            rows.append([row["label"], _f(row["rps"], 0), _f(row["p50_ms"]), _f(row["p99_ms"]),
                         _f(row["p99_over_p50"], 1), _f(row["server_cpu_ms"]), _f(row.get("proxy_cpu_ms")),
                         _f(row["redis_cpu_ms"], 3), str(row["requests"]), str(row["non_2xx"] + row["socket_errors"])])
        out += _table(["row", "req/s", "p50 ms", "p99 ms", "p99/p50", "server CPU ms/req", "nginx CPU ms/req",
                       "Redis CPU ms/req", "requests", "errors"], rows)
        out += ["", ("Server CPU: gunicorn master + workers for gateway rows (for `nginx → gateway` rows the gunicorn "
                     "behind nginx; nginx's master and workers apart), the Flower process for Flower rows. "
                     "Interleaved rows: req/s and CPU over all rounds, p50/p99 the median of the rounds'."), ""]
    if result.get("proxy"):
        out += ["## Through nginx (the production path) against straight to gunicorn", ""]
        rows = [[r["name"], _f(r["value"]), r["target"], ", ".join(f"{x:.2f}" for x in r["rounds"])]
                for r in result["proxy"]]
        out += _table(["ratio (median of rounds)", "value", "issue 5 target", "rounds"], rows) + [""]

    if result["publish"]:
        out += ["## Bare Celery publishing (one Python process)", ""]
        rows = [[row["label"], _f(row["msgs_per_s"], 0), _f(row["cpu_ms"], 3), _f(row["redis_cpu_ms"], 3),
                 str(row["count"])] for row in result["publish"].values()]
        out += _table(["row", "msgs/s", "publisher CPU ms/msg", "Redis CPU ms/msg", "messages"], rows) + [""]

    if result.get("auth"):
        out += ["## Unauthenticated traffic: requests that reached Vault (OpenBao audit device)", ""]
        rows = [[row["label"], f"{row['requests']:,}", str(row["concurrency"]), row["source"],
                 str(row["vault_calls"]), str(row["vault_logins"]), _f(row["vault_calls_per_1000"], 1),
                 ", ".join(f"{status}: {count}" for status, count in row["statuses"].items()), _f(row["seconds"])]
                for row in result["auth"].values()]
        out += _table(["row (POST /submit)", "requests", "concurrent", "from", "Vault calls", "of which logins",
                       "Vault calls per 1,000", "statuses", "seconds"], rows)
        out += ["", ("Vault calls: every request OpenBao's audit device recorded during the row except the "
                     "bench's own (root token): logins, reads of the JWT mount's keys, entity reads."), ""]

    if result["e2e"]:
        out += ["## End to end (completed jobs, first submit to last done)", ""]
        rows = [[row["label"], _f(row["jobs_per_s"], 0), str(row["jobs"]), _f(row["seconds"]),
                 _f(row["cpu_ms"].get("gateway")), _f(row["cpu_ms"].get("publisher")), _f(row["cpu_ms"]["worker"]),
                 _f(row["cpu_ms"]["redis"], 3), str(row["failed"])]
                for row in result["e2e"].values()]
        out += _table(["row", "jobs/s", "jobs", "seconds", "gateway CPU ms/job", "publisher CPU ms/job",
                       "worker CPU ms/job", "Redis CPU ms/job", "failed"], rows) + [""]

    if result.get("redis"):
        out += _redis(result["redis"])
    if result.get("pickup"):
        out += _pickup(result["pickup"])

    if result["targets"]:
        out += ["## Targets", ""]
        rows = [[t["name"], _f(t["value"], 2), t["target"], "**met**" if t["met"] else "**MISSED**", t["note"]]
                for t in result["targets"]]
        out += _table(["ratio", "value", "target", "", "note"], rows) + [""]
    if result.get("comparisons"):
        out += ["Peers: " + "; ".join(f"{c['name']} = {_f(c['value'])}" for c in result["comparisons"]), ""]

    memory = result.get("memory")
    if memory:
        out += [f"## Memory (RSS MiB) over {memory['submissions']:,} submissions, worker consuming", ""]
        names = list(memory["series"][0]["rss_mib"])
        rows = [[f"{s['submitted']:,}", f"{s['processed']:,}", f"{s['queue_depth']:,}"] +
                [_f(s["rss_mib"].get(n), 1) for n in names] for s in memory["series"]]
        out += _table(["submitted", "processed", "queued"] + names, rows) + [""]
        rows = [[name, _f(v["first_half_mib"], 1), _f(v["last_half_mib"], 1), v["verdict"]]
                for name, v in memory["verdicts"].items()]
        out += _table(["process", "growth 1st half MiB", "growth 2nd half MiB", "verdict"], rows) + [""]

    for name, prof in (result.get("profiles") or {}).items():
        out += [f"## Profile: {name} ({prof['samples']} samples, {prof['pids']}; raw: {prof['raw']})", ""]
        if "steps" in prof:  # a Celery worker: main + pool processes
            out += _table(["worker step", "function", "% samples (inclusive)"],
                          [[s["step"], f"`{s['function']}`", _f(s["total_pct"], 1)] for s in prof["steps"]]) + [""]
            out += _table(["hottest by own time", "file", "own %", "total %"],
                          [[f"`{t['function']}`", t["file"], _f(t["self_pct"], 1), _f(t["total_pct"], 1)]
                           for t in prof["top_self"][:10]]) + [""]
            continue
        out += _table(["where the time goes (innermost match)", "% samples"],
                      [[c["category"], _f(c["pct"], 1)] for c in prof["categories"]]) + [""]
        out += _table(["hottest by own time", "file", "own %", "total %"],
                      [[f"`{t['function']}`", t["file"], _f(t["self_pct"], 1), _f(t["total_pct"], 1)]
                       for t in prof["top_self"]]) + [""]
        out += _table(["gateway function", "file", "total %"],
                      [[f"`{t['function']}`", t["file"], _f(t["total_pct"], 1)]
                       for t in prof["gateway_inclusive"][:12]]) + [""]
    out.append(f"Result file: {result['result_file']}")
    return "\n".join(out)


REDIS_ROWS = ("stock", "bare_project", "gateway", "taskinfo", "taskinfo_again", "lifecycle")
BREAKDOWN = {"stock": "1 stock", "bare_project": "2 send_task, project worker", "gateway": "3 /submit + run",
             "taskinfo": "4 /taskinfo", "taskinfo_again": "5 re-read"}


def _redis(redis: dict[str, Any]) -> list[str]:
    rows, idle, memory = redis["rows"], redis["idle"], redis["memory"]
    stock = rows["stock"]["per_job"]
    out = [f"## Redis commands per job (INFO commandstats, calc_hash, {redis['jobs']} jobs per row)", ""]
    table = []
    for i, key in enumerate(REDIS_ROWS, 1):
        row = rows[key]
        table.append([str(i), row["label"], _f(row["per_job"], 1), _f(row["per_job"] / stock),
                      _f(row["background_per_job"], 2), _f(row.get("seconds"), 1) if "seconds" in row else "—"])
    out += _table(["#", "row", "commands per job (per read for 4, 5)", "× stock", "of which idle background",
                   "seconds"], table)
    out += ["", ("Commands Lua scripts run count, and the EVALSHA itself. Idle background: what the processes "
                 "running during the row cost when idle (measured below) × the row's seconds ÷ its jobs; it is "
                 f"inside the figure, as in production. Row 3's completion polls ({rows['gateway'].get('polls', 0)} "
                 "HGETALLs on the bench's own connection) and each window's CONFIG RESETSTAT are subtracted."), ""]
    names = {name for key in BREAKDOWN for name in rows[key]["by_command"]}
    order = sorted(names, key=lambda name: (-rows["gateway"]["by_command"].get(name, 0),
                                            -rows["stock"]["by_command"].get(name, 0), name))
    table = [[f"`{name.upper()}`"] + [_cell(rows[key]["by_command"].get(name)) for key in BREAKDOWN] for name in order]
    table.append(["**total**"] + [_f(rows[key]["per_job"], 2) for key in BREAKDOWN])
    out += ["### Per command, per job (per read for 4, 5)", ""]
    out += _table(["command"] + list(BREAKDOWN.values()), table) + [""]
    out += ["### Memory and idle workers", ""]
    table = []
    for key, label, how in (
            ("queued", "queued job (submitted, no worker)", f"{memory['queued_jobs']} submissions through the gateway"),
            ("finished", "finished job (queue empty)",
             f"row 3: {memory['finished_jobs']} jobs submitted and run, before and after (kept for results.expires)")):
        m = memory[key]
        table.append([f"Redis memory per {label}", f"{m['used_memory']:,.0f} B used_memory",
                      f"{m['dataset_bytes']:,.0f} B dataset (MEMORY STATS), {m['keys']:.2f} keys; {how}"])
    if memory.get("finished_keys"):
        k = memory["finished_keys"]
        table.append(["keys named by a finished job's id (MEMORY USAGE)", f"{k['bytes_per_job']:,.0f} B",
                      ", ".join(f"`{name}`" + (f" × {n:.2f}" if n != 1 else "") for name, n in k["keys_per_job"].items())
                      + f"; mean of {k['jobs']} jobs of row 3; index entries (owner, open) not included"])
    for key in ("gateway", "stock_worker", "worker"):
        w = idle[key]
        table.append([f"idle commands per second: {w['label']}", _f(w["per_s"]),
                      f"over {w['seconds']:.0f} s: " + (", ".join(f"{name.upper()} {n:.2f}"
                                                              for name, n in list(w["by_command"].items())[:8]) or "none")])
    out += _table(["measure", "value", "how"], table) + [""]
    if redis.get("traces_file"):
        out += [f"Every command of one more job of rows 1, 2, 3, 4 and 5, in order, with the process that sent it "
                f"(MONITOR, outside the counted windows): {redis['traces_file']}", ""]
    return out


def _cell(value: float | None) -> str:
    return "" if not value else _f(value, 2)


def _pickup(pickup: dict[str, Any]) -> list[str]:
    out = [f"## Pickup latency at low load (send_task → AsyncResult.get, {pickup['jobs']} jobs per row, one at a time, "
           f"pause uniform in [0, {pickup['pause_s']}] s)", ""]
    table = [[row["label"], _f(row["p50_ms"], 1), _f(row["p99_ms"], 1), _f(row["mean_ms"], 1), _f(row["max_ms"], 1)]
             for row in pickup["rows"].values()]
    return out + _table(["worker", "p50 ms", "p99 ms", "mean ms", "max ms"], table) + [""]
