#!/usr/bin/env node
// A reference HTTP worker for the job gateway (issue 22), in Node 20 with no dependencies: it leases
// calc_hash jobs of one queue, heartbeats while it works, and finishes them. README.md has the
// configuration and the protocol; this file is meant to be read as an example for other languages.

import { createHash, getHashes } from "node:crypto";
import { appendFileSync } from "node:fs";
import { hostname } from "node:os";

// calc_hash's algorithms (jobs/schemas/calc_hash.json) and Node's names for them. blake2b is Python's
// hashlib.blake2b with its default 64-byte digest: Node's blake2b512.
const ALGORITHMS = { sha256: "sha256", md5: "md5", sha1: "sha1", sha512: "sha512", blake2b: "blake2b512" };
const DEFAULT_ALGORITHMS = ["sha256"];
const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 30_000;
const CALL_TIMEOUT_MS = 15_000;

const config = readConfig(process.env);
const stop = new AbortController(); // aborted on SIGTERM/SIGINT: no new lease, idle waits end

function readConfig(env) {
  const problems = [];
  const number = (name, fallback, min, max) => {
    const value = env[name] === undefined || env[name] === "" ? fallback : Number(env[name]);
    if (!Number.isFinite(value) || value < min || value > max) problems.push(`${name} must be a number from ${min} to ${max}`);
    return value;
  };
  const url = (env.GATEWAY_URL || "").replace(/\/+$/, "");
  if (!url) problems.push("GATEWAY_URL is required");
  const queue = env.QUEUE || "hash";
  if (!/^[A-Za-z0-9_.-]+$/.test(queue)) problems.push("QUEUE must name one queue");
  const name = env.WORKER_NAME || `node-${hostname()}-${process.pid}`.replace(/[^A-Za-z0-9@._:-]/g, "-").slice(0, 100);
  if (!/^[A-Za-z0-9@._:-]{1,100}$/.test(name)) problems.push("WORKER_NAME must be 1 to 100 of A-Z a-z 0-9 @ . _ : -");
  let authorization;
  if (env.WORKER_TOKEN) {
    authorization = `Bearer ${env.WORKER_TOKEN}`;
  } else if (env.WORKER_USER && env.WORKER_PASSWORD) {
    authorization = "Basic " + Buffer.from(`${env.WORKER_USER}:${env.WORKER_PASSWORD}`).toString("base64");
  } else {
    problems.push("set WORKER_TOKEN, or WORKER_USER and WORKER_PASSWORD");
  }
  const jobTypes = new Set((env.JOB_TYPES || "calc_hash").split(",").map((type) => type.trim()).filter(Boolean));
  const settings = {
    url, queue, name, authorization, jobTypes,
    wait: number("WAIT", 20, 0, 20),
    concurrency: number("CONCURRENCY", 1, 1, 64),
    workDelayMs: number("WORK_DELAY_MS", 0, 0, 600_000), // a test and demo knob (README.md)
    ledger: env.LEDGER_FILE || "", // the fault suite's ledger (README.md)
  };
  if (problems.length) {
    console.error(`worker: bad configuration: ${problems.join("; ")}`);
    process.exit(2);
  }
  return settings;
}

function log(line) {
  console.log(`${new Date().toISOString()} ${config.name} ${line}`);
}

// One line per event of a job (start, done: the work completed, stored: the gateway accepted the
// finish), in the fault suite's ledger format (faults/ledger.py). One O_APPEND write per line.
function ledger(event, uuid) {
  if (config.ledger) appendFileSync(config.ledger, `${event} ${uuid} ${process.pid} ${(Date.now() / 1000).toFixed(3)}\n`);
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}

// --- calling the gateway ------------------------------------------------------------------------------

// One POST. Resolves {status, body, retryAfter}; status 0 when no answer came (refused, reset, timeout).
async function post(path, payload, timeoutMs) {
  try {
    const response = await fetch(config.url + path, {
      method: "POST",
      headers: { authorization: config.authorization, "content-type": "application/json" },
      body: JSON.stringify(payload),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await response.text();
    let body = null;
    try { body = text ? JSON.parse(text) : null; } catch { body = null; }
    const retryAfter = Number(response.headers.get("retry-after")) || 0;
    return { status: response.status, body, retryAfter };
  } catch (error) {
    return { status: 0, body: null, retryAfter: 0, error: error.cause?.code ?? error.name }; // ECONNREFUSED, TimeoutError
  }
}

function retryable(answer) {
  return answer.status === 0 || answer.status === 429 || answer.status >= 500;
}

function describe(answer) {
  if (answer.status === 0) return `no answer (${answer.error})`;
  return `${answer.status}${answer.body?.message ? ` ${answer.body.message}` : ""}`;
}

// POST until an answer that is not "try again" (no answer, 429, 5xx), with a bounded exponential
// backoff (with jitter, or the gateway's Retry-After), or until `giveUp()` says it is no use any more:
// then the last answer, whatever it was.
async function persist(what, path, payload, { timeoutMs = CALL_TIMEOUT_MS, giveUp = () => false } = {}) {
  for (let attempt = 0; ; attempt++) {
    const answer = await post(path, payload, timeoutMs);
    if (!retryable(answer)) return answer;
    const delay = answer.retryAfter * 1000
      || Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** attempt) * (0.5 + Math.random() / 2);
    if (giveUp(Date.now() + delay)) return answer;
    log(`${what}: ${describe(answer)}; again in ${Math.round(delay)} ms`);
    await sleep(delay, what === "lease" ? stop.signal : undefined);
  }
}

// --- the work -----------------------------------------------------------------------------------------

class BadContent extends Error {} // finished as error code 2: its message reaches the client

function calcHash(upload) {
  const algorithms = upload.algorithms ?? DEFAULT_ALGORITHMS;
  const available = new Set(getHashes());
  const missing = algorithms.filter((name) => !ALGORITHMS[name] || !available.has(ALGORITHMS[name]));
  if (missing.length) throw new BadContent(`algorithm not supported by this worker: ${missing.join(", ")}`);
  const content = Buffer.from(upload.content, "base64");
  const digests = Object.fromEntries(
    algorithms.map((name) => [name, createHash(ALGORITHMS[name]).update(content).digest("hex")]));
  return { size: content.length, digests };
}

// The job's outcome, as the finish call's body wants it: {result} or {error}.
async function work(job, aborted) {
  if (!config.jobTypes.has(job.type)) {
    return { error: { code: 1, message: `this worker runs ${[...config.jobTypes].join(", ")}, not ${job.type}` } };
  }
  if (config.workDelayMs) await sleep(config.workDelayMs, aborted);
  try {
    return { result: calcHash(job.upload) };
  } catch (error) {
    if (error instanceof BadContent) return { error: { code: 2, message: error.message } };
    return { error: { code: 1, message: `worker error: ${error.name}` } }; // never the payload
  }
}

// --- one job: heartbeats while it runs, then its finish --------------------------------------------------

// Heartbeat every third of the time left on the lease. A 409 (or 404) means the lease is no longer
// ours (expired, cancelled, timed out, finished): the job is abandoned at once.
function keepLease(job, lease, abandon) {
  let timer;
  let stopped = false;
  const schedule = () => {
    const left = lease.expiresAt - Date.now();
    if (!stopped) timer = setTimeout(beat, Number.isFinite(left) ? Math.max(250, left / 3) : 1000);
  };
  const beat = async () => {
    const answer = await persist("heartbeat", `/internal/tasks/${job.uuid}/heartbeat`, { token: lease.token },
                                 { giveUp: (next) => next > lease.expiresAt });
    if (stopped) return;
    if (answer.status === 200) {
      lease.expiresAt = Date.parse(answer.body.expires_at);
      schedule();
    } else if (answer.status === 409 || answer.status === 404) {
      abandon(answer.body?.reason ?? "gone");
    } else if (retryable(answer)) {
      abandon("lease lapsed: the gateway did not answer"); // the gateway reruns it
    } else {
      abandon(`heartbeat refused: ${answer.status}`);
    }
  };
  schedule();
  return () => { stopped = true; clearTimeout(timer); };
}

async function runJob(job) {
  const began = Date.now();
  const lease = { token: job.lease.token, expiresAt: Date.parse(job.lease.expires_at) };
  const aborted = new AbortController();
  let abandoned = null;
  const stopBeating = keepLease(job, lease, (reason) => { abandoned ??= reason; aborted.abort(); });
  const what = `job ${job.uuid} (${job.type}, attempt ${job.attempt})`;
  ledger("start", job.uuid);
  try {
    let outcome = await work(job, aborted.signal);
    if (abandoned) return log(`${what}: abandoned: ${abandoned}`);
    ledger("done", job.uuid);
    const finish = () => persist("finish", `/internal/tasks/${job.uuid}/finish`, { token: lease.token, ...outcome },
                                 { giveUp: (next) => next > lease.expiresAt });
    let answer = await finish();
    if (outcome.result && (answer.status === 400 || answer.status === 413)) {
      // A result the gateway refuses (its schema, its size) is this worker's bug: the job fails, and
      // is not left to lapse and run again, to the same end.
      outcome = { error: { code: 1, message: `the worker's result was refused (${answer.status})` } };
      answer = await finish();
    }
    const ms = Date.now() - began;
    if (answer.status === 200) {
      ledger("stored", job.uuid);
      log(`${what}: ${outcome.result ? "done" : `error ${outcome.error.code} (${outcome.error.message})`} in ${ms} ms`);
    } else if (answer.status === 409) {
      log(`${what}: finish refused: ${answer.body?.reason} (${ms} ms)`);
    } else {
      log(`${what}: finish failed: ${describe(answer)}; the gateway reruns it once the lease lapses`);
    }
  } finally {
    stopBeating();
  }
}

// --- the loop -----------------------------------------------------------------------------------------

// One lease at a time: lease (a long poll), run, again; until SIGTERM, or a refusal that no retry mends.
async function slot() {
  while (!stop.signal.aborted) {
    // A lease request in flight is never aborted: the gateway may have taken a job for it already.
    const answer = await persist("lease", `/internal/queues/${encodeURIComponent(config.queue)}/lease`,
                                 { worker: config.name, wait: config.wait },
                                 { timeoutMs: (config.wait + 15) * 1000, giveUp: () => stop.signal.aborted });
    if (answer.status === 200) {
      await runJob(answer.body);
    } else if (answer.status === 204) {
      if (answer.retryAfter) await sleep(answer.retryAfter * 1000, stop.signal); // every long poll was taken
    } else if (!retryable(answer)) {
      log(`lease refused: ${describe(answer)}; stopping`); // bad credentials, unknown queue: no retry mends it
      process.exitCode = 1;
      stop.abort();
    }
  }
}

function onSignal(signal) {
  if (stop.signal.aborted) {
    log(`${signal} again: exiting now`);
    process.exit(1);
  }
  log(`${signal}: no more leases; finishing the jobs in hand`);
  stop.abort();
}

process.on("SIGTERM", onSignal);
process.on("SIGINT", onSignal);
log(`started: queue ${config.queue}, ${config.concurrency} at a time, long polls of ${config.wait} s, ` +
    `job types ${[...config.jobTypes].join(", ")}`);
await Promise.all(Array.from({ length: config.concurrency }, slot));
log("stopped");
