/**
 * The stage runner behind `npm test`: runs each stage in order with a banner saying what it does,
 * streams its output, stops at the first failure, and always ends with a summary, so the last thing
 * on the screen is the verdict (a failure names the stage, its exit code and the failing tests) and
 * the exit code is that verdict.
 *
 * Pure of any project knowledge: `scripts/test/stages.ts` says which stages `npm test` runs.
 */
import { spawn } from "node:child_process";
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
}

export interface StageResult {
  stage: Stage;
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
}

const fmtSeconds = (s: number): string => (s < 60 ? `${s.toFixed(1)} s` : `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`);

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

function runStage(stage: Stage, index: number, total: number, opts: Required<Pick<RunOptions, "write" | "cwd">>): Promise<StageResult> {
  const load = os.loadavg()[0].toFixed(1);
  opts.write(`\n==> [${index}/${total}] ${stage.name}: ${stage.what}\n    $ ${[stage.command, ...stage.args].join(" ")}   (load ${load})\n`);
  const started = Date.now();
  return new Promise((resolve) => {
    let log = "";
    const child = spawn(stage.command, stage.args, {
      cwd: opts.cwd,
      env: { ...process.env, ...stage.env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const take = (chunk: Buffer): void => {
      const text = chunk.toString();
      log += text;
      opts.write(text);
    };
    child.stdout.on("data", take);
    child.stderr.on("data", take);
    child.on("error", (e) => {
      log += `\n${e.message}\n`;
      opts.write(`\n${e.message}\n`);
    });
    child.on("close", (code, signal) => {
      // A stage killed by a signal (out of memory, Ctrl-C, someone's kill) exits as a shell would say: 128 + its number.
      if (signal !== null) {
        const note = `\n(stage "${stage.name}" was killed by ${signal})\n`;
        log += note;
        opts.write(note);
      }
      const bySignal = signal !== null ? 128 + (os.constants.signals[signal] ?? 0) : 1;
      resolve({ stage, code: code ?? bySignal, seconds: (Date.now() - started) / 1000, log });
    });
  });
}

/**
 * Runs `stages` in order and returns the exit code: 0 when every stage passed, else the failing
 * stage's code. The summary is the last output.
 */
export async function runStages(stages: Stage[], options: RunOptions = {}): Promise<number> {
  const write = options.write ?? ((t: string) => void process.stdout.write(t));
  const cwd = options.cwd ?? process.cwd();
  const started = Date.now();
  const results: StageResult[] = [];
  for (const [i, stage] of stages.entries()) {
    const result = await runStage(stage, i + 1, stages.length, { write, cwd });
    results.push(result);
    if (result.code !== 0) break;
  }
  const failed = results.find((r) => r.code !== 0);
  const lines = ["", "==> Summary", ...results.map((r) => `    ${r.code === 0 ? "ok  " : "FAIL"}  ${r.stage.name.padEnd(14)} ${fmtSeconds(r.seconds).padStart(12)}`)];
  for (const s of stages.slice(results.length)) lines.push(`    skip  ${s.name}`);
  const epilogue = options.epilogue?.(results) ?? "";
  if (epilogue !== "") lines.push("", epilogue.trimEnd());
  const total = fmtSeconds((Date.now() - started) / 1000);
  const load = os.loadavg().map((l) => l.toFixed(1)).join(" ");
  if (failed === undefined) {
    lines.push("", `npm test passed: ${results.length} stages in ${total} (load average ${load}).`);
  } else {
    const failures = mochaFailures(failed.log);
    if (failures !== "") lines.push("", `Failing tests in ${failed.stage.name}:`, failures);
    else lines.push("", `Last lines of ${failed.stage.name}:`, ...failed.log.trimEnd().split("\n").slice(-15).map((l) => `    ${l}`));
    lines.push("", `npm test FAILED at stage "${failed.stage.name}" (exit code ${failed.code}) after ${total}. Re-run it alone with: ${[failed.stage.command, ...failed.stage.args].join(" ")}`);
  }
  write(lines.join("\n") + "\n");
  return failed?.code ?? 0;
}

/** Reads a JSON file if it exists. */
export function readJsonIfExists<T>(file: string): T | undefined {
  return fs.existsSync(file) ? (JSON.parse(fs.readFileSync(file, "utf8")) as T) : undefined;
}

export const ROOT = path.join(__dirname, "..", "..");
