/**
 * The Lua scripts that make each step one atomic operation on the server, so that no
 * crash between two commands leaves a half-done step behind.
 */
import { createHash } from 'node:crypto';
import type { Conn } from './connection.ts';
import { GROUP } from './keys.ts';

export interface Script {
  readonly source: string;
  readonly sha: string;
}

function script(source: string): Script {
  return { source, sha: createHash('sha1').update(source).digest('hex') };
}

/**
 * A client's publish. KEYS: the stream, the service's config, the deduplication key.
 * ARGV: deduplicate (1/0), a session's stream (1/0), the size, then the entry's fields.
 * Refuses when no worker ever wrote the config (`NOSTREAM`) or the message is over its
 * maxPayload (`MAXPAYLOAD <limit>`); returns 0 for a second publish of one key within
 * the window; trims what is older than maxAgeMs; a session's stream gets the group its
 * worker reads (created at 0, so nothing written before it is missed) and a time to live.
 */
export const PUBLISH = script(`
local cfg = redis.call('HMGET', KEYS[2], 'dedupWindowMs', 'maxAgeMs', 'sessionIdleMs', 'maxPayload')
if not cfg[1] then return redis.error_reply('NOSTREAM no worker of this service has started') end
if tonumber(ARGV[3]) > tonumber(cfg[4]) then return redis.error_reply('MAXPAYLOAD ' .. cfg[4]) end
if ARGV[1] == '1' and not redis.call('SET', KEYS[3], '1', 'NX', 'PX', cfg[1]) then return 0 end
if ARGV[2] == '1' and redis.call('EXISTS', KEYS[1]) == 0 then redis.call('XGROUP', 'CREATE', KEYS[1], '${GROUP}', '0', 'MKSTREAM') end
local t = redis.call('TIME')
local minid = math.max(0, tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - tonumber(cfg[2]))
redis.call('XADD', KEYS[1], 'MINID', '~', string.format('%d', minid), '*', unpack(ARGV, 4))
if ARGV[2] == '1' then redis.call('PEXPIRE', KEYS[1], cfg[3]) end
return 1
`);

/** A worker's answer: published to the client's channel, then the request acknowledged and deleted. KEYS: the stream. ARGV: channel, payload, entry id. */
export const ANSWER = script(`
local n = redis.call('PUBLISH', ARGV[1], ARGV[2])
redis.call('XACK', KEYS[1], '${GROUP}', ARGV[3])
redis.call('XDEL', KEYS[1], ARGV[3])
return n
`);

/**
 * Keeps a worker's entries from being claimed: resets their idle time, but only of those
 * it still owns (another worker may have claimed one whose keep-alive came late). KEYS:
 * the stream. ARGV: the consumer, then entry ids.
 */
export const KEEP_ALIVE = script(`
local kept = 0
for i = 2, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], '${GROUP}', ARGV[i], ARGV[i], 1, ARGV[1])
  if #p > 0 then
    redis.call('XCLAIM', KEYS[1], '${GROUP}', ARGV[1], 0, ARGV[i], 'JUSTID')
    kept = kept + 1
  end
end
return kept
`);

export async function run(conn: Conn, s: Script, keys: string[], args: Array<string | Buffer>): Promise<unknown> {
  try {
    return await conn.sendCommand(['EVALSHA', s.sha, String(keys.length), ...keys, ...args]);
  } catch (error) {
    if (!/NOSCRIPT/.test((error as Error).message)) throw error;
    return await conn.sendCommand(['EVAL', s.source, String(keys.length), ...keys, ...args]);
  }
}
