import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import hre from "hardhat";
import { expect } from "chai";

/** What a task returned and printed. */
export interface TaskRun<T> {
  result: T;
  output: string;
}

/** Runs a Hardhat task in-process, capturing what it prints. */
export async function runTask<T = unknown>(name: string, args: Record<string, unknown> = {}): Promise<TaskRun<T>> {
  const lines: string[] = [];
  const original = console.log;
  console.log = (...parts: unknown[]) => {
    lines.push(parts.map(String).join(" "));
  };
  try {
    const result = (await hre.run(name, args)) as T;
    return { result, output: lines.join("\n") };
  } finally {
    console.log = original;
  }
}

/** Expects a task to fail with a message matching `pattern`; returns the message. */
export async function expectTaskError(name: string, args: Record<string, unknown>, pattern: RegExp): Promise<string> {
  let message: string | undefined;
  try {
    await runTask(name, args);
  } catch (e) {
    message = (e as Error).message;
  }
  expect(message, `task ${name} should have failed`).to.not.equal(undefined);
  expect(message).to.match(pattern);
  return message!;
}

/**
 * Points the deployments registry (and files the tasks write) at a fresh temporary folder for the
 * current test file, so tests never touch ./deployments. Call at the top of a `describe`.
 */
export function useTempRegistry(): { dir: () => string } {
  let dir = "";
  let previous: string | undefined;
  before(() => {
    previous = process.env.PREFLIGHT_DEPLOYMENTS_DIR;
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "preflight-tasks-"));
    process.env.PREFLIGHT_DEPLOYMENTS_DIR = dir;
  });
  after(() => {
    if (previous === undefined) delete process.env.PREFLIGHT_DEPLOYMENTS_DIR;
    else process.env.PREFLIGHT_DEPLOYMENTS_DIR = previous;
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return { dir: () => dir };
}
