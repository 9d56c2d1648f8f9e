import { expect } from "chai";
import {
  checkRequestedNetwork,
  KNOWN_NETWORKS,
  networksFromEnv,
  parseKeys,
  requestedNetwork,
} from "../../tasks/lib/networks";

const KEY = `0x${"11".repeat(32)}`;
const KEY2 = "22".repeat(32);

describe("Networks from environment variables", function () {
  it("configures only localhost when nothing is set, with the node's own accounts", function () {
    const { networks, missing } = networksFromEnv({});
    expect(Object.keys(networks)).to.deep.equal(["localhost"]);
    expect(networks.localhost).to.deep.equal({ url: "http://127.0.0.1:8545", accounts: "remote" });
    expect(Object.keys(missing)).to.deep.equal([...KNOWN_NETWORKS.map((n) => n.name), "custom"]);
    expect(missing.sepolia).to.deep.equal(["SEPOLIA_RPC_URL", "SEPOLIA_PRIVATE_KEY (or DEPLOYER_PRIVATE_KEY)"]);
  });

  it("configures each testnet with its chain id once its URL and a key are set", function () {
    const { networks, explorerChains, missing } = networksFromEnv({
      SEPOLIA_RPC_URL: "https://rpc.sepolia.example",
      SEPOLIA_PRIVATE_KEY: KEY,
      BASE_SEPOLIA_RPC_URL: "https://rpc.base.example",
      DEPLOYER_PRIVATE_KEY: `${KEY},${KEY2}`,
      OP_SEPOLIA_RPC_URL: "https://rpc.op.example",
    });
    expect(networks.sepolia).to.deep.equal({ url: "https://rpc.sepolia.example", chainId: 11155111, accounts: [KEY] });
    expect(networks.baseSepolia).to.deep.equal({ url: "https://rpc.base.example", chainId: 84532, accounts: [KEY, `0x${KEY2}`] });
    expect(networks.opSepolia?.chainId).to.equal(11155420);
    expect(missing.arbitrumSepolia).to.deep.equal(["ARBITRUM_SEPOLIA_RPC_URL"]);
    expect(explorerChains.map((c) => [c.network, c.chainId, c.urls.apiURL])).to.deep.include([
      "opSepolia",
      11155420,
      "https://api.etherscan.io/v2/api",
    ]);
  });

  it("configures any other chain from CUSTOM_RPC_URL, CUSTOM_CHAIN_ID and a key", function () {
    const { networks, explorerChains } = networksFromEnv({
      CUSTOM_RPC_URL: "http://127.0.0.1:9999",
      CUSTOM_CHAIN_ID: "17000",
      CUSTOM_PRIVATE_KEY: KEY,
      CUSTOM_EXPLORER_URL: "https://explorer.example",
    });
    expect(networks.custom).to.deep.equal({ url: "http://127.0.0.1:9999", chainId: 17000, accounts: [KEY] });
    expect(explorerChains).to.deep.equal([
      { network: "custom", chainId: 17000, urls: { apiURL: "https://api.etherscan.io/v2/api", browserURL: "https://explorer.example" } },
    ]);
    expect(() => networksFromEnv({ CUSTOM_RPC_URL: "http://127.0.0.1:9999", CUSTOM_CHAIN_ID: "0x4268", CUSTOM_PRIVATE_KEY: KEY }, "custom")).to.throw(
      /CUSTOM_CHAIN_ID must be a positive integer chain id/,
    );
  });

  it("says which variable is malformed, without echoing keys", function () {
    expect(() => networksFromEnv({ SEPOLIA_RPC_URL: "sepolia.example", SEPOLIA_PRIVATE_KEY: KEY }, "sepolia")).to.throw(/SEPOLIA_RPC_URL must be an http\(s\):\/\/ or ws\(s\):\/\/ URL/);
    let message = "";
    try {
      parseKeys("SEPOLIA_PRIVATE_KEY", `${KEY},0xdeadbeef`);
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).to.match(/SEPOLIA_PRIVATE_KEY: key #2 is not a private key/);
    expect(message).to.not.contain("deadbeef");
    expect(() => networksFromEnv({ LOCALHOST_RPC_URL: "127.0.0.1:8545" }, "localhost")).to.throw(/LOCALHOST_RPC_URL must be/);
  });

  it("validates only the requested network: a malformed key of another one is a warning and leaves it out", function () {
    const env = { SEPOLIA_RPC_URL: "https://rpc.sepolia.example", SEPOLIA_PRIVATE_KEY: "0x1234" };
    for (const requested of ["localhost", "hardhat", undefined]) {
      const { networks, warnings, invalid } = networksFromEnv(env, requested);
      expect(Object.keys(networks)).to.deep.equal(["localhost"]);
      expect(invalid.sepolia).to.match(/SEPOLIA_PRIVATE_KEY: key #1 is not a private key/);
      expect(warnings).to.deep.equal([`network "sepolia" is left out: ${invalid.sepolia}`]);
      expect(warnings.join("")).to.not.contain("0x1234");
    }
    expect(() => networksFromEnv(env, "sepolia")).to.throw(/SEPOLIA_PRIVATE_KEY: key #1 is not a private key/);
    // A bad localhost URL does not break a testnet command either.
    expect(networksFromEnv({ LOCALHOST_RPC_URL: "nope", ...env, SEPOLIA_PRIVATE_KEY: KEY }, "sepolia").networks.localhost).to.equal(undefined);
  });

  it("lists the valid names for an unknown network, with the likely one for a typo", function () {
    const env = networksFromEnv({});
    expect(() => checkRequestedNetwork("sepolai", env)).to.throw(
      /^Unknown network "sepolai"\. Valid names: hardhat, localhost, sepolia \(needs \.env\), baseSepolia \(needs \.env\), arbitrumSepolia \(needs \.env\), opSepolia \(needs \.env\), custom \(needs \.env\)\. Did you mean "sepolia"\?$/,
    );
    expect(() => checkRequestedNetwork("mainnet", env)).to.throw(/^Unknown network "mainnet"\. Valid names: .*custom \(needs \.env\)\.$/);
    expect(() => checkRequestedNetwork("localhost", env)).to.not.throw();
  });

  it("names the missing variables when an unconfigured network is asked for", function () {
    expect(requestedNetwork(["node", "hardhat", "deploy", "--network", "sepolia"], {})).to.equal("sepolia");
    expect(requestedNetwork(["node", "hardhat", "--network=opSepolia", "deploy"], {})).to.equal("opSepolia");
    expect(requestedNetwork(["node", "hardhat", "test"], { HARDHAT_NETWORK: "custom" })).to.equal("custom");
    const env = networksFromEnv({ CUSTOM_RPC_URL: "http://127.0.0.1:1" });
    expect(() => checkRequestedNetwork("custom", env)).to.throw(
      /Network "custom" is not configured: set CUSTOM_CHAIN_ID and CUSTOM_PRIVATE_KEY \(or DEPLOYER_PRIVATE_KEY\) in \.env/,
    );
    expect(() => checkRequestedNetwork("hardhat", env)).to.not.throw();
    expect(() => checkRequestedNetwork(undefined, env)).to.not.throw();
  });
});
