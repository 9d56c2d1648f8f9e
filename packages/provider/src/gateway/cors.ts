/**
 * Cross-origin calls from browser dApps (CORS). A dApp's page is served from its own origin and calls
 * the gateway on the provider's: the browser first asks with an `OPTIONS` preflight (the calls carry
 * `content-type: application/json`, `authorization` from the `openai` client and `PAYMENT-SIGNATURE`),
 * and lets the page read only the response headers the gateway exposes (`PAYMENT-REQUIRED` on a 402,
 * `PAYMENT-RESPONSE` on a paid answer). Without a policy the gateway sends no CORS headers and
 * browsers keep pages of other origins out, as before.
 *
 * The policy never allows credentials (cookies, HTTP auth): a payment rides in its own header and is
 * worth nothing to another provider, so `*` is a reasonable policy for a public gateway.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { PreflightSdkError } from "@preflight/sdk";
import { PAYMENT_REQUIRED_HEADER, PAYMENT_RESPONSE_HEADER } from "@preflight/sdk/fetch";

export interface CorsOptions {
  /** Origins whose pages may call the gateway (`https://app.example.com`, scheme, host and port as the browser sends them), or `"*"` for any. */
  origins: readonly string[];
  /** How long a browser may cache a preflight's answer (default 600 s). */
  maxAgeSeconds?: number;
}

/** The headers a page may read: what to pay, and what was accepted. */
const EXPOSED = `${PAYMENT_REQUIRED_HEADER}, ${PAYMENT_RESPONSE_HEADER}`;
const METHODS = "GET, POST, OPTIONS";
// A comma-separated list of header names (RFC 9110 tokens), as browsers send in Access-Control-Request-Headers.
const HEADER_LIST = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+(\s*,\s*[!#$%&'*+\-.^_`|~0-9A-Za-z]+)*$/;

/** A validated CORS policy. */
export interface CorsPolicy {
  /**
   * Adds the CORS headers an allowed origin's request gets, and answers a preflight (`OPTIONS` with
   * `Access-Control-Request-Method`): 204 for an allowed origin, 403 with a sentence otherwise.
   * Returns true when it answered (the request is done).
   */
  apply(req: IncomingMessage, res: ServerResponse): boolean;
}

/**
 * Checks the options and returns the policy. Throws `PreflightSdkError("INVALID_OPTION")` for an
 * origin that is not `*` or a bare origin (no path, no trailing slash), or a bad max age.
 * @example
 * const cors = corsPolicy({ origins: ["https://app.example.com"] });
 */
export function corsPolicy(options: CorsOptions): CorsPolicy {
  if (options.origins.length === 0) throw new PreflightSdkError("INVALID_OPTION", "cors origins: give at least one origin, or \"*\" for any");
  for (const origin of options.origins) {
    if (origin !== "*" && !isBareOrigin(origin)) {
      throw new PreflightSdkError("INVALID_OPTION", `cors origin ${JSON.stringify(origin)}: write an origin as browsers send it, scheme://host[:port] with no path (e.g. https://app.example.com), or "*" for any`);
    }
  }
  const maxAge = options.maxAgeSeconds ?? 600;
  if (!Number.isSafeInteger(maxAge) || maxAge < 0) throw new PreflightSdkError("INVALID_OPTION", `cors maxAgeSeconds ${String(options.maxAgeSeconds)}: expected a whole number of seconds`);
  const any = options.origins.includes("*");
  const allowed = new Set(options.origins.map((o) => o.toLowerCase()));
  return {
    apply(req, res) {
      const origin = req.headers.origin;
      const preflight = req.method === "OPTIONS" && req.headers["access-control-request-method"] !== undefined;
      if (origin === undefined) return false; // not a cross-origin browser call
      const ok = any || allowed.has(origin.toLowerCase());
      if (!ok) {
        if (!preflight) return false; // the browser withholds the answer from the page
        const json = JSON.stringify({ error: { message: `origin ${origin} may not call this gateway: start it with --cors-origin ${origin} (or "*")`, type: "cors_error" } });
        res.writeHead(403, { "content-type": "application/json", "content-length": Buffer.byteLength(json), vary: "Origin" });
        res.end(json);
        return true;
      }
      res.setHeader("access-control-allow-origin", any ? "*" : origin);
      if (!any) res.setHeader("vary", "Origin");
      if (!preflight) {
        res.setHeader("access-control-expose-headers", EXPOSED);
        return false;
      }
      const requested = req.headers["access-control-request-headers"];
      const headers: Record<string, string | number> = { "access-control-allow-methods": METHODS, "access-control-max-age": maxAge, "content-length": 0 };
      if (typeof requested === "string" && HEADER_LIST.test(requested.trim())) headers["access-control-allow-headers"] = requested.trim();
      res.writeHead(204, headers);
      res.end();
      return true;
    },
  };
}

/** True for the CORS response headers a model server may send (the gateway's own policy replaces them). */
export function isCorsHeader(name: string): boolean {
  return name.startsWith("access-control-");
}

function isBareOrigin(origin: string): boolean {
  try {
    const url = new URL(origin);
    return (url.protocol === "http:" || url.protocol === "https:") && url.origin === origin.toLowerCase();
  } catch {
    return false;
  }
}
