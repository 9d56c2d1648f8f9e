/**
 * The stage runner behind `npm test`: runs the stages in the order their prerequisites allow, at most
 * `jobs` at a time (two on a 2-core machine: compiling and type-checking wait on nothing the linter
 * or the coverage build does), each announced by a banner saying what it does. While two stages run,
 * each line of their output is prefixed with the stage's name. The first failure stops everything:
 * stages still running are stopped, stages not started are skipped. It always ends with a summary,
 * so the last thing on the screen is the verdict (a failure names the stage, its exit code and the
 * failing tests) and the exit code is that verdict.
 *
 * Pure of any project knowledge: `scripts/test/main.ts` says which stages `npm test` runs.
 */
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

export interface Stage {
  /** short name shown in the banner and the summary */
  name: string;
  /** what the stage checks, one line */
  what: string;
  command: string;
  args: string[];
  env?: Record<string, string>;
  /** stages that must pass before this one starts (those not among the stages run are ignored) */
  after?: string[];
  /** how the failure verdict says to re-run the stage alone (default: its command) */
  rerun?: string;
}

export type StageStatus = "ok" | "FAIL" | "stop" | "skip";

export interface StageResult {
  stage: Stage;
  /** "stop": it was running when another stage failed (or the run was interrupted), and was stopped */
  status: StageStatus;
  code: number;
  seconds: number;
  /** the stage's output (stdout and stderr, interleaved as printed) */
  log: string;
}

export interface RunOptions {
  /** where the banners, the stage output and the summary go (default: process.stdout) */
  write?: (text: string) => void;
  cwd?: string;
  /** written after the stages' results, before the verdict (e.g. the slowest tests) */
  epilogue?: (results: StageResult[]) => string;
  /** how many stages may run at once (default: 2, or 1 on a single CPU) */
  jobs?: number;
}

/** A stage's command for its banner: a long argument list (a stage's test files) is cut short; the failure verdict shows it whole. */
export function shownCommand(stage: Stage, maxArgs = 6): string {
  const args = stage.args.length > maxArgs ? [...stage.args.slice(0, maxArgs - 2), `... (${stage.args.length - (maxArgs - 2)} more)`] : stage.args;
  return [stage.command, ...args].join(" ");
}

/** "12.3 s", or "7 min 59 s" (rounded to the second first, so 479.6 s is "8 min 0 s", never "7 min 60 s"). */
export function fmtSeconds(s: number): string {
  if (s < 60) return `${s.toFixed(1)} s`;
  const whole = Math.round(s);
  return `${Math.floor(whole / 60)} min ${whole % 60} s`;
}

/** The failing-test list of a mocha run ("N failing" and what follows), or "" when there is none. */
export function mochaFailures(log: string, maxLines = 40): string {
  const lines = log.replace(/\x1b\[[0-9;]*m/g, "").split("\n");
  const start = lines.findIndex((l) => /^\s*\d+ failing\s*$/.test(l));
  if (start < 0) return "";
  // The list is indented; whatever follows it unindented (a coverage summary, say) is not part of it.
  let end = start + 1;
  while (end < lines.length && !/^\S/.test(lines[end])) end++;
  const out = lines.slice(start, Math.min(end, start + maxLines));
  return out.join("\n").trimEnd() + (end > start + maxLines ? "\n  ..." : "");
}

/** Checks the stage graph: unique names, known prerequisites, no cycle. Throws on the first problem. */
export function checkStages(stages: Stage[]): void {
  const names = new Set<string>();
  for (const s of stages) {
    if (names.has(s.name)) throw new Error(`Two stages are named "${s.name}".`);
    names.add(s.name);
  }
  // Prerequisites outside the selection are dropped (running `tests` alone does not rerun `compile`),
  // so a cycle can only be among selected stages: walk them depth-first.
  const byName = new Map(stages.map((s) => [s.name, s]));
  const state = new Map<string, "visiting" | "done">();
  const visit = (s: Stage, trail: string[]): void => {
    if (state.get(s.name) === "done") return;
    if (state.get(s.name) === "visiting") throw new Error(`The stages wait on each other: ${[...trail, s.name].join(" -> ")}.`);
    state.set(s.name, "visiting");
    for (const dep of s.after ?? []) {
      const d = byName.get(dep);
      if (d !== undefined) visit(d, [...trail, s.name]);
    }
    state.set(s.name, "done");
  };
  for (const s of stages) visit(s, []);
}

/** A running stage: its child process (in a process group of its own) and its output so far. */
interface Running {
  stage: Stage;
  child: ChildProcess;
  started: number;
  log: string;
  /** the unfinished last line of each stream, held back while output is prefixed */
  pending: { out: string; err: string };
  stopped: boolean;
  done: Promise<StageResult>;
}

// A stop asks nicely first (SIGTERM lets hardhat and the nodes tests start shut down), then insists.
const STOP_GRACE_MS = 5_000;

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    // Negative pid: the whole group, so a stage's own children (hardhat nodes, redis, browsers) go too.
    process.kill(-child.pid, signal);
  } catch {
    try {
      child.kill(signal);
    } catch {
      /* already gone */
    }
  }
}

/**
 * Runs `stages` (each when its prerequisites have passed, at most `jobs` at once) and returns the exit
 * code: 0 when every stage passed, else the failing stage's code. The summary is the last output.
 */
export async function runStages(stages: Stage[], options: RunOptions = {}): Promise<number> {
  checkStages(stages);
  const write = options.write ?? ((t: string) => void process.stdout.write(t));
  const cwd = options.cwd ?? process.cwd();
  const jobs = Math.max(1, options.jobs ?? Math.min(2, os.cpus().length));
  const selected = new Set(stages.map((s) => s.name));
  const width = Math.max(...stages.map((s) => s.name.length));
  const started = Date.now();
  const results = new Map<string, StageResult>();
  const running = new Map<string, Running>();
  let failed: StageResult | undefined;
  let interrupted: NodeJS.Signals | undefined;
  let announced = 0;

  // Output of a stage: as it comes while it runs alone; line by line with a "[name] " prefix while
  // another stage runs beside it, so the two never interleave within a line.
  const prefixing = (): boolean => running.size > 1;
  const emit = (r: Running, stream: "out" | "err", text: string): void => {
    r.log += text;
    if (!prefixing() && r.pending[stream] === "") {
      write(text);
      return;
    }
    const lines = (r.pending[stream] + text).split("\n");
    r.pending[stream] = lines.pop() ?? "";
    const tag = `[${r.stage.name.padEnd(width)}] `;
    if (lines.length > 0) write(lines.map((l) => `${tag}${l}\n`).join(""));
  };
  const flush = (r: Running): void => {
    for (const stream of ["out", "err"] as const) {
      if (r.pending[stream] !== "") write(`[${r.stage.name.padEnd(width)}] ${r.pending[stream]}\n`);
      r.pending[stream] = "";
    }
  };

  const start = (stage: Stage): Running => {
    announced++;
    const beside = [...running.keys()];
    const load = os.loadavg()[0].toFixed(1);
    write(
      `\n==> [${announced}/${stages.length}] ${stage.name}: ${stage.what}\n    $ ${shownCommand(stage)}   (load ${load}${beside.length > 0 ? `; beside ${beside.join(", ")}` : ""})\n`,
    );
    const child = spawn(stage.command, stage.args, {
      cwd,
      env: { ...process.env, ...stage.env },
      stdio: ["ignore", "pipe", "pipe"],
      // Its own process group, so stopping it stops everything it started.
      detached: true,
    });
    const r: Running = { stage, child, started: Date.now(), log: "", pending: { out: "", err: "" }, stopped: false, done: undefined as never };
    r.done = new Promise<StageResult>((resolve) => {
      child.stdout?.on("data", (c: Buffer) => emit(r, "out", c.toString()));
      child.stderr?.on("data", (c: Buffer) => emit(r, "err", c.toString()));
      child.on("error", (e) => emit(r, "err", `\n${e.message}\n`));
      child.on("close", (code, signal) => {
        flush(r);
        // A stage killed by a signal (out of memory, Ctrl-C, someone's kill) exits as a shell would say: 128 + its number.
        if (signal !== null && !r.stopped) emit(r, "err", `\n(stage "${stage.name}" was killed by ${signal})\n`);
        flush(r);
        const bySignal = signal !== null ? 128 + (os.constants.signals[signal] ?? 0) : 1;
        const exit = code ?? bySignal;
        const status: StageStatus = exit === 0 ? "ok" : r.stopped ? "stop" : "FAIL";
        resolve({ stage, status, code: exit, seconds: (Date.now() - r.started) / 1000, log: r.log });
      });
    });
    running.set(stage.name, r);
    return r;
  };

  const stopAll = (signal: NodeJS.Signals = "SIGTERM"): void => {
    for (const r of running.values()) {
      if (r.stopped) continue;
      r.stopped = true;
      killGroup(r.child, signal);
      setTimeout(() => killGroup(r.child, "SIGKILL"), STOP_GRACE_MS).unref();
    }
  };

  // Ctrl-C (or a CI runner's SIGTERM) reaches this process only, since each stage has its own process
  // group: pass it on, let the stages end, and still print the summary.
  const onSignal = (signal: NodeJS.Signals): void => {
    interrupted ??= signal;
    stopAll(signal);
  };
  const signals: NodeJS.Signals[] = ["SIGINT", "SIGTERM", "SIGHUP"];
  for (const s of signals) process.on(s, onSignal);

  try {
    const ready = (s: Stage): boolean => (s.after ?? []).every((d) => !selected.has(d) || results.get(d)?.status === "ok");
    for (;;) {
      if (failed === undefined && interrupted === undefined) {
        for (const s of stages) {
          if (running.size >= jobs) break;
          if (!results.has(s.name) && !running.has(s.name) && ready(s)) start(s);
        }
      }
      if (running.size === 0) break;
      const result = await Promise.race([...running.values()].map((r) => r.done));
      running.delete(result.stage.name);
      results.set(result.stage.name, result);
      if (result.status === "FAIL" && failed === undefined && interrupted === undefined) {
        failed = result;
        stopAll();
      }
    }
  } finally {
    for (const s of signals) process.off(s, onSignal);
  }

  const ordered = stages.map((s) => results.get(s.name)).filter((r): r is StageResult => r !== undefined);
  const lines = ["", "==> Summary"];
  for (const s of stages) {
    const r = results.get(s.name);
    lines.push(r === undefined ? `    skip  ${s.name}` : `    ${r.status.padEnd(4)}  ${s.name.padEnd(14)} ${fmtSeconds(r.seconds).padStart(12)}`);
  }
  const epilogue = options.epilogue?.(ordered) ?? "";
  if (epilogue !== "") lines.push("", epilogue.trimEnd());
  const total = fmtSeconds((Date.now() - started) / 1000);
  const load = os.loadavg().map((l) => l.toFixed(1)).join(" ");
  let code = 0;
  if (failed !== undefined) {
    const failures = mochaFailures(failed.log);
    if (failures !== "") lines.push("", `Failing tests in ${failed.stage.name}:`, failures);
    else lines.push("", `Last lines of ${failed.stage.name}:`, ...failed.log.trimEnd().split("\n").slice(-15).map((l) => `    ${l}`));
    lines.push("", `npm test FAILED at stage "${failed.stage.name}" (exit code ${failed.code}) after ${total}. Re-run it alone with: ${failed.stage.rerun ?? [failed.stage.command, ...failed.stage.args].join(" ")}`);
    code = failed.code;
  } else if (interrupted !== undefined) {
    code = 128 + (os.constants.signals[interrupted] ?? 0);
    lines.push("", `npm test INTERRUPTED by ${interrupted} after ${total}: the stages marked "stop" were stopped, "skip" never started.`);
  } else {
    lines.push("", `npm test passed: ${ordered.length} stages in ${total} (load average ${load}).`);
  }
  write(lines.join("\n") + "\n");
  return code;
}

/** Reads a JSON file if it exists. */
export function readJsonIfExists<T>(file: string): T | undefined {
  return fs.existsSync(file) ? (JSON.parse(fs.readFileSync(file, "utf8")) as T) : undefined;
}

export const ROOT = path.join(__dirname, "..", "..");
