/**
 * The lane raises under way at this gateway, and the delegate grant holds a lane claim left
 * uncharged while one of them ran.
 *
 * Why: a delegate's raise holds only its increase in its grant pool when the same key's grant hold
 * is the lane's latest here (`CoverOutcome.carried`): the lane's earlier claims here hold the rest,
 * and the settlement queue moves their holds to the lane's next voucher if they are refused or
 * given up. Between the store running a raise and the gateway queueing its voucher, the queue cannot
 * see that voucher. A claim of the lane refused in that gap would have its holds let go and the
 * store's marker forgotten, and the new voucher's claim, which charges the whole excess, would be
 * held for its increase only. So while a raise of a lane runs, such holds are parked here; the raise
 * takes them when its voucher carried them, and the last raise of the lane to end lets go of what is
 * left (and only then forgets the marker, unless a raise since made a new one). A forget already
 * sent is awaited by every raise that begins after it, so no raise reads a marker about to go, and
 * a forget that fails (the store unreachable) is tried again until it lands.
 */
import type { CoverOutcome, GrantHold } from "./interfaces";

interface LaneRaising {
  payer: string;
  /** raises of the lane running now */
  running: number;
  /** grant holds of the lane's claims that went uncharged while they ran */
  parked: GrantHold[];
  /** whether a raise ended raised since holds were last parked (then the store's marker is its own) */
  raisedSinceParked: boolean;
}

/** What to do with parked holds no raise took: let them go, and forget the lane's marker when told. */
export type LeftOver = (lane: string, payer: string, holds: GrantHold[], forget: boolean) => void;

export class LaneRaises {
  private readonly lanes = new Map<string, LaneRaising>();
  private readonly forgetting = new Map<string, Promise<void>>();
  private closed = false;

  constructor(
    private readonly leftOver: LeftOver,
    private readonly retry = { baseMs: 50, maxMs: 2_000 },
  ) {}

  /**
   * Runs `raise` (the store's `raiseCover`) for `lane`, then `queue` with the holds parked meanwhile
   * when the voucher carried them, synchronously, so that the voucher is queued before anything
   * else sees the lane.
   */
  async run(lane: string, payer: string, raise: () => Promise<CoverOutcome>, queue: (cover: Extract<CoverOutcome, { status: "raised" }>, carried: GrantHold[]) => void): Promise<CoverOutcome> {
    let state = this.lanes.get(lane);
    if (!state) this.lanes.set(lane, (state = { payer, running: 0, parked: [], raisedSinceParked: false }));
    state.running++;
    try {
      await this.forgetting.get(lane);
      const cover = await raise();
      if (cover.status === "raised") {
        const carried = cover.carried ? state.parked.splice(0) : [];
        try {
          queue(cover, carried);
        } catch (e) {
          state.parked.push(...carried); // not queued: let go with the rest below, and the marker forgotten
          throw e;
        }
        state.raisedSinceParked = true;
      }
      return cover;
    } finally {
      if (--state.running === 0) {
        this.lanes.delete(lane);
        if (state.parked.length > 0) this.leftOver(lane, state.payer, state.parked, !state.raisedSinceParked);
      }
    }
  }

  /**
   * A claim of `lane` left `holds` uncharged: parked (true) when a raise of the lane is running
   * here, else the caller lets them go and forgets the lane's marker (false).
   */
  park(lane: string, holds: GrantHold[]): boolean {
    const state = this.lanes.get(lane);
    if (!state || holds.length === 0) return false;
    state.parked.push(...holds);
    state.raisedSinceParked = false;
    return true;
  }

  /**
   * Has the store forget `lane`'s marker (`forget`), trying again until it lands (a marker left in
   * place would let the lane's next raise count on holds that are gone; `onError` hears each failed
   * try), and makes the raises that begin meanwhile wait for it.
   */
  forget(lane: string, forget: () => Promise<void>, onError: (error: unknown) => void): void {
    const tries = async (): Promise<void> => {
      for (let wait = this.retry.baseMs; ; wait = Math.min(wait * 2, this.retry.maxMs)) {
        try {
          return await forget();
        } catch (e) {
          onError(e);
        }
        // Shutting down: this store's markers name this process, which no later raise will be.
        if (this.closed) return;
        await new Promise((r) => setTimeout(r, wait));
      }
    };
    const landed: Promise<void> = (this.forgetting.get(lane) ?? Promise.resolve()).then(tries).finally(() => {
      if (this.forgetting.get(lane) === landed) this.forgetting.delete(lane);
    });
    this.forgetting.set(lane, landed);
  }

  /** Stops trying forgets again, and resolves once those under way have ended (the store may then close). */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.forgetting.values()]);
  }
}
