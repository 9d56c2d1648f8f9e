/**
 * Structured logs: one JSON object per line (time, level, event, fields), bigints as strings.
 */
export type LogLevel = "debug" | "info" | "warn" | "error";
const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** A structured logger; `minLevel`, when set, is the lowest level it keeps (so callers can skip building lines it drops). */
export type Logger = ((level: LogLevel, event: string, fields?: Record<string, unknown>) => void) & { minLevel?: LogLevel };

/**
 * A logger writing JSON lines to `write` (default stderr) at `level` and above.
 * @example
 * const log = jsonLogger("info");
 * log("info", "settled", { txHash, items: 100 });
 */
export function jsonLogger(level: LogLevel = "info", write: (line: string) => void = (l) => process.stderr.write(l)): Logger {
  const min = ORDER[level];
  const logger: Logger = (lvl, event, fields) => {
    if (ORDER[lvl] < min) return;
    write(JSON.stringify({ time: new Date().toISOString(), level: lvl, event, ...fields }, (_, v) => (typeof v === "bigint" ? v.toString() : v)) + "\n");
  };
  logger.minLevel = level;
  return logger;
}

/** A logger that drops everything. */
export const silentLogger: Logger = Object.assign(() => undefined, { minLevel: "error" as LogLevel });

/** Whether `logger` keeps debug lines (a logger that does not say keeps everything). */
export function logsDebug(logger: Logger): boolean {
  return logger.minLevel === undefined || logger.minLevel === "debug";
}
