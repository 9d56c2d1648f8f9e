/**
 * Which storage slot belongs to which verification step.
 *
 * The layouts come from the compiler (`storageLayout` in the build info), the mapping keys are
 * computed exactly as Solidity does (`keccak256(key . slot)`, nested), for the keys the benchmark
 * actually uses (its payers, tokens, nonces, channels). Every intermediate hash of a nested mapping
 * is remembered too, so a KECCAK256 in the trace that computes a storage key is charged to the
 * step that owns the slot, not to "hashing".
 */
import { artifacts } from "hardhat";
import { AbiCoder, keccak256, concat, zeroPadValue, toBeHex, getAddress } from "ethers";

/** The verification steps every unit of gas is attributed to. */
export const STEPS = ["intrinsic", "hashing", "recovery", "permission", "nonce", "balances", "events", "rest"] as const;
export type Step = (typeof STEPS)[number];
export type Steps = Record<Step, number>;

/** Which verification step each of Preflight's state variables serves (the rest, e.g. owner, count as "rest"). */
export const PREFLIGHT_STEP_OF_VARIABLE: Record<string, Step> = {
  _accounts: "balances", // balance and nonce window share this slot
  _spilledNonces: "nonce",
  _withdrawals: "balances",
  _earnings: "balances",
  _fees: "balances",
  _grants: "permission", // a grant's cold record
  _grantStates: "permission", // a grant's hot slot
  _grantModels: "permission",
  _claimed: "nonce", // a voucher channel's cumulative amount is its replay protection
  _lanes: "balances", // a lane's funds and claimed total share its slot
};

export function emptySteps(): Steps {
  return { intrinsic: 0, hashing: 0, recovery: 0, permission: 0, nonce: 0, balances: 0, events: 0, rest: 0 };
}

interface LayoutVar {
  label: string;
  slot: string;
  type: string;
}
interface LayoutType {
  encoding: string;
  numberOfBytes: string;
}
interface StorageLayout {
  storage: LayoutVar[];
  types: Record<string, LayoutType> | null;
}

/** A mapping key: an address, a uint, or a bytes32 hex string. */
export type MappingKey = string | bigint;

function word(key: MappingKey): string {
  if (typeof key === "bigint") return toBeHex(key, 32);
  if (key.length === 42) return zeroPadValue(getAddress(key), 32);
  if (key.length === 66) return key.toLowerCase();
  throw new Error(`unsupported mapping key ${key}`);
}

const norm = (hex: string): string => toBeHex(BigInt(hex), 32);

interface ContractLayout {
  vars: Map<string, { slot: bigint; slots: bigint; mapping: boolean }>;
  categories: Record<string, Step>;
}

/** Storage slots and key hashes of every contract in a benchmark run, with the step each belongs to. */
export class SlotRegistry {
  private readonly layouts = new Map<string, ContractLayout>();
  /** (contract, slot) -> step, for every slot a scenario may touch */
  private readonly slots = new Map<string, Step>();
  /** keccak results that are storage keys or parts of one -> step */
  private readonly hashes = new Map<string, Step>();
  /** contracts whose whole execution is one step (e.g. ERC-1271 wallets: recovery) */
  private readonly wholeContract = new Map<string, Step>();
  /** contracts called to move tokens: the call itself is charged to balances */
  private readonly tokenContracts = new Set<string>();

  /**
   * Registers a deployed contract with the compiler's storage layout of `fqn` and the step of each
   * state variable (`label -> step`); unlisted variables (owner, reentrancy status...) count as "rest".
   */
  async addContract(address: string, fqn: string, categories: Record<string, Step>): Promise<void> {
    const [source, name] = fqn.split(":");
    const info = await artifacts.getBuildInfo(fqn);
    if (info === undefined) throw new Error(`no build info for ${fqn}`);
    const out = (info.output.contracts[source!]![name!] as unknown as { storageLayout?: StorageLayout }).storageLayout;
    if (out === undefined) throw new Error(`no storageLayout for ${fqn}: compile with outputSelection storageLayout`);
    const vars = new Map<string, { slot: bigint; slots: bigint; mapping: boolean }>();
    for (const v of out.storage) {
      const t = out.types?.[v.type];
      const mapping = t?.encoding === "mapping";
      const slots = mapping ? 1n : (BigInt(t?.numberOfBytes ?? "32") + 31n) / 32n;
      vars.set(v.label, { slot: BigInt(v.slot), slots, mapping });
      if (!mapping) {
        for (let i = 0n; i < slots; i++) this.slots.set(`${address.toLowerCase()}:${toBeHex(BigInt(v.slot) + i, 32)}`, categories[v.label] ?? "rest");
      }
    }
    for (const label of Object.keys(categories)) {
      if (!vars.has(label)) throw new Error(`${fqn} has no state variable ${label}`);
    }
    this.layouts.set(address.toLowerCase(), { vars, categories });
  }

  /** Marks `address` as a token: calls into it are charged to "balances". */
  addToken(address: string): void {
    this.tokenContracts.add(address.toLowerCase());
  }

  /** Charges everything `address` executes to `step` (e.g. an ERC-1271 wallet: recovery). */
  addWholeContract(address: string, step: Step): void {
    this.wholeContract.set(address.toLowerCase(), step);
  }

  /**
   * Registers `label[keys[0]][keys[1]]...` of `contract`; `valueSlots` > 1 for a struct value.
   * @example registry.mapping(preflight, "_accounts", [payer, token]);
   */
  mapping(contract: string, label: string, keys: MappingKey[], valueSlots = 1): void {
    const layout = this.layouts.get(contract.toLowerCase());
    const v = layout?.vars.get(label);
    if (layout === undefined || v === undefined || !v.mapping) throw new Error(`unknown mapping ${label} at ${contract}`);
    const step = layout.categories[label] ?? "rest";
    let slot = toBeHex(v.slot, 32);
    for (const key of keys) {
      slot = keccak256(concat([word(key), slot]));
      this.hashes.set(slot, step);
    }
    for (let i = 0n; i < BigInt(valueSlots); i++) {
      this.slots.set(`${contract.toLowerCase()}:${toBeHex(BigInt(slot) + i, 32)}`, step);
    }
  }

  /** Registers a hash that a contract computes as (part of) a storage key, e.g. `keccak256(abi.encode(...))`. */
  keyHash(types: string[], values: unknown[], step: Step): string {
    const h = keccak256(AbiCoder.defaultAbiCoder().encode(types, values));
    this.hashes.set(h, step);
    return h;
  }

  slotStep(storageAddress: string, key: string): Step | undefined {
    return this.slots.get(`${storageAddress.toLowerCase()}:${norm(key)}`);
  }

  hashStep(result: string): Step | undefined {
    return this.hashes.get(norm(result));
  }

  wholeContractStep(address: string): Step | undefined {
    return this.wholeContract.get(address.toLowerCase());
  }

  isToken(address: string): boolean {
    return this.tokenContracts.has(address.toLowerCase());
  }
}
