// The Lua scripts behind the Redis sink's fencing (see the Fencing section of
// include/weir/connectors/redis.h).
//
// The fence is a hash with two fields per sink subtask (worker index) w:
// "<w>" holds the epoch of the newest writer of that subtask, "<w>:seq" the
// sequence number of the last batch that writer applied. A field "replay"
// marks a loss of Redis's data whose repair (a replay of every key's
// current value) has not completed yet.
//
#ifndef WEIR_LIB_CONNECTORS_REDIS_SCRIPTS_H_
#define WEIR_LIB_CONNECTORS_REDIS_SCRIPTS_H_

namespace weir::redis::internal {

// Takes a new epoch for subtask ARGV[1] of a sink running with parallelism
// ARGV[2]: HINCRBY of its field, and its batch sequence back to 0; also
// bumps the fields of subtasks the new parallelism no longer has (j >= p
// with j % p == ARGV[1]), so writers of a larger, older run are fenced too.
// ARGV[3] is "1" when the run restored the sink from a checkpoint: its
// earlier run wrote, so a missing fence means that Redis lost its data.
// Returns {the new epoch, what the fence says}: 0 nothing to do, 1 Redis
// lost its data (the fence is marked: field "replay"), 2 a replay that an
// earlier run began has not completed (the mark is still there).
// KEYS[1]: the fence hash.
inline constexpr char kTakeEpochScript[] = R"lua(
local existed = redis.call('EXISTS', KEYS[1]) == 1
local state = 0
if redis.call('HEXISTS', KEYS[1], 'replay') == 1 then
  state = 2
elseif not existed and ARGV[3] == '1' then
  redis.call('HSET', KEYS[1], 'replay', '1')
  state = 1
end
local epoch = redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('HSET', KEYS[1], ARGV[1] .. ':seq', 0)
local me = tonumber(ARGV[1])
local p = tonumber(ARGV[2])
for _, field in ipairs(redis.call('HKEYS', KEYS[1])) do
  local j = tonumber(field)
  if j ~= nil and j >= p and j % p == me then
    redis.call('HINCRBY', KEYS[1], field, 1)
    redis.call('HSET', KEYS[1], field .. ':seq', 0)
  end
end
return {epoch, state}
)lua";

// Applies one batch if the writer still owns its subtask and the batch is
// the next one in the writer's sequence. KEYS[1]: the fence hash; ARGV[1]:
// the field (subtask); ARGV[2]: the writer's epoch; ARGV[3]: the batch's
// sequence number (1, 2, ... per writer); then, for each command, its
// argument count and its arguments.
// - A newer epoch in the fence -> error WEIRFENCED, nothing applied.
// - The same epoch: a sequence at or below the last one applied -> nothing
//   applied, returns 0. Batches are applied strictly in sequence, so such a
//   batch was applied already: a resend whose first copy got through, or a
//   copy that a dropped connection delivered late, after newer batches
//   (applying it would put older absolute values back).
// - A sequence beyond the next one -> error WEIRSEQGAP, nothing applied:
//   the writer resends from its oldest unacknowledged batch, so this means
//   Redis lost batches it acknowledged (a failover, a restore).
// - An older or missing epoch, or no sequence: Redis lost its data (a
//   restart without persistence, a FLUSHALL, a failover to an empty
//   replica). The fence is raised to the writer's epoch and this batch's
//   sequence (epochs only grow), the batch is applied, and then the fence
//   is marked (field "replay", after the batch's commands, which may clear
//   an older mark). Returns -1 when this batch set the mark, -2 when it was
//   there already (another subtask found the loss first).
// - Otherwise the batch is applied; returns the number of ARGV items (> 0).
// Runs atomically: no other client's command interleaves with a batch.
inline constexpr char kFencedWriteScript[] = R"lua(
local current = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
local mine = tonumber(ARGV[2])
if current > mine then
  return redis.error_reply('WEIRFENCED the fence holds epoch ' .. current .. ', newer than ' .. mine)
end
local seq_field = ARGV[1] .. ':seq'
local seq = tonumber(ARGV[3])
local last = redis.call('HGET', KEYS[1], seq_field)
local lost = current < mine or not last
if not lost then
  last = tonumber(last)
  if seq <= last then return 0 end
  if seq > last + 1 then
    return redis.error_reply('WEIRSEQGAP batch ' .. seq .. ' of epoch ' .. mine ..
                             ' follows batch ' .. last)
  end
end
local marked = lost and redis.call('HEXISTS', KEYS[1], 'replay') == 1
if current < mine then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
redis.call('HSET', KEYS[1], seq_field, ARGV[3])
local i = 4
local n = #ARGV
while i <= n do
  local argc = tonumber(ARGV[i])
  redis.call(unpack(ARGV, i + 1, i + argc))
  i = i + 1 + argc
end
if lost then
  redis.call('HSET', KEYS[1], 'replay', '1')
  if marked then return -2 end
  return -1
end
return n
)lua";

}  // namespace weir::redis::internal

#endif  // WEIR_LIB_CONNECTORS_REDIS_SCRIPTS_H_
