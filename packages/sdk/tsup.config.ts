import { defineConfig } from "tsup";

// ESM and CommonJS with their declarations. Shared code is split into chunks, so every subpath uses
// the same PreflightSdkError class. Dependencies and peers stay imports (the app's bundler dedupes them).
export default defineConfig({
  entry: { index: "src/index.ts", abi: "src/abi.ts", typechain: "src/typechain.ts", deployments: "src/deployments.ts", "fetch/index": "src/fetch/index.ts" },
  format: ["esm", "cjs"],
  dts: true,
  splitting: true,
  sourcemap: true,
  clean: true,
  treeshake: true,
  target: "es2022",
  platform: "neutral",
  tsconfig: "tsconfig.build.json",
  external: ["@preflight/sdk", /^@noble\/hashes/, "ethers"],
});
