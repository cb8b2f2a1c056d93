// The Lua scripts behind the Redis sink's fencing (see the Fencing section of
// include/weir/connectors/redis.h).
//
// The fence is a hash: one field per sink subtask (worker index), holding the
// epoch of the newest writer of that subtask.

#ifndef WEIR_LIB_CONNECTORS_REDIS_SCRIPTS_H_
#define WEIR_LIB_CONNECTORS_REDIS_SCRIPTS_H_

namespace weir::redis::internal {

// Takes a new epoch for subtask ARGV[1] of a sink running with parallelism
// ARGV[2]: HINCRBY of its field; also bumps the fields of subtasks the new
// parallelism no longer has (j >= p with j % p == ARGV[1]), so writers of a
// larger, older run are fenced too. Returns the new epoch. KEYS[1]: the fence
// hash.
inline constexpr char kTakeEpochScript[] = R"lua(
local epoch = redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
local me = tonumber(ARGV[1])
local p = tonumber(ARGV[2])
for _, field in ipairs(redis.call('HKEYS', KEYS[1])) do
  local j = tonumber(field)
  if j ~= nil and j >= p and j % p == me then redis.call('HINCRBY', KEYS[1], field, 1) end
end
return epoch
)lua";

// Applies one batch if the writer still owns its subtask. KEYS[1]: the fence
// hash; ARGV[1]: the field (subtask); ARGV[2]: the writer's epoch; then, for
// each command, its argument count and its arguments. A newer epoch in the
// fence -> error WEIRFENCED, nothing applied. An older or missing one (Redis
// lost its data) is raised to the writer's, so epochs only grow. Runs
// atomically: no other client's command interleaves with a batch.
inline constexpr char kFencedWriteScript[] = R"lua(
local current = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
local mine = tonumber(ARGV[2])
if current > mine then
  return redis.error_reply('WEIRFENCED the fence holds epoch ' .. current .. ', newer than ' .. mine)
end
if current < mine then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
local i = 3
local n = #ARGV
while i <= n do
  local argc = tonumber(ARGV[i])
  redis.call(unpack(ARGV, i + 1, i + argc))
  i = i + 1 + argc
end
return n
)lua";

}  // namespace weir::redis::internal

#endif  // WEIR_LIB_CONNECTORS_REDIS_SCRIPTS_H_
