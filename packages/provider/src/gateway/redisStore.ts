/**
 * The Redis `ReservationStore`: several gateway replicas of one provider share it, so none of them
 * accepts a nonce, or the same funds, that another already accepted. Every change is one Lua script
 * (Redis runs a script atomically). Amounts exceed Lua's 53-bit integers (18-decimal tokens), so
 * the scripts do exact arithmetic on decimal strings.
 */
import { Redis } from "ioredis";
import { randomBytes } from "node:crypto";
import type { CoverOutcome, LaneTotals, RequestReservation, ReservationStore } from "./interfaces";
import { fundsKey, nonceKey } from "./memoryStore";

/** Exact non-negative decimal-string arithmetic, in 7-digit limbs (each partial sum stays well under 2^53). */
const BIGNUM_LUA = `
local function limbs(s)
  local t = {}
  local i = #s
  while i >= 1 do
    local j = i - 6
    if j < 1 then j = 1 end
    t[#t + 1] = tonumber(string.sub(s, j, i))
    i = j - 1
  end
  return t
end
local function str(t)
  local n = #t
  while n > 1 and t[n] == 0 do n = n - 1 end
  local out = tostring(t[n])
  for k = n - 1, 1, -1 do out = out .. string.format('%07d', t[k]) end
  return out
end
local function cmp(a, b)
  a = string.gsub(a, '^0+(%d)', '%1')
  b = string.gsub(b, '^0+(%d)', '%1')
  if #a ~= #b then return #a < #b and -1 or 1 end
  if a == b then return 0 end
  return a < b and -1 or 1
end
local function add(a, b)
  local x, y, r, carry = limbs(a), limbs(b), {}, 0
  for k = 1, math.max(#x, #y) do
    local s = (x[k] or 0) + (y[k] or 0) + carry
    r[k] = s % 10000000
    carry = math.floor(s / 10000000)
  end
  if carry > 0 then r[#r + 1] = carry end
  return str(r)
end
-- a - b, or '0' when b >= a
local function sub(a, b)
  if cmp(a, b) <= 0 then return '0' end
  local x, y, r, borrow = limbs(a), limbs(b), {}, 0
  for k = 1, #x do
    local s = x[k] - (y[k] or 0) - borrow
    if s < 0 then s = s + 10000000; borrow = 1 else borrow = 0 end
    r[k] = s
  end
  return str(r)
end
local function max(a, b) if cmp(a, b) >= 0 then return a end return b end
`;

/**
 * KEYS: nonce, funds, [grant]. ARGV: amount, balance, nonce ttl seconds, hold ttl seconds, [grant
 * remaining]. Returns 0 reserved, 1 nonce used, 2 insufficient, 3 the grant's budget exceeded (with a
 * grant key). Every reserve renews the held keys' expiry (`holdTtlSeconds`).
 */
const RESERVE_REQUEST = `${BIGNUM_LUA}
if redis.call('EXISTS', KEYS[1]) == 1 then return 1 end
local held = redis.call('GET', KEYS[2]) or '0'
local after = add(held, ARGV[1])
if cmp(after, ARGV[2]) > 0 then return 2 end
local spent
if KEYS[3] then
  spent = add(redis.call('GET', KEYS[3]) or '0', ARGV[1])
  if cmp(spent, ARGV[5]) > 0 then return 3 end
end
redis.call('SET', KEYS[1], '1', 'EX', ARGV[3])
redis.call('SET', KEYS[2], after, 'EX', ARGV[4])
if KEYS[3] then redis.call('SET', KEYS[3], spent, 'EX', ARGV[4]) end
return 0`;

/** KEYS: funds, [nonce]. ARGV: amount. Drops the nonce when given, subtracts the amount (never below 0), keeps the expiry. */
const RELEASE = `${BIGNUM_LUA}
if KEYS[2] then redis.call('DEL', KEYS[2]) end
local left = sub(redis.call('GET', KEYS[1]) or '0', ARGV[1])
if left == '0' then redis.call('DEL', KEYS[1]) else redis.call('SET', KEYS[1], left, 'KEEPTTL') end
return 0`;

/**
 * KEYS: lane, funds, this replica's lane grant marker, [grant]. ARGV: cumulative, claimed,
 * balance, signer, hold ttl seconds, [grant remaining]. Returns {0, held, grant held, carried}
 * raised (owed lifted to claimed), {1, covered} stale, {2} insufficient, {3} the grant's budget
 * exceeded. Each replica has a marker per lane: "signer:cumulative" of its latest delegate raise of
 * the lane. The grant pool holds the excess over that cumulative when the marker names the signer
 * (this replica's claims hold the rest: carried 1), else the whole excess over claimed (what the
 * claim charges its signer; another replica's holds may go without this one knowing). A payer's
 * raise deletes the marker (its claim charges no grant). The marker is set with the same expiry
 * as the signer's grant pool, which only ever lasts longer, so a marker never outlives the hold it
 * stands for: once that hold expired, the next raise holds the whole excess again.
 */
const RAISE_COVER = `${BIGNUM_LUA}
local v = redis.call('HMGET', KEYS[1], 'covered', 'owed')
local covered, owed = v[1] or '0', v[2] or '0'
if cmp(ARGV[1], covered) <= 0 then return {1, covered} end
local need = sub(ARGV[1], max(covered, ARGV[2]))
local held = redis.call('GET', KEYS[2]) or '0'
local after = add(held, need)
if cmp(after, ARGV[3]) > 0 then return {2, covered} end
local grantNeed, spent, carried = '0', '0', 0
if KEYS[4] then
  local mine = redis.call('GET', KEYS[3])
  local from = ARGV[2]
  if mine then
    local sep = string.find(mine, ':', 1, true)
    if string.sub(mine, 1, sep - 1) == ARGV[4] then
      carried = 1
      from = max(ARGV[2], string.sub(mine, sep + 1))
    end
  end
  grantNeed = sub(ARGV[1], from)
  spent = add(redis.call('GET', KEYS[4]) or '0', grantNeed)
  if cmp(spent, ARGV[6]) > 0 then return {3, covered} end
end
redis.call('SET', KEYS[2], after, 'EX', ARGV[5])
if KEYS[4] then
  redis.call('SET', KEYS[4], spent, 'EX', ARGV[5])
  redis.call('SET', KEYS[3], ARGV[4] .. ':' .. ARGV[1], 'EX', ARGV[5])
else
  redis.call('DEL', KEYS[3])
end
redis.call('HSET', KEYS[1], 'owed', max(owed, ARGV[2]), 'covered', ARGV[1], 'signer', ARGV[4])
return {0, need, grantNeed, carried}`;

/** KEYS: lane. ARGV: hold, credit limit. Returns {admitted 1/0, owed, covered, held, signer}. */
const ADMIT = `${BIGNUM_LUA}
local v = redis.call('HMGET', KEYS[1], 'owed', 'covered', 'held', 'signer')
local owed, covered, held, signer = v[1] or '0', v[2] or '0', v[3] or '0', v[4] or ''
if cmp(add(add(owed, held), ARGV[1]), add(covered, ARGV[2])) > 0 then return {0, owed, covered, held, signer} end
held = add(held, ARGV[1])
redis.call('HSET', KEYS[1], 'held', held)
return {1, owed, covered, held, signer}`;

/** KEYS: lane. ARGV: hold, cost. Returns {owed, covered, held, signer}. */
const CHARGE = `${BIGNUM_LUA}
local v = redis.call('HMGET', KEYS[1], 'owed', 'covered', 'held', 'signer')
local owed = add(v[1] or '0', ARGV[2])
local held = sub(v[3] or '0', ARGV[1])
redis.call('HSET', KEYS[1], 'owed', owed, 'held', held)
return {owed, v[2] or '0', held, v[4] or ''}`;

/** KEYS: lock. ARGV: token. Deletes the lock only if this holder still owns it. */
const UNLOCK = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;

type Scripted = Redis & {
  pfReserve(numKeys: number, ...args: (string | number)[]): Promise<number>;
  pfRelease(numKeys: number, ...args: string[]): Promise<number>;
  pfRaise(numKeys: number, ...args: (string | number)[]): Promise<[number, string, string?, number?]>;
  pfAdmit(lane: string, hold: string, credit: string): Promise<[number, string, string, string, string]>;
  pfCharge(lane: string, hold: string, cost: string): Promise<[string, string, string, string]>;
  pfUnlock(lock: string, token: string): Promise<number>;
};

export interface RedisReservationStoreOptions {
  /** e.g. `redis://127.0.0.1:6379/0`. */
  url: string;
  /** Prefix of every key, so one Redis can serve several providers or deployments (default `preflight:`). */
  prefix?: string;
  /**
   * How long held funds (and a delegate's grant spend) outlive the last reserve of their payer, in
   * seconds (default 86,400). Holds are released once the chain shows their settlement; this bounds
   * the ones nothing releases (a replica that died with items queued), though a payer that keeps
   * paying keeps renewing it. It must exceed the longest an item can wait for its settlement,
   * retries included.
   */
  holdTtlSeconds?: number;
}

/**
 * @example
 * const store = await RedisReservationStore.connect({ url: "redis://127.0.0.1:6379", prefix: `preflight:${contract}:${provider}:` });
 */
export class RedisReservationStore implements ReservationStore {
  readonly shared = true; // every replica on this Redis
  /**
   * This store's name in its lane grant markers: a raise counts only on what the same key's raises
   * through this store held (this replica's queue carries those holds to its claims), never on
   * another replica's. One store per gateway: two queues sharing a store would share its markers.
   */
  private readonly replica = randomBytes(8).toString("hex");
  private constructor(
    private readonly redis: Scripted,
    private readonly prefix: string,
    private readonly holdTtlSeconds: number,
  ) {}

  static async connect(options: RedisReservationStoreOptions): Promise<RedisReservationStore> {
    const holdTtlSeconds = options.holdTtlSeconds ?? 86_400;
    if (!Number.isSafeInteger(holdTtlSeconds) || holdTtlSeconds < 1) throw new RangeError(`holdTtlSeconds must be a whole number of seconds >= 1, got ${holdTtlSeconds}`);
    const redis = new Redis(options.url, { lazyConnect: true, maxRetriesPerRequest: 2, enableOfflineQueue: false }) as Scripted;
    redis.defineCommand("pfReserve", { lua: RESERVE_REQUEST });
    redis.defineCommand("pfRelease", { lua: RELEASE });
    redis.defineCommand("pfRaise", { lua: RAISE_COVER });
    redis.defineCommand("pfAdmit", { numberOfKeys: 1, lua: ADMIT });
    redis.defineCommand("pfCharge", { numberOfKeys: 1, lua: CHARGE });
    redis.defineCommand("pfUnlock", { numberOfKeys: 1, lua: UNLOCK });
    await redis.connect();
    return new RedisReservationStore(redis, options.prefix ?? "preflight:", holdTtlSeconds);
  }

  async reserveRequest(payer: string, token: string, nonce: bigint, amount: bigint, balance: bigint, ttlSeconds: number, grant?: { pool: string; remaining: bigint }): Promise<RequestReservation> {
    const keys = [this.key(nonceKey(payer, token, nonce)), this.key(fundsKey(payer, token)), ...(grant ? [this.key(fundsKey(payer, grant.pool))] : [])];
    const args = [amount.toString(), balance.toString(), Math.max(1, Math.ceil(ttlSeconds)), this.holdTtlSeconds, ...(grant ? [grant.remaining.toString()] : [])];
    const r = await this.redis.pfReserve(keys.length, ...keys, ...args);
    return r === 0 ? "reserved" : r === 1 ? "nonce-used" : r === 2 ? "insufficient-balance" : "budget-exceeded";
  }

  async cancelRequest(payer: string, token: string, nonce: bigint, amount: bigint, grantPool?: string): Promise<void> {
    await this.redis.pfRelease(2, this.key(fundsKey(payer, token)), this.key(nonceKey(payer, token, nonce)), amount.toString());
    if (grantPool) await this.redis.pfRelease(1, this.key(fundsKey(payer, grantPool)), amount.toString());
  }

  async releaseFunds(payer: string, token: string, amount: bigint): Promise<void> {
    await this.redis.pfRelease(1, this.key(fundsKey(payer, token)), amount.toString());
  }

  async raiseCover(lane: string, payer: string, pool: string, cumulative: bigint, claimed: bigint, balance: bigint, signer: string, grant?: { pool: string; remaining: bigint }): Promise<CoverOutcome> {
    const keys = [this.key(`l:${lane}`), this.key(fundsKey(payer, pool)), this.laneGrantKey(lane), ...(grant ? [this.key(fundsKey(payer, grant.pool))] : [])];
    const args = [cumulative.toString(), claimed.toString(), balance.toString(), signer.toLowerCase(), this.holdTtlSeconds, ...(grant ? [grant.remaining.toString()] : [])];
    const [status, value, grantHeld, carried] = await this.redis.pfRaise(keys.length, ...keys, ...args);
    if (status === 0) return { status: "raised", held: BigInt(value), grantHeld: BigInt(grantHeld ?? "0"), carried: carried === 1 };
    if (status === 1) return { status: "stale", covered: BigInt(value) };
    return status === 2 ? { status: "insufficient-balance" } : { status: "budget-exceeded" };
  }

  async forgetLaneGrant(lane: string): Promise<void> {
    await this.redis.del(this.laneGrantKey(lane));
  }

  async admit(lane: string, hold: bigint, creditLimit: bigint): Promise<{ admitted: boolean; totals: LaneTotals }> {
    const [admitted, owed, covered, held, signer] = await this.redis.pfAdmit(this.key(`l:${lane}`), hold.toString(), creditLimit.toString());
    return { admitted: admitted === 1, totals: { owed: BigInt(owed), covered: BigInt(covered), held: BigInt(held), signer } };
  }

  async charge(lane: string, hold: bigint, cost: bigint): Promise<LaneTotals> {
    const [owed, covered, held, signer] = await this.redis.pfCharge(this.key(`l:${lane}`), hold.toString(), cost.toString());
    return { owed: BigInt(owed), covered: BigInt(covered), held: BigInt(held), signer };
  }

  async lane(lane: string): Promise<LaneTotals> {
    const [owed, covered, held, signer] = await this.redis.hmget(this.key(`l:${lane}`), "owed", "covered", "held", "signer");
    return { owed: BigInt(owed ?? "0"), covered: BigInt(covered ?? "0"), held: BigInt(held ?? "0"), signer: signer ?? "" };
  }

  async withLock<T>(name: string, ttlMs: number, fn: () => Promise<T>): Promise<T> {
    const key = this.key(`lock:${name}`);
    const token = randomBytes(16).toString("hex");
    // The TTL frees the lock if its holder dies; a holder outliving it must not delete another's lock.
    for (let wait = 5; (await this.redis.set(key, token, "PX", ttlMs, "NX")) !== "OK"; wait = Math.min(wait * 2, 200)) {
      await new Promise((r) => setTimeout(r, wait));
    }
    try {
      return await fn();
    } finally {
      await this.redis.pfUnlock(key, token);
    }
  }

  async close(): Promise<void> {
    await this.redis.quit();
  }

  /** This replica's marker of the lane's latest delegate raise here. */
  private laneGrantKey(lane: string): string {
    return this.key(`lg:${lane}:${this.replica}`);
  }

  private key(k: string): string {
    return this.prefix + k;
  }
}
