/**
 * The workspace packages as users get them: built once per test run (tsup, the packages' own
 * `npm run build`), packed with `npm pack`, installed from the tarballs into a project outside the
 * repository. Child processes run with a timeout and their output is shown when they fail.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";

export const ROOT = path.resolve(__dirname, "..", "..");
export const PACKAGE_DIRS = { sdk: path.join(ROOT, "packages", "sdk"), provider: path.join(ROOT, "packages", "provider") } as const;

export interface RunOptions {
  cwd: string;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
}

/** Runs `command args` and resolves with its stdout; rejects with the command, exit code and output. */
export function run(command: string, args: string[], { cwd, env, timeoutMs = 240_000 }: RunOptions): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { cwd, env: env ?? process.env, timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${command} ${args.join(" ")} (in ${cwd}) failed: ${error.message}\n${stdout}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

let built: Promise<void> | undefined;

/**
 * Builds @preflight/sdk then @preflight/provider (which imports the sdk's build), once per process.
 * The Hardhat test run has compiled the contracts, so the sdk's generated sources are current.
 */
export function buildPackages(): Promise<void> {
  built ??= (async () => {
    await run("npm", ["run", "build", "--silent"], { cwd: PACKAGE_DIRS.sdk });
    await run("npm", ["run", "build", "--silent"], { cwd: PACKAGE_DIRS.provider });
  })();
  return built;
}

/** A fresh directory under the OS temp dir (never inside the repository), removed by `dispose`. */
export function tempDir(prefix: string): { dir: string; dispose: () => void } {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  return { dir, dispose: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface PackedPackage {
  name: string;
  tarball: string;
  files: string[];
  size: number;
}

/** `npm pack` of one workspace package into `dest`: the tarball and the files it holds. */
export async function packPackage(dir: string, dest: string): Promise<PackedPackage> {
  const out = await run("npm", ["pack", "--json", "--pack-destination", dest], { cwd: dir });
  const [info] = JSON.parse(out) as { name: string; filename: string; size: number; files: { path: string }[] }[];
  return { name: info!.name, tarball: path.join(dest, info!.filename), files: info!.files.map((f) => f.path).sort(), size: info!.size };
}

/** The exact version of a dependency installed in the repository (so temp projects use the same one). */
export function installedVersion(name: string): string {
  return (JSON.parse(readFileSync(path.join(ROOT, "node_modules", name, "package.json"), "utf8")) as { version: string }).version;
}
