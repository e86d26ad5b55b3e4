#!/usr/bin/env node
// Drives Strongroom's JSON-RPC endpoint (POST /rpc) with ethers v6, as any Node Ethereum
// application would after changing its node URL, and checks every answer with ethers' own
// code (independent of Strongroom's): it recovers the signer of each signed transaction,
// EIP-712 document and personal message itself and compares it with the account.
//
// usage: node rpc_clients.mjs URL TOKEN [ADDRESS]
//   URL      the /rpc endpoint, e.g. http://127.0.0.1:8080/rpc
//   TOKEN    the bearer token (mock mode: $STRONGROOM_DATA_DIR/dev/rpc-token)
//   ADDRESS  the account to sign with (must be in eth_accounts); default: the first one
//
// Prints one JSON object summarising every check and exits 0, or at the first failed check
// prints the summary so far with "ok": false and the failure, says what failed on stderr and
// exits 1. Expects mock mode's development policy: chain 11155111 (Sepolia), transactions on
// chains 1 and 11155111 up to 1 ETH, any typed data but token permits, any message.
// Dependencies: `npm ci` in this directory (scripts/test-env.sh does it).
import { ethers } from "ethers";

const SEPOLIA = 11155111n;
const RECIPIENT = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
const STRANGER = "0x000000000000000000000000000000000000dEaD";
const MESSAGE = "Strongroom interop: ethers signs through /rpc";
// Nothing here should take long; a server that never answers must not hang the test.
const TIMEOUT_MS = 120_000;

const summary = {
  client: `ethers ${ethers.version}`,
  verifier: `ethers ${ethers.version}`,
  node: process.version,
  ok: false,
  checks: {},
};

class CheckFailed extends Error {}

function check(name, condition, detail) {
  if (!condition) throw new CheckFailed(`${name}: ${detail}`);
}

function passed(name, details = {}) {
  summary.checks[name] = { ok: true, ...details };
}

// JSON with bigints as decimal strings.
function json(value) {
  return JSON.stringify(value, (_, v) => (typeof v === "bigint" ? v.toString() : v));
}

function provider(url, token) {
  const request = new ethers.FetchRequest(url);
  if (token !== undefined) request.setHeader("Authorization", `Bearer ${token}`);
  request.timeout = 30_000;
  // The chain is fixed: ethers does not probe it; eth_chainId is checked explicitly below.
  return new ethers.JsonRpcProvider(request, undefined, {
    staticNetwork: ethers.Network.from(SEPOLIA),
  });
}

// A JSON-RPC error answer, as ethers reports it (the server's {code, message, data}).
async function rpcError(name, promise, code) {
  let value;
  try {
    value = await promise;
  } catch (e) {
    const error = e?.error;
    check(name, error && error.code === code,
      `expected JSON-RPC error ${code}, got ${e?.code}: ${e?.shortMessage ?? e} ${json(error ?? null)}`);
    return error;
  }
  throw new CheckFailed(`${name}: expected JSON-RPC error ${code}, got the result ${json(value)}`);
}

async function chainAndAccounts(provider, wanted) {
  const chainId = await provider.send("eth_chainId", []);
  check("eth_chainId", chainId === ethers.toQuantity(SEPOLIA),
    `expected ${ethers.toQuantity(SEPOLIA)}, got ${json(chainId)}`);
  passed("eth_chainId", { result: chainId });

  const accounts = await provider.send("eth_accounts", []);
  check("eth_accounts", Array.isArray(accounts) && accounts.length >= 1,
    `expected at least one account, got ${json(accounts)}`);
  check("eth_accounts",
    accounts.every((a) => typeof a === "string" && ethers.isAddress(a) && ethers.getAddress(a) === a),
    `expected EIP-55 checksummed addresses, got ${json(accounts)}`);
  let address = accounts[0];
  if (wanted !== undefined) {
    address = ethers.getAddress(wanted.toLowerCase());
    check("eth_accounts", accounts.includes(address), `${address} is not among ${json(accounts)}`);
  }
  passed("eth_accounts", { result: accounts });
  summary.chain_id = Number(BigInt(chainId));
  summary.accounts = accounts;
  summary.address = address;

  // Requests issued together go out as one JSON-RPC batch (ethers batches by default).
  const [batchedChain, batchedAccounts] = await Promise.all([
    provider.send("eth_chainId", []),
    provider.send("eth_accounts", []),
  ]);
  check("batch", batchedChain === chainId && json(batchedAccounts) === json(accounts),
    `batched eth_chainId + eth_accounts gave ${json([batchedChain, batchedAccounts])}`);
  passed("batch", { methods: ["eth_chainId", "eth_accounts"] });
  return address;
}

async function signTransaction(signer, name, tx, type) {
  const raw = await signer.signTransaction(tx);
  check(name, typeof raw === "string" && ethers.isHexString(raw),
    `expected the raw transaction as 0x hex, got ${json(raw)}`);
  const decoded = ethers.Transaction.from(raw);
  check(name, decoded.from === signer.address,
    `ethers recovers ${decoded.from}, expected ${signer.address}`);
  check(name, decoded.type === type, `expected type ${type}, got ${decoded.type}`);
  const got = {
    to: decoded.to, value: decoded.value, nonce: BigInt(decoded.nonce), chainId: decoded.chainId,
    gasLimit: decoded.gasLimit,
    ...(type === 2
      ? { maxFeePerGas: decoded.maxFeePerGas, maxPriorityFeePerGas: decoded.maxPriorityFeePerGas }
      : { gasPrice: decoded.gasPrice }),
  };
  for (const [field, sent] of Object.entries(tx)) {
    if (field === "type") continue;
    const want = field === "to" ? sent : BigInt(sent);
    check(name, got[field] === want, `${field}: sent ${want}, the signed transaction has ${got[field]}`);
  }
  passed(name, { signer: decoded.from, raw, decoded: { type: decoded.type, ...got } });
}

// An EIP-2612 permit (a small USDC allowance on Sepolia): the development policy lists no
// permit spenders, so Strongroom must refuse to sign it.
function permit(owner) {
  return {
    domain: {
      name: "USDC", version: "2", chainId: SEPOLIA,
      verifyingContract: "0x1c7D4B196Cb0C7B01d743Fbc6116a902379C7238",
    },
    types: {
      Permit: [
        { name: "owner", type: "address" }, { name: "spender", type: "address" },
        { name: "value", type: "uint256" }, { name: "nonce", type: "uint256" },
        { name: "deadline", type: "uint256" },
      ],
    },
    value: { owner, spender: RECIPIENT, value: 1000000n, nonce: 0n, deadline: 4102444800n },
  };
}

// A governance vote: arrays, bool and bytes32 besides the usual types.
function ballot() {
  return {
    domain: {
      name: "Strongroom Governor", version: "1", chainId: SEPOLIA,
      verifyingContract: "0x5FbDB2315678afecb367f032d93F642f64180aa3",
    },
    types: {
      Ballot: [
        { name: "proposalId", type: "uint256" }, { name: "support", type: "bool" },
        { name: "delegates", type: "address[]" }, { name: "reason", type: "string" },
        { name: "salt", type: "bytes32" },
      ],
    },
    value: {
      proposalId: 42n, support: true,
      delegates: [RECIPIENT, "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"],
      reason: "interop", salt: "0x" + "ab".repeat(32),
    },
  };
}

// EIP-712's own example.
function mail() {
  return {
    domain: {
      name: "Ether Mail", version: "1", chainId: SEPOLIA,
      verifyingContract: "0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC",
    },
    types: {
      Person: [{ name: "name", type: "string" }, { name: "wallet", type: "address" }],
      Mail: [
        { name: "from", type: "Person" }, { name: "to", type: "Person" },
        { name: "contents", type: "string" },
      ],
    },
    value: {
      from: { name: "Cow", wallet: "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826" },
      to: { name: "Bob", wallet: "0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB" },
      contents: "Hello, Bob!",
    },
  };
}

async function signTypedData(signer, name, { domain, types, value }) {
  // ethers sends eth_signTypedData_v4 [address, JSON string of the whole document].
  const signature = await signer.signTypedData(domain, types, value);
  check(name, ethers.isHexString(signature, 65), `expected a 65-byte signature, got ${json(signature)}`);
  const recovered = ethers.verifyTypedData(domain, types, value, signature);
  check(name, recovered === signer.address, `ethers recovers ${recovered}, expected ${signer.address}`);
  passed(name, { signer: recovered, signature });
}

async function signMessages(signer) {
  // signMessage sends personal_sign [data, address].
  let signature = await signer.signMessage(MESSAGE);
  let recovered = ethers.verifyMessage(MESSAGE, signature);
  check("personal_sign", recovered === signer.address,
    `ethers recovers ${recovered}, expected ${signer.address}`);
  passed("personal_sign", { signer: recovered, signature });

  // ethers' eth_sign [address, data].
  signature = await signer._legacySignMessage(MESSAGE);
  recovered = ethers.verifyMessage(MESSAGE, signature);
  check("eth_sign", recovered === signer.address, `ethers recovers ${recovered}, expected ${signer.address}`);
  passed("eth_sign", { signer: recovered, signature });
}

// A policy denial: error -32000 whose data.decision names the rule and the reason.
async function denied(name, promise) {
  const error = await rpcError(name, promise, -32000);
  const decision = error.data?.decision ?? {};
  check(name, typeof decision.rule === "string" && decision.rule && decision.result && decision.reason,
    `expected data.decision = {result, rule, reason}, got ${json(error)}`);
  passed(name, { error });
}

async function refusals(url, rpc, signer, eip1559) {
  // 2 ETH: over the development policy's 1 ETH cap.
  const big = { ...eip1559, value: ethers.parseEther("2"), nonce: 1 };
  await denied("denied_transaction", signer.signTransaction(big));
  // A token permit to a spender the policy does not list.
  const { domain, types, value } = permit(signer.address);
  await denied("denied_permit", signer.signTypedData(domain, types, value));

  // A from address Strongroom holds no key for (getSigner would refuse it locally, having
  // read eth_accounts; a signer made directly asks the server).
  const stranger = new ethers.JsonRpcSigner(rpc, STRANGER);
  const error = await rpcError("unknown_from", stranger.signTransaction({ ...eip1559, nonce: 1 }), -32602);
  passed("unknown_from", { error });

  // Without the token: HTTP 401 with a JSON-RPC error -32002, for a read and a signature.
  const anonymous = provider(url);
  const calls = {
    eth_accounts: () => anonymous.send("eth_accounts", []),
    eth_signTransaction: () =>
      new ethers.JsonRpcSigner(anonymous, signer.address).signTransaction({ ...eip1559, nonce: 1 }),
  };
  summary.checks.unauthenticated = { ok: false };
  for (const [method, call] of Object.entries(calls)) {
    let answer;
    try {
      answer = await call();
    } catch (e) {
      const status = e?.response?.statusCode;
      let body = e?.info?.responseBody ?? null;
      try {
        body = JSON.parse(body);
      } catch {
        // left as text
      }
      check("unauthenticated", status === 401,
        `${method}: expected HTTP 401, got ${status} (${e?.shortMessage ?? e})`);
      check("unauthenticated", body?.error?.code === -32002,
        `${method}: expected a JSON-RPC error -32002 body, got ${json(body)}`);
      summary.checks.unauthenticated[method] = { status, error: body.error };
      continue;
    }
    throw new CheckFailed(`unauthenticated ${method}: answered without the token: ${json(answer)}`);
  }
  summary.checks.unauthenticated.ok = true;
  anonymous.destroy();
}

async function main() {
  const args = process.argv.slice(2);
  if (args.length !== 2 && args.length !== 3) {
    process.stderr.write("usage: node rpc_clients.mjs URL TOKEN [ADDRESS]\n");
    process.exit(2);
  }
  const [url, token, wanted] = args;
  summary.url = url;
  const rpc = provider(url, token);
  const address = await chainAndAccounts(rpc, wanted);
  // getSigner reads eth_accounts and refuses an address the server does not list.
  const signer = await rpc.getSigner(address);
  check("getSigner", signer.address === address, `getSigner gave ${signer.address}, expected ${address}`);

  const eip1559 = {
    type: 2, chainId: SEPOLIA, nonce: 0, to: RECIPIENT, value: ethers.parseEther("0.01"),
    gasLimit: 21000n, maxFeePerGas: ethers.parseUnits("30", "gwei"),
    maxPriorityFeePerGas: ethers.parseUnits("2", "gwei"),
  };
  await signTransaction(signer, "eth_signTransaction_eip1559", eip1559, 2);
  await signTransaction(signer, "eth_signTransaction_legacy", {
    type: 0, chainId: SEPOLIA, nonce: 7, to: RECIPIENT, value: ethers.parseEther("0.01"),
    gasLimit: 21000n, gasPrice: ethers.parseUnits("20", "gwei"),
  }, 0);
  await signTypedData(signer, "eth_signTypedData_v4_mail", mail());
  await signTypedData(signer, "eth_signTypedData_v4_ballot", ballot());
  await signMessages(signer);
  await refusals(url, rpc, signer, eip1559);
  rpc.destroy();
  summary.ok = true;
}

function fail(e) {
  const what = e instanceof CheckFailed
    ? e.message
    : `${e?.name ?? "Error"}: ${e?.shortMessage ?? e?.message ?? e}`;
  summary.failed = what;
  process.stdout.write(json(summary) + "\n");
  process.stderr.write(`rpc_clients.mjs (ethers): FAILED ${what}\n`);
  process.exit(1);
}

const watchdog = setTimeout(
  () => fail(new CheckFailed(`no result within ${TIMEOUT_MS / 1000} s`)),
  TIMEOUT_MS,
);
main().then(
  () => {
    clearTimeout(watchdog);
    process.stdout.write(json(summary) + "\n");
    process.exit(0);
  },
  fail,
);
