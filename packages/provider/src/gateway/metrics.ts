/**
 * The gateway's Prometheus metrics, in a registry of its own (two gateways in one process do not
 * collide). Amounts are in the token's atomic units.
 */
import { Counter, Gauge, Histogram, Registry } from "prom-client";

export class GatewayMetrics {
  readonly registry = new Registry();
  /** Time from a paid call's arrival to its decision (payment decoded, preflighted, reserved). */
  readonly preflightSeconds = new Histogram({
    name: "preflight_gateway_preflight_seconds",
    help: "Time from a paid call's arrival to the payment decision, in seconds",
    labelNames: ["scheme"],
    buckets: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1],
    registers: [this.registry],
  });
  readonly decisions = new Counter({
    name: "preflight_gateway_decisions_total",
    help: "Payment decisions by scheme and reason (Settled = accepted)",
    labelNames: ["scheme", "reason"],
    registers: [this.registry],
  });
  readonly queuedAmount = new Gauge({
    name: "preflight_gateway_settlement_queued_amount",
    help: "Accepted amount waiting for settlement (atomic token units)",
    registers: [this.registry],
  });
  readonly settledAmount = new Counter({
    name: "preflight_gateway_settled_amount_total",
    help: "Amount settled on chain (atomic token units)",
    labelNames: ["kind"],
    registers: [this.registry],
  });
  readonly settledItems = new Counter({
    name: "preflight_gateway_settled_items_total",
    help: "Items settled or skipped on chain, by kind and reason",
    labelNames: ["kind", "reason"],
    registers: [this.registry],
  });
  readonly settlementGas = new Counter({
    name: "preflight_gateway_settlement_gas_total",
    help: "Gas used by settlement transactions",
    labelNames: ["kind"],
    registers: [this.registry],
  });
  readonly settlementFailures = new Counter({
    name: "preflight_gateway_settlement_failures_total",
    help: "Settlement transactions that could not be sent or reverted",
    labelNames: ["kind"],
    registers: [this.registry],
  });
  readonly upstreamSeconds = new Histogram({
    name: "preflight_gateway_upstream_seconds",
    help: "Time to the upstream's response headers, in seconds",
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30],
    registers: [this.registry],
  });
}
