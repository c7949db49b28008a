"""A job's attempts, as every kind of worker records them on the task store: the check before a job
starts and the end of an attempt, as Lua. A Celery worker runs them from tasks/delivery/startcheck.py,
the gateway for its HTTP workers from gateway/workers/ (SPEC §8: the same guarantees either way).

The start check, in order, for a delivery:
- of a job with no gateway record (sent by something else): `unrecorded`;
- of a job that already finished (jobs/status.py FINISHED_STATES): `finished`, never run twice;
- of a cancelled job: `cancelled`;
- of a job another holder has the lease of (a pool process of another worker, or of this one while it
  still runs it, or an HTTP worker's lease): `held`, checked again later (no two runs at once);
- of a job never started and past its TTL: `expired` (code 3);
- of a job started `workers.max_deliveries` times by workers that died (the attempt never ended):
  `lost`, error 6 and dead-lettered;
- otherwise `run`: the attempt is counted, the lease taken, the record marked `started`.
The end of an attempt clears the count, however it ends, so only deaths accumulate.
"""
from __future__ import annotations

from jobs.status import FINISHED_STATES

RUN, UNRECORDED, FINISHED, CANCELLED, HELD, EXPIRED, LOST = (
    "run", "unrecorded", "finished", "cancelled", "held", "expired", "lost")

# start_check(KEYS, ARGV). KEYS: record, lease, meta. ARGV: now, expires at ("" unknown), max deliveries,
# lease (s), the lease holder this delivery would be. Returns {verdict, deliveries whose worker died}. The
# count of attempts that never ended is the record's `runs` field, so it lives and dies with the record.
# finished_meta(key): whether Celery's meta at `key` says the job finished, and the meta itself.
FINISHED_LUA = """
local FINISHED = {""" + ", ".join(f"{state}=true" for state in sorted(FINISHED_STATES)) + """}
local function finished_meta(key)
  local meta = redis.call('GET', key)
  if meta then
    local ok, decoded = pcall(cjson.decode, meta)
    local status = ok and type(decoded) == 'table' and decoded['status'] or nil
    if status and FINISHED[status] then return true, meta end
  end
  return false, meta
end
"""
START_LUA = FINISHED_LUA + """
local function start_check(KEYS, ARGV)
  local record = redis.call('HMGET', KEYS[1], 'type', 'cancelled', 'started', 'runs')
  if not record[1] then return {'unrecorded', 0} end
  local finished, meta = finished_meta(KEYS[3])
  if finished then return {'finished', 0} end
  if record[2] == '1' then return {'cancelled', 0} end
  local holder = redis.call('GET', KEYS[2])
  if holder and holder ~= ARGV[5] then return {'held', 0} end
  local started = record[3]
  if not started and ARGV[2] ~= '' and tonumber(ARGV[1]) > tonumber(ARGV[2]) then return {'expired', 0} end
  local lost = tonumber(record[4] or '0')
  if lost >= tonumber(ARGV[3]) then return {'lost', lost} end
  redis.call('SET', KEYS[2], ARGV[5], 'EX', ARGV[4])
  if started then
    redis.call('HSET', KEYS[1], 'runs', lost + 1)
  else
    redis.call('HSET', KEYS[1], 'runs', lost + 1, 'started', ARGV[1])
  end
  -- What an earlier attempt left (retrying, its progress) no longer describes this one: with no meta, the
  -- record's `started` and the lease say it runs (jobs/status.py).
  if meta then redis.call('DEL', KEYS[3]) end
  return {'run', lost}
end
"""
START_SCRIPT = START_LUA + "return start_check(KEYS, ARGV)\n"

# KEYS: record, lease. ARGV: this attempt's lease holder. The attempt ended: its count and its lease go.
END_LUA = """
local function attempt_ended(record, lease, holder)
  redis.call('HDEL', record, 'runs')
  if redis.call('GET', lease) == holder then redis.call('DEL', lease) end
end
"""
END_SCRIPT = END_LUA + "attempt_ended(KEYS[1], KEYS[2], ARGV[1])\n"
