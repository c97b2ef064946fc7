"""Lua scripts that make every queue transition atomic.

They use only commands that exist in Redis 5.0 (the Windows ports). Each script that changes a job's status also
appends the change to the capped event stream, so the stream and the hashes never disagree. Status hashes are
`job:status:{id}` (the seed's key); the script builds that key from the id, which is fine on a single server.

Every write is safe to repeat: a script whose reply was lost on a dropped connection is sent again by the
connection layer, and a second run must not change the outcome (enqueue checks the id, claim checks the token,
finish/fail accept a repeat from the same token).
"""

from __future__ import annotations

__all__ = ["CANCEL", "CLAIM", "DEAD_LETTER", "ENQUEUE", "FAIL", "FINISH", "FINISH_AND_CLAIM", "HEARTBEAT",
           "INTAKE_MOVE", "PROGRESS", "REAP", "REQUEUE", "RETRY"]

# KEYS and ARGV conventions shared by the scripts below are spelled out at each script.
PRELUDE = """
local STATUS_PREFIX = 'job:status:'
local function emit(stream, maxlen, id, key)
  local h = redis.call('HMGET', key, 'status', 'progress', 'message', 'image_url', 'error', 'updated_at',
                       'attempts', 'seed_used', 'node_errors', 'backend')
  redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 'job_id', id, 'status', h[1] or '', 'progress', h[2] or '0',
             'message', h[3] or '', 'image_url', h[4] or '', 'error', h[5] or '', 'updated_at', h[6] or '',
             'attempts', h[7] or '0', 'seed_used', h[8] or '', 'node_errors', h[9] or '', 'backend', h[10] or '')
end
local function finalize(key, ttl)
  redis.call('EXPIRE', key, ttl)
  -- The ended job's record outlives the TTL in the history's inbox, filed by queue/history.py.
  redis.call('HSET', 'cs:history:inbox', string.sub(key, #STATUS_PREFIX + 1), cjson.encode(redis.call('HGETALL', key)))
end
"""

# KEYS: status, pending, index, wake, events, seq, source_list, dead
# ARGV: id, spec, priority, now_iso, created_ms, maxlen, source_entry, duplicate_dead_json, dead_max
# With a source entry (an intake entry in cs:intake:processing, or a dead letter being requeued), the entry is
# removed in the same step; if it is gone already another process handled it (-1). A job id that exists already
# returns 0, and with `duplicate_dead_json` the entry becomes a dead letter instead of vanishing.
ENQUEUE = PRELUDE + """
if ARGV[7] ~= '' and redis.call('LREM', KEYS[7], 1, ARGV[7]) == 0 then return -1 end
if redis.call('EXISTS', KEYS[1]) == 1 then
  if ARGV[8] ~= '' then
    redis.call('RPUSH', KEYS[8], ARGV[8])
    redis.call('LTRIM', KEYS[8], -tonumber(ARGV[9]), -1)
  end
  return 0
end
local seq = redis.call('INCR', KEYS[6])
local score = string.format('%.0f', (100 - tonumber(ARGV[3])) * 1e12 + seq)
redis.call('HSET', KEYS[1], 'job_id', ARGV[1], 'status', 'queued', 'progress', '0', 'image_url', '', 'error', '',
           'updated_at', ARGV[4], 'created_at', ARGV[4], 'spec', ARGV[2], 'attempts', '0', 'message', '',
           'score', score)
redis.call('ZADD', KEYS[2], score, ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[5], ARGV[1])
redis.call('RPUSH', KEYS[4], '1')
redis.call('LTRIM', KEYS[4], -64, -1)
emit(KEYS[5], ARGV[6], ARGV[1], KEYS[1])
return 1
"""

# The claim, as a function so FINISH_AND_CLAIM can run it after a finish in the same atomic step.
# Returns {id, spec, attempts, progress} or false. A repeated call with the same token returns the same job.
# Progress is kept from an earlier attempt (it never goes backwards on the same job); a retried job says so.
_CLAIM_FN = """
local function claim(pending, leases, tokens, events, token, deadline, now, worker, maxlen)
  local held = redis.call('HGET', tokens, token)
  if held then
    local key = STATUS_PREFIX .. held
    local h = redis.call('HMGET', key, 'spec', 'attempts', 'progress')
    return {held, h[1], h[2], h[3]}
  end
  -- The queue-level pause (queue_pause.PAUSE_KEY) holds every claim, in the same step as the claim itself.
  if redis.call('EXISTS', 'cs:queue_pause') == 1 then return false end
  while true do
    local ids = redis.call('ZRANGE', pending, 0, 0)
    if #ids == 0 then return false end
    local id = ids[1]
    redis.call('ZREM', pending, id)
    local key = STATUS_PREFIX .. id
    if redis.call('HGET', key, 'status') == 'queued' then
      local attempts = tonumber(redis.call('HGET', key, 'attempts') or '0') or 0
      local message = 'claimed by a worker'
      if attempts > 0 then message = 'retrying (attempt ' .. (attempts + 1) .. ')' end
      redis.call('HSET', key, 'status', 'processing', 'lease_token', token, 'worker', worker, 'started_at', now,
                 'updated_at', now, 'message', message)
      redis.call('ZADD', leases, deadline, id)
      redis.call('HSET', tokens, token, id)
      emit(events, maxlen, id, key)
      local h = redis.call('HMGET', key, 'spec', 'attempts', 'progress')
      return {id, h[1], h[2], h[3]}
    end
    -- A pending entry whose job is no longer queued (cancelled, expired) is dropped here.
  end
end
"""

# KEYS: pending, leases, tokens, events
# ARGV: token, deadline_ms, now_iso, worker_id, maxlen
CLAIM = PRELUDE + _CLAIM_FN + """
return claim(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5])
"""

_LEASE_CHECK = """
local key = STATUS_PREFIX .. ARGV[1]
local h = redis.call('HMGET', key, 'status', 'lease_token')
if h[2] ~= ARGV[2] then return 'lost' end
if h[1] == 'cancelled' then return 'cancelled' end
if h[1] ~= 'processing' then return 'lost' end
"""

# KEYS: leases; ARGV: id, token, deadline_ms
HEARTBEAT = PRELUDE + _LEASE_CHECK + """
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 'lost' end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
return 'ok'
"""

# KEYS: events; ARGV: id, token, progress, message, now_iso, maxlen, then field/value pairs to store
PROGRESS = PRELUDE + _LEASE_CHECK + """
local old = tonumber(redis.call('HGET', key, 'progress') or '0') or 0
local new = math.max(old, tonumber(ARGV[3]) or 0)
local old_message = redis.call('HGET', key, 'message')
redis.call('HSET', key, 'progress', tostring(new), 'message', ARGV[4], 'updated_at', ARGV[5])
for i = 7, #ARGV, 2 do redis.call('HSET', key, ARGV[i], ARGV[i + 1]) end
if new ~= old or old_message ~= ARGV[4] then emit(KEYS[1], ARGV[6], ARGV[1], key) end
return 'ok'
"""

_REPEAT_OK = """
local key = STATUS_PREFIX .. ARGV[1]
local h0 = redis.call('HMGET', key, 'status', 'lease_token')
if h0[1] == '%s' and h0[2] == ARGV[2] then return 'ok' end
"""

# KEYS: leases, tokens, events; ARGV: id, token, image_url, outputs_json, now_iso, maxlen, ttl, from_cache (0|1),
# output_location (the JSON of outputs/location.py, '' when unknown)
_FINISH_BODY = (_REPEAT_OK % "finished") + _LEASE_CHECK + """
-- A result reused from the result cache says so on the record and in its message.
local done_message = ''
if from_cache == '1' then done_message = 'from cache' end
redis.call('HSET', key, 'status', 'finished', 'progress', '100', 'image_url', ARGV[3], 'outputs', ARGV[4],
           'updated_at', ARGV[5], 'finished_at', ARGV[5], 'message', done_message, 'error', '',
           'from_cache', from_cache, 'output_location', location)
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[2])
finalize(key, ARGV[7])
emit(KEYS[3], ARGV[6], ARGV[1], key)
return 'ok'
"""
FINISH = PRELUDE + "local from_cache = ARGV[8] or '0'\nlocal location = ARGV[9] or ''\n" + _FINISH_BODY

# Finish one job and claim the next in one round trip (one fsync instead of two for a busy worker).
# KEYS: leases, tokens, events, pending; ARGV: as FINISH, then next_token, next_deadline_ms, worker_id
# Returns {finish_state, next_id, next_spec, next_attempts, next_progress} (false when nothing is pending).
FINISH_AND_CLAIM = PRELUDE + _CLAIM_FN + """
local from_cache = '0'
local location = ''
local function finish()
""" + _FINISH_BODY + """
end
local state = finish()
local nxt = claim(KEYS[4], KEYS[1], KEYS[2], KEYS[3], ARGV[8], ARGV[9], ARGV[5], ARGV[10], ARGV[6])
if not nxt then return {state, false, false, false, false} end
return {state, nxt[1], nxt[2], nxt[3], nxt[4]}
"""

# KEYS: leases, tokens, events; ARGV: id, token, error, node_errors, now_iso, maxlen, ttl, count_attempt (0|1)
FAIL = PRELUDE + (_REPEAT_OK % "failed") + _LEASE_CHECK + """
redis.call('HSET', key, 'status', 'failed', 'error', ARGV[3], 'node_errors', ARGV[4], 'updated_at', ARGV[5],
           'finished_at', ARGV[5], 'message', '')
if ARGV[8] == '1' then
  local attempts = tonumber(redis.call('HGET', key, 'attempts') or '0') or 0
  redis.call('HSET', key, 'attempts', tostring(attempts + 1))
end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[2])
finalize(key, ARGV[7])
emit(KEYS[3], ARGV[6], ARGV[1], key)
return 'ok'
"""

# Return a leased job to pending (or quarantine it). Shared by REQUEUE and REAP.
_BACK_TO_PENDING = """
local function back_to_pending(id, token, reason, counted, max_attempts, now, maxlen, ttl)
  local key = STATUS_PREFIX .. id
  redis.call('ZREM', KEYS[1], id)
  redis.call('HDEL', KEYS[2], token)
  local attempts = (tonumber(redis.call('HGET', key, 'attempts') or '0') or 0) + counted
  redis.call('HSET', key, 'attempts', tostring(attempts), 'updated_at', now, 'last_error', reason)
  if counted > 0 and attempts >= max_attempts then
    redis.call('HSET', key, 'status', 'failed', 'message', '', 'finished_at', now,
               'error', 'quarantined after ' .. attempts .. ' attempts: ' .. reason)
    finalize(key, ttl)
    emit(KEYS[3], maxlen, id, key)
    return 'quarantined'
  end
  -- Progress stays where the last attempt got to: the next run shows progress only once it passes it.
  local message = reason
  if counted > 0 then message = 'retrying (attempt ' .. (attempts + 1) .. '): ' .. reason end
  redis.call('HSET', key, 'status', 'queued', 'message', message)
  redis.call('ZADD', KEYS[4], redis.call('HGET', key, 'score'), id)
  redis.call('RPUSH', KEYS[5], '1')
  redis.call('LTRIM', KEYS[5], -64, -1)
  emit(KEYS[3], maxlen, id, key)
  return 'requeued'
end
"""

# KEYS: leases, tokens, events, pending, wake
# ARGV: id, token, reason, counted (0|1), max_attempts, now_iso, maxlen, ttl
REQUEUE = PRELUDE + _BACK_TO_PENDING + """
local key = STATUS_PREFIX .. ARGV[1]
local h = redis.call('HMGET', key, 'status', 'lease_token')
if h[2] ~= ARGV[2] then return 'lost' end
if h[1] == 'cancelled' then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[2])
  return 'cancelled'
end
if h[1] ~= 'processing' then return 'lost' end
return back_to_pending(ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6], ARGV[7], ARGV[8])
"""

# KEYS: leases, tokens, events, pending, wake; ARGV: now_ms, max_attempts, now_iso, maxlen, ttl
# Returns a flat list: id1, outcome1, id2, outcome2, ...
REAP = PRELUDE + _BACK_TO_PENDING + """
local out = {}
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 100)
for _, id in ipairs(ids) do
  local key = STATUS_PREFIX .. id
  local h = redis.call('HMGET', key, 'status', 'lease_token', 'last_error')
  if h[1] == 'processing' then
    local reason = 'worker stopped responding (lease expired)'
    table.insert(out, id)
    table.insert(out, back_to_pending(id, h[2] or '', reason, 1, tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5]))
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
return out
"""

# KEYS: pending, leases, tokens, events; ARGV: id, now_iso, maxlen, ttl
CANCEL = PRELUDE + """
local key = STATUS_PREFIX .. ARGV[1]
local h = redis.call('HMGET', key, 'status', 'lease_token')
if not h[1] then return 'not_found' end
if h[1] == 'queued' then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('HSET', key, 'status', 'cancelled', 'message', '', 'updated_at', ARGV[2], 'finished_at', ARGV[2])
  finalize(key, ARGV[4])
  emit(KEYS[4], ARGV[3], ARGV[1], key)
  return 'cancelled'
end
if h[1] == 'processing' then
  -- The lease token stays so the worker's next heartbeat or progress call answers 'cancelled'.
  redis.call('ZREM', KEYS[2], ARGV[1])
  if h[2] then redis.call('HDEL', KEYS[3], h[2]) end
  redis.call('HSET', key, 'status', 'cancelled', 'message', 'cancelling', 'updated_at', ARGV[2], 'finished_at', ARGV[2])
  finalize(key, ARGV[4])
  emit(KEYS[4], ARGV[3], ARGV[1], key)
  return 'cancelling'
end
return 'already_' .. h[1]
"""

# KEYS: pending, wake, events, seq; ARGV: id, now_iso, maxlen
RETRY = PRELUDE + """
local key = STATUS_PREFIX .. ARGV[1]
local st = redis.call('HGET', key, 'status')
if st ~= 'failed' and st ~= 'cancelled' then return 0 end
local seq = redis.call('INCR', KEYS[4])
local ok, spec = pcall(cjson.decode, redis.call('HGET', key, 'spec') or '')
local priority = 0
if ok and type(spec) == 'table' then priority = tonumber(spec['priority']) or 0 end
priority = tonumber(redis.call('HGET', key, 'priority') or '') or priority  -- set by QueueOrder.set_priority
local score = string.format('%.0f', (100 - priority) * 1e12 + seq)
redis.call('PERSIST', key)
redis.call('HDEL', key, 'lease_token', 'finished_at', 'node_errors', 'outputs', 'last_error')
redis.call('HSET', key, 'status', 'queued', 'progress', '0', 'error', '', 'image_url', '', 'message', 'retry',
           'attempts', '0', 'updated_at', ARGV[2], 'score', score, 'rerun_required', '1')
redis.call('ZADD', KEYS[1], score, ARGV[1])
redis.call('RPUSH', KEYS[2], '1')
redis.call('LTRIM', KEYS[2], -64, -1)
emit(KEYS[3], ARGV[3], ARGV[1], key)
return 1
"""

# Move one seed-format entry from the left of `comfy_jobs` to the processing list, tagged with a sequence
# number so that a job id derived from it is the same if the entry is processed twice.
# KEYS: comfy_jobs, intake_processing, intake_seq. Returns the tagged entry or false.
INTAKE_MOVE = """
local raw = redis.call('LPOP', KEYS[1])
if not raw then return false end
local entry = redis.call('INCR', KEYS[3]) .. '\\n' .. raw
redis.call('RPUSH', KEYS[2], entry)
return entry
"""

# KEYS: source_list (intake processing, or the dead list itself for a requeue that failed again), dead
# ARGV: entry, dead_json, dead_max. Moves a bad entry to the capped dead-letter list once.
DEAD_LETTER = """
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 1 then
  redis.call('RPUSH', KEYS[2], ARGV[2])
  redis.call('LTRIM', KEYS[2], -tonumber(ARGV[3]), -1)
  return 1
end
return 0
"""
