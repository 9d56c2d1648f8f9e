import { defineConfig } from "tsup";

// Node only. The native speed-ups (secp256k1, keccak) load through `require` inside try/catch, so the
// ESM build gets a `require` from createRequire; @preflight/sdk stays an import (one copy of it).
export default defineConfig({
  entry: { index: "src/index.ts", "gateway/index": "src/gateway/index.ts", "gateway/cli": "src/gateway/cli.ts" },
  format: ["esm", "cjs"],
  dts: true,
  sourcemap: true,
  clean: true,
  treeshake: true,
  target: "node20",
  platform: "node",
  tsconfig: "tsconfig.build.json",
  external: [/^@preflight\/sdk/, /^@noble\//, "ethers", "secp256k1", "keccak", "undici", "ioredis", "prom-client"],
  banner: ({ format }) => (format === "esm" ? { js: 'import { createRequire } from "node:module";\nconst require = createRequire(import.meta.url);' } : {}),
});
