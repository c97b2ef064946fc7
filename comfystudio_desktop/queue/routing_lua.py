"""The model-aware claim, in Lua (Redis 5.0 commands only).

Backend keys (`B` = `cs:backend:`): `B{name}` hash (state, loaded_model, current_job, jobs_done, VRAM ...),
`B{name}:models` and `B{name}:workflows` sets (what its ComfyUI has; they expire when the backend stops
refreshing them, so a dead backend is not offered jobs), `cs:backends` (every name seen), `cs:backends:disabled`.

A job's model and workflow are read from its spec once and kept on its hash (`route_model`, `route_workflow`).
"""

from __future__ import annotations

from comfystudio_desktop.queue.lua_scripts import PRELUDE

__all__ = ["ROUTED_CLAIM"]

# KEYS: pending, leases, tokens, events
# ARGV: token, deadline_ms, now_iso, worker_id, maxlen, backend, window, now_ms, prefer_ms
# Returns {id, spec, attempts, progress} or false.
# Scans the first `window` pending jobs in queue order and claims the first one this backend can run. A job
# whose model another live backend has loaded (its last job used it) waits `prefer_ms` for that backend before
# this one takes it. A job no live backend can run gets the message "no backend has model X" (once).
ROUTED_CLAIM = PRELUDE + """
local B = 'cs:backend:'
local DISABLED = 'cs:backends:disabled'
local pending, leases, tokens, events = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local token, deadline, now, worker, maxlen = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local backend, window, now_ms, prefer_ms = ARGV[6], tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])

local held = redis.call('HGET', tokens, token)
if held then
  local h = redis.call('HMGET', STATUS_PREFIX .. held, 'spec', 'attempts', 'progress')
  return {held, h[1], h[2], h[3]}
end
-- A disabled or down backend claims nothing, but still looks: a job no live backend can run must say so. The
-- queue-level pause (queue_pause.PAUSE_KEY) holds every claim, in the same step as the claim itself.
local may_claim = redis.call('SISMEMBER', DISABLED, backend) == 0
                  and redis.call('EXISTS', B .. backend .. ':models') == 1
                  and redis.call('EXISTS', 'cs:queue_pause') == 0

local function can_run(name, model, flow)
  if model ~= '' and redis.call('SISMEMBER', B .. name .. ':models', model) == 0 then return false end
  if flow ~= '' and redis.call('EXISTS', B .. name .. ':workflows') == 1
     and redis.call('SISMEMBER', B .. name .. ':workflows', flow) == 0 then return false end
  return true
end
local function live(name)
  return redis.call('EXISTS', B .. name .. ':models') == 1 and redis.call('SISMEMBER', DISABLED, name) == 0
end
local others = redis.call('SMEMBERS', 'cs:backends')
local my_loaded = redis.call('HGET', B .. backend, 'loaded_model') or ''

local function loaded_elsewhere(model)
  for _, other in ipairs(others) do
    if other ~= backend and live(other) and redis.call('HGET', B .. other, 'loaded_model') == model
       and can_run(other, model, '') then return true end
  end
  return false
end
local function say(key, id, note)
  if redis.call('HGET', key, 'message') ~= note then
    redis.call('HSET', key, 'message', note)
    emit(events, maxlen, id, key)
  end
end

for _, id in ipairs(redis.call('ZRANGE', pending, 0, window - 1)) do
  local key = STATUS_PREFIX .. id
  local h = redis.call('HMGET', key, 'status', 'route_model', 'route_workflow', 'offered_ms')
  if h[1] ~= 'queued' then
    redis.call('ZREM', pending, id)  -- cancelled or expired meanwhile
  else
    local model, flow = h[2], h[3]
    if not model then
      model, flow = '', ''
      local ok, spec = pcall(cjson.decode, redis.call('HGET', key, 'spec') or '')
      if ok and type(spec) == 'table' then
        if type(spec['model']) == 'string' then model = string.gsub(spec['model'], '\\\\', '/') end
        if type(spec['workflow']) == 'string' then flow = spec['workflow'] end
      end
      redis.call('HSET', key, 'route_model', model, 'route_workflow', flow)
    end
    if may_claim and can_run(backend, model, flow) then
      local wait = false
      if model ~= '' and model ~= my_loaded and prefer_ms > 0 then
        local offered = tonumber(h[4] or '')
        if not offered then
          offered = now_ms
          redis.call('HSET', key, 'offered_ms', tostring(now_ms))
        end
        wait = now_ms - offered < prefer_ms and loaded_elsewhere(model)
      end
      if not wait then
        redis.call('ZREM', pending, id)
        local attempts = tonumber(redis.call('HGET', key, 'attempts') or '0') or 0
        local message = 'claimed by ' .. backend
        if attempts > 0 then message = 'retrying (attempt ' .. (attempts + 1) .. ') on ' .. backend end
        redis.call('HSET', key, 'status', 'processing', 'lease_token', token, 'worker', worker, 'started_at', now,
                   'updated_at', now, 'message', message, 'backend', backend)
        redis.call('ZADD', leases, deadline, id)
        redis.call('HSET', tokens, token, id)
        redis.call('HSET', B .. backend, 'current_job', id, 'loaded_model', model)
        emit(events, maxlen, id, key)
        local r = redis.call('HMGET', key, 'spec', 'attempts', 'progress')
        return {id, r[1], r[2], r[3]}
      end
    else
      local anyone = false
      for _, other in ipairs(others) do
        if live(other) and can_run(other, model, flow) then
          anyone = true
          break
        end
      end
      if not anyone then
        if model ~= '' and not (function()
              for _, other in ipairs(others) do
                if live(other) and can_run(other, model, '') then return true end
              end
              return false
            end)() then
          say(key, id, 'no backend has model ' .. model)
        else
          say(key, id, 'no backend has the nodes of workflow ' .. flow)
        end
      end
    end
  end
end
return false
"""
