/**
 * Nonce allocation that fills the payer's bitmap words in order. The contract keeps the payer's
 * current 64-nonce word (the "window") in the same storage slot as the balance, so a nonce inside
 * the window costs no extra storage access; words above it spill to another slot (+~22k gas for the
 * first use). Handing out consecutive free bits of the lowest non-full word keeps every request in
 * the window, and the window only slides when its word is full.
 */
import { PreflightSdkError } from "./errors";

const FULL = (1n << 64n) - 1n;

/** Where to read used-nonce bitmaps from: the contract's `nonceBitmap` view (or a test double). */
export type BitmapReader = (word: bigint) => Promise<bigint>;

/** A contract object with Preflight's `nonceBitmap` view: an ethers `Contract` (typechain's `Preflight`). */
export interface NonceBitmapContract {
  nonceBitmap(payer: string, token: string, word: bigint): Promise<bigint>;
}

/**
 * Hands out never-reused nonces of one (payer, token), lowest free bit first. One allocator should
 * serve every key that signs for the payer in that token (the payer and its delegates share the
 * nonce space); two independent allocators for one payer must use disjoint `startWord`s.
 * @example
 * const nonces = await NonceAllocator.create(preflight, payer.address, token);
 * const nonce = await nonces.next(); // e.g. 0n, then 1n, 2n, ...
 */
export class NonceAllocator {
  private word: bigint;
  private used: bigint; // on-chain bits of `word` plus the ones handed out here
  private readonly read: BitmapReader;

  private constructor(read: BitmapReader, word: bigint, used: bigint) {
    this.read = read;
    this.word = word;
    this.used = used;
  }

  /**
   * Reads the payer's bitmap from `startWord` up (one `nonceBitmap` call when the word has room,
   * one more per full word skipped) and positions on the first free bit.
   * @param startWord where to start looking, e.g. a word persisted from an earlier session
   * @example
   * const nonces = await NonceAllocator.create(preflight, payer, token, 0n);
   */
  static async create(contract: NonceBitmapContract, payer: string, token: string, startWord = 0n): Promise<NonceAllocator> {
    return NonceAllocator.fromReader((word) => contract.nonceBitmap(payer, token, word), startWord);
  }

  /**
   * Builds an allocator over any bitmap source (e.g. a verifier's cache, or a test double).
   * @example
   * const nonces = await NonceAllocator.fromReader(async () => 0n);
   */
  static async fromReader(read: BitmapReader, startWord = 0n): Promise<NonceAllocator> {
    if (startWord < 0n || startWord >= 1n << 250n) throw new PreflightSdkError("INVALID_OPTION", `startWord ${startWord}`);
    let word = startWord;
    let used = await read(word);
    while (used === FULL) {
      word += 1n;
      used = await read(word);
    }
    return new NonceAllocator(read, word, used);
  }

  /**
   * The next free nonce; never returns the same nonce twice. Reads the next word's bitmap only when
   * the current one is exhausted.
   * @example
   * const request = { ...fields, nonce: await nonces.next() };
   */
  async next(): Promise<bigint> {
    while (this.used === FULL) {
      this.word += 1n;
      this.used = await this.read(this.word);
    }
    const bit = lowestZeroBit(this.used);
    this.used |= 1n << bit;
    return (this.word << 6n) | bit;
  }

  /**
   * `count` fresh nonces, in the order `next` would give them.
   * @example
   * const [a, b, c] = await nonces.take(3);
   */
  async take(count: number): Promise<bigint[]> {
    if (!Number.isInteger(count) || count < 0) throw new PreflightSdkError("INVALID_OPTION", `count ${count}`);
    const out: bigint[] = [];
    for (let i = 0; i < count; i++) out.push(await this.next());
    return out;
  }

  /**
   * The word the allocator currently fills (persist it to resume with `startWord` later).
   * @example
   * localStorage.setItem("nonceWord", nonces.currentWord.toString());
   */
  get currentWord(): bigint {
    return this.word;
  }
}

function lowestZeroBit(bits: bigint): bigint {
  let low = Number(bits & 0xffffffffn);
  let offset = 0n;
  if (low === 0xffffffff) {
    low = Number((bits >> 32n) & 0xffffffffn);
    offset = 32n;
  }
  // The lowest zero bit of `low` is the lowest set bit of ~low.
  const inverted = ~low >>> 0;
  return offset + BigInt(31 - Math.clz32(inverted & -inverted));
}
