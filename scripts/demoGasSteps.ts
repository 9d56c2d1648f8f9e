/**
 * The demo's "gas per verification step" table: each settlement transaction's gasUsed split into
 * steps from its own execution trace, with the benchmark's attribution (bench/trace.ts), so the
 * steps add up exactly to the receipt.
 */
import { AbiCoder, keccak256 } from "ethers";
import { ethers } from "hardhat";
import { SlotRegistry, STEPS, PREFLIGHT_STEP_OF_VARIABLE, type Steps } from "../bench/slots";
import { attribute } from "../bench/trace";

/** The parties and keys whose storage the demo's settlements touch. */
export interface DemoParties {
  preflight: string;
  token: string;
  payer: string;
  providers: string[];
  delegates: string[];
  models: string[];
  channels: string[];
}

/** A settlement transaction to break down. */
export interface SettlementTx {
  label: string;
  hash: string;
  requests: number;
}

/** Registers every slot and storage-key hash the demo's settlements may touch, by step. */
export async function demoRegistry(parties: DemoParties): Promise<SlotRegistry> {
  const { preflight, token, payer } = parties;
  const registry = new SlotRegistry();
  await registry.addContract(preflight, "contracts/Preflight.sol:Preflight", PREFLIGHT_STEP_OF_VARIABLE);
  registry.mapping(preflight, "_accounts", [payer, token]);
  for (let word = 0n; word < 4n; word++) registry.mapping(preflight, "_spilledNonces", [payer, token, word]);
  for (const who of parties.providers) registry.mapping(preflight, "_earnings", [who, token]);
  registry.mapping(preflight, "_fees", [token]);
  for (const delegate of parties.delegates) {
    registry.mapping(preflight, "_grants", [payer, token, delegate], 2);
    for (const provider of [...parties.providers, "0x0000000000000000000000000000000000000000"]) {
      const key = registry.keyHash(["address", "address", "address", "address"], [payer, token, delegate, provider], "permission");
      registry.mapping(preflight, "_grantStates", [key]);
    }
    for (let epoch = 1; epoch <= 3; epoch++) {
      for (const model of parties.models) {
        const key = registry.keyHash(["address", "address", "address", "uint16", "bytes32"], [payer, token, delegate, epoch, model], "permission");
        registry.mapping(preflight, "_grantModels", [key]);
      }
    }
  }
  for (const provider of parties.providers) {
    for (const channel of parties.channels) {
      const key = keccak256(AbiCoder.defaultAbiCoder().encode(["address", "address", "address", "bytes32"], [payer, provider, token, channel]));
      registry.keyHash(["address", "address", "address", "bytes32"], [payer, provider, token, channel], "nonce");
      registry.mapping(preflight, "_claimed", [key]);
    }
  }
  return registry;
}

/**
 * Rows of [operation, requests, ...one column per step, gasUsed, gas/request]; throws if a trace is
 * unavailable (e.g. a node without debug_traceTransaction).
 */
export async function stepRows(registry: SlotRegistry, txs: SettlementTx[]): Promise<string[][]> {
  const rows: string[][] = [["operation", "requests", ...STEPS, "gasUsed", "gas/request"]];
  for (const tx of txs) {
    const receipt = await ethers.provider.getTransactionReceipt(tx.hash);
    if (receipt === null) throw new Error(`no receipt for ${tx.label}`);
    const { steps, gasUsed } = await attribute(receipt, registry);
    rows.push([tx.label, String(tx.requests), ...STEPS.map((s) => String((steps as Steps)[s])), String(gasUsed), String(Math.round(gasUsed / tx.requests))]);
  }
  return rows;
}
