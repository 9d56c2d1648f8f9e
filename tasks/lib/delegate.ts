/**
 * What a delegate's signature needs before it is worth signing: a live grant from the payer that
 * covers the provider, the model and (for a request) the price. The contract decides in the end; this
 * says early, in one line, what would make the provider's settlement or claim fail.
 */
import { ZeroAddress, getAddress } from "ethers";
import { PreflightError } from "./errors";
import { latestTimestamp, type TaskContext, type TokenInfo } from "./context";
import { formatAmount, formatTime } from "./input";

export interface DelegateScope {
  payer: string;
  token: TokenInfo;
  provider: string;
  model: string;
  /** the --model value as typed, for the message */
  modelName: string;
  /** a request's price (vouchers have no per-request cap) */
  price?: bigint;
}

/** Refuses when the signer is not the payer and its grant does not cover `scope`. */
export async function checkDelegateScope(ctx: TaskContext, scope: DelegateScope): Promise<void> {
  const { payer, token, provider, model } = scope;
  if (payer === ctx.signer.address) return;
  const grant = await ctx.preflight.grantOf(payer, token.address, ctx.signer.address);
  if (grant.expiry === 0n) {
    throw new PreflightError(`${ctx.signer.address} has no ${token.symbol} grant from ${payer}: the payer must first run npx hardhat grant --delegate ${ctx.signer.address} ...`);
  }
  if (grant.provider !== ZeroAddress && getAddress(grant.provider) !== provider) throw new PreflightError(`The grant allows only provider ${grant.provider}, not ${provider}.`);
  if (scope.price !== undefined && scope.price > grant.maxPrice) {
    throw new PreflightError(`--price is above the grant's cap of ${formatAmount(grant.maxPrice, token.decimals, token.symbol)} per request.`);
  }
  if (BigInt(grant.expiry) <= (await latestTimestamp(ctx.hre))) throw new PreflightError(`The grant from ${payer} expired at ${formatTime(grant.expiry)}: the payer must grant again.`);
  if (!(await ctx.preflight.isModelAllowed(payer, token.address, ctx.signer.address, model))) {
    throw new PreflightError(`The grant does not cover model "${scope.modelName}": sign for a model the payer allowed (npx hardhat grant-info shows the grant).`);
  }
}
