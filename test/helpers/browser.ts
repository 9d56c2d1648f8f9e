/**
 * Headless Chromium for browser tests: Debian's `chromium` package, started by the test with a fresh
 * profile and no network services of its own, driven over the DevTools protocol (playwright-core,
 * which downloads no browser). Stopped with its whole process group.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";

export const CHROMIUM = "/usr/bin/chromium";
export const CHROMIUM_MISSING =
  `Chromium is not installed at ${CHROMIUM}: install Debian's package with \`sudo apt-get install -y chromium\` ` +
  "(.ci/run does it on CI), then run the tests again.";

export interface RunningBrowser {
  /** the DevTools WebSocket endpoint, for playwright-core's `chromium.connectOverCDP` */
  wsEndpoint: string;
  stop: () => Promise<void>;
}

function killGroup(child: ChildProcess): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, "SIGKILL");
  } catch {
    // Already gone.
  }
}

/** Starts headless Chromium on a DevTools port the OS picks (127.0.0.1 only). Throws CHROMIUM_MISSING when absent. */
export async function launchChromium(timeoutMs = 60_000): Promise<RunningBrowser> {
  if (!existsSync(CHROMIUM)) throw new Error(CHROMIUM_MISSING);
  const profile = mkdtempSync(path.join(os.tmpdir(), "preflight-chromium-"));
  const child = spawn(
    CHROMIUM,
    [
      "--headless",
      "--no-sandbox", // the tests run as root in CI containers, where Chromium's sandbox cannot start
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      `--user-data-dir=${profile}`,
      "--remote-debugging-address=127.0.0.1",
      "--remote-debugging-port=0",
      "about:blank",
    ],
    { detached: true, stdio: ["ignore", "ignore", "pipe"] },
  );
  const exit = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const stop = async (): Promise<void> => {
    killGroup(child);
    await exit;
    rmSync(profile, { recursive: true, force: true });
  };
  process.once("exit", () => killGroup(child));
  try {
    const wsEndpoint = await new Promise<string>((resolve, reject) => {
      let stderr = "";
      const timer = setTimeout(() => reject(new Error(`Chromium did not open its DevTools port within ${timeoutMs} ms:\n${stderr}`)), timeoutMs);
      child.stderr!.on("data", (chunk: Buffer) => {
        stderr += chunk.toString();
        const match = /DevTools listening on (ws:\/\/\S+)/.exec(stderr);
        if (match) {
          clearTimeout(timer);
          resolve(match[1]!);
        }
      });
      child.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`Chromium exited (code ${code}) before opening its DevTools port:\n${stderr}`));
      });
    });
    return { wsEndpoint, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}
