"""The Lua of the HTTP worker API, each one atomic step on Redis (gateway/workers/leasing.py runs them).

Keys are those of jobs/keys.py. An HTTP worker's lease is the job's lease key (`gw:lease:<uuid>`), held
by `http:<worker>|<token>`, and the task record keeps who holds it: `http_token`, `http_worker` (the
holder's prefix), `http_tag` (the kombu delivery tag), `http_queue`, `http_since` (when it was leased),
`http_deadline` (that + the type's time limit) and, once it ended, `http_done` (the token whose lease
ended) and `http_end` (how: `finished` by that token, whose repeated finish is answered again, or
`cancelled` / `timed_out`, which every later call of that token is told).
"""
from __future__ import annotations

from jobs import attempts, stats

# On the broker. KEYS: queue, kombu's unacked hash, its index, the HTTP workers seen. ARGV: the delivery's
# score (`due_score`), the worker's "<name>|<queue>", now. Notes that the worker asked. Takes the message at the
# consuming end of the queue and records it as a delivery in `unacked`, as kombu's QoS.append does
# (tasks/delivery/transport.py), in one step: nothing is ever only in the gateway's hands. Returns
# {tag, message}, false when the queue is empty, {'', message} for something that is not a kombu message
# (put back at the far end, untouched).
TAKE = """
redis.call('HSET', KEYS[4], ARGV[2], ARGV[3])
local raw = redis.call('RPOP', KEYS[1])
if not raw then return false end
local ok, message = pcall(cjson.decode, raw)
local properties = ok and type(message) == 'table' and message['properties'] or nil
local tag = type(properties) == 'table' and properties['delivery_tag'] or nil
if type(tag) ~= 'string' then
  redis.call('LPUSH', KEYS[1], raw)
  return {'', raw}
end
local info = properties['delivery_info']
local exchange, routing_key = '', KEYS[1]
if type(info) == 'table' then
  if type(info['exchange']) == 'string' then exchange = info['exchange'] end
  if type(info['routing_key']) == 'string' then routing_key = info['routing_key'] end
end
redis.call('HSET', KEYS[2], tag, '[' .. raw .. ',' .. cjson.encode(exchange) .. ',' .. cjson.encode(routing_key) .. ']')
redis.call('ZADD', KEYS[3], ARGV[1], tag)
return {tag, raw}
"""

# On the broker. KEYS: queue, unacked, its index. ARGV: tag, message. A delivery an HTTP worker cannot
# run (a message of no job type) goes back to the far end of its queue for a Celery worker.
PUT_BACK = """
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('LPUSH', KEYS[1], ARGV[2])
"""

# On the broker. KEYS: unacked, its index. ARGV: tag. The delivery ended: kombu's acknowledgement.
ACK = """
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
"""

# On the task store. The start check of jobs/attempts.py; when the job is to run, the record names the
# HTTP lease. KEYS: record, lease, meta. ARGV: the start check's five, then token, holder prefix, tag,
# deadline, queue.
START = attempts.START_LUA + """
local verdict = start_check(KEYS, ARGV)
if verdict[1] == 'run' then
  redis.call('HSET', KEYS[1], 'http_token', ARGV[6], 'http_worker', ARGV[7], 'http_tag', ARGV[8],
             'http_deadline', ARGV[9], 'http_since', ARGV[1], 'http_queue', ARGV[10])
end
return verdict
"""

# Whose lease it is, for a call carrying `token` (ARGV[1]) at `now` (ARGV[2]); sets `holder` (its lease
# key's value), `prefix` (`http:<worker>`), `tag` (the delivery) and `queue`.
# The answers: 'gone' (no record), 'finished' (this token finished it; 'cancelled' or 'timed_out' when its
# lease ended so), 'stale' (another token's lease),
# 'lapsed' (this token's lease expired), 'cancelled', 'timed_out' (past the type's time limit), or nil:
# the lease is this token's.
LEASE_CHECK = """
local holder, prefix, tag, queue
local function lease_check(KEYS, token, now)
  local record = redis.call('HMGET', KEYS[1], 'type', 'http_token', 'http_worker', 'http_done', 'cancelled',
                            'http_tag', 'http_deadline', 'http_end', 'http_queue')
  if not record[1] then return 'gone' end
  if record[4] == token then return record[8] or 'finished' end
  if record[2] ~= token then return 'stale' end
  prefix, tag, queue = record[3], record[6], record[9]
  holder = prefix .. '|' .. token
  if redis.call('GET', KEYS[2]) ~= holder then return 'lapsed' end
  if record[5] == '1' then return 'cancelled' end
  if tonumber(now) > tonumber(record[7]) then return 'timed_out' end
  return nil
end
"""

# On the task store. KEYS: record, lease, meta. ARGV: token, now, lease (s), progress meta ("" none), meta
# TTL. Extends the lease; stores the progress as Celery's PROGRESS state. Returns {'ok', tag, queue,
# holder prefix} or {problem}.
HEARTBEAT = LEASE_CHECK + """
local problem = lease_check(KEYS, ARGV[1], ARGV[2])
if problem then return {problem} end
redis.call('SET', KEYS[2], holder, 'EX', ARGV[3])
if ARGV[4] ~= '' then
  redis.call('SET', KEYS[3], ARGV[4], 'EX', ARGV[5])
  redis.call('PUBLISH', KEYS[3], ARGV[4])
end
return {'ok', tag, queue or '', prefix}
"""

# On the task store. Ends a job: its outcome in Celery's meta (never over a finished one), the attempt
# ended (jobs/attempts.py), the outcome counted, the task off its owner's unfinished set, then
# `commands` (its webhook message and Celery events, and the broker's acknowledgement when the broker is
# this Redis), all or nothing.
# KEYS: record, lease, meta, stats total, stats hour, open set, timings. ARGV: token ("": a verdict of the
# start check, no lease to check), now, meta, meta TTL, stats field, uuid, commands (JSON), '1' to refuse a
# cancelled or timed-out job (the caller then ends it so), hour TTL to set ('0' none), the timing
# histograms' increments (JSON [[field, n]...], jobs/timings.py).
# Returns {'ok'} or {problem} (LEASE_CHECK's, or 'ended': its meta already says it finished).
END = attempts.FINISHED_LUA + attempts.END_LUA + LEASE_CHECK + """
local problem
if ARGV[1] ~= '' then
  problem = lease_check(KEYS, ARGV[1], ARGV[2])
  if problem and not (ARGV[8] ~= '1' and (problem == 'cancelled' or problem == 'timed_out')) then
    return {problem}
  end
end
if finished_meta(KEYS[3]) then return {'ended'} end
if ARGV[1] ~= '' then redis.call('HSET', KEYS[1], 'http_done', ARGV[1], 'http_end', problem or 'finished') end
redis.call('SET', KEYS[3], ARGV[3], 'EX', ARGV[4])
redis.call('PUBLISH', KEYS[3], ARGV[3])
attempt_ended(KEYS[1], KEYS[2], holder or '')
redis.call('ZREM', KEYS[6], ARGV[6])
""" + stats.lua_increment("KEYS[4]", "KEYS[5]", "ARGV[5]", "ARGV[4]", expire_when="ARGV[9] ~= '0'") + """
for _, increment in ipairs(cjson.decode(ARGV[10])) do
  redis.call('HINCRBY', KEYS[7], increment[1], increment[2])
end
for _, command in ipairs(cjson.decode(ARGV[7])) do
  redis.call(command[1], unpack(command[2]))
end
return {'ok'}
"""
