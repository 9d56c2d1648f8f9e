/**
 * Headless Chromium for browser tests: Debian's `chromium` package, started by the test with a fresh
 * profile and no network services of its own, driven over the DevTools protocol (playwright-core,
 * which downloads no browser). Stopped with its whole process group.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { build } from "esbuild";
import type { Browser } from "playwright-core";

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

/**
 * Bundles a page with esbuild as a dApp would: the packages by name (their published dist, not the
 * repository's sources), libraries bundled in. Writes `<name>.js` and `<name>.html` into `outDir`;
 * throws unless `mustBundle` (a dist file, e.g. `packages/sdk/dist/index.mjs`) is in the bundle.
 * Returns the bundle's size in bytes.
 */
export async function bundlePage(entry: string, name: string, outDir: string, mustBundle: string): Promise<number> {
  const result = await build({
    entryPoints: [entry],
    bundle: true,
    minify: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    outfile: path.join(outDir, `${name}.js`),
    tsconfigRaw: {}, // resolve the packages like a dApp does, not through the repository's source paths
    logLevel: "silent",
    metafile: true,
  });
  const inputs = Object.keys(result.metafile.inputs);
  if (!inputs.includes(mustBundle)) throw new Error(`the ${name} page did not bundle ${mustBundle}: ${inputs.join(", ")}`);
  writeFileSync(path.join(outDir, `${name}.html`), `<!doctype html><meta charset="utf-8"><title>${name}</title><script type="module" src="${name}.js"></script>`);
  return readFileSync(path.join(outDir, `${name}.js`)).length;
}

/** A static file server for bundled pages, on a free 127.0.0.1 port: the pages' origin. */
export async function servePages(dir: string): Promise<{ url: string; close: () => Promise<void> }> {
  const types: Record<string, string> = { ".html": "text/html", ".js": "text/javascript" };
  const server = http.createServer((req, res) => {
    const file = path.join(dir, path.basename(new URL(req.url ?? "/", "http://127.0.0.1").pathname));
    try {
      const body = readFileSync(file);
      res.writeHead(200, { "content-type": types[path.extname(file)] ?? "application/octet-stream" }).end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

/**
 * Opens `url` in a new tab, waits for the page to leave its result on `window.preflightResult`
 * (a JSON string), and closes the tab. Uncaught page errors are collected, and named if it times out.
 */
export async function pageResult(browser: Browser, url: string, timeoutMs = 60_000): Promise<{ result: string; errors: string[] }> {
  const context = browser.contexts()[0] ?? (await browser.newContext());
  const page = await context.newPage();
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(e.message));
  try {
    await page.goto(url);
    await page.waitForFunction(() => (window as unknown as { preflightResult?: string }).preflightResult !== undefined, undefined, { timeout: timeoutMs }).catch(() => {
      throw new Error(`the page ${url.split("#")[0]} left no result within ${timeoutMs} ms: ${errors.join("; ") || "no page error"}`);
    });
    return { result: await page.evaluate(() => (window as unknown as { preflightResult: string }).preflightResult), errors };
  } finally {
    await page.close();
  }
}
