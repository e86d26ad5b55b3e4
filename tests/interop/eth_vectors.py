#!/usr/bin/env python3
"""Known-answer vectors for strongroom-eth from an independent implementation (eth-account).

For a fixed private key and fixed lists of transactions, EIP-712 documents and personal_sign
messages, prints JSON with each input, the signing hash eth-account computes, and what it
signs: the raw signed transaction and its hash (transactions), the 65-byte r||s||v signature
(typed data, messages). eth-account signs with deterministic RFC 6979 nonces and low s, as
the enclave's k256 does, so signatures must match byte for byte.

The output is committed as eth/tests/data/eth_account_vectors.json, so the Rust test needs no
Python. Regenerate it (from the repository root) with:

    $(bash scripts/test-env.sh) tests/interop/eth_vectors.py > eth/tests/data/eth_account_vectors.json
"""
import json
from importlib.metadata import version

from eth_account import Account
from eth_account._utils.legacy_transactions import serializable_unsigned_transaction_from_dict
from eth_account.messages import encode_defunct
from eth_utils import keccak, to_checksum_address

# The well-known web3.py documentation key; never holds funds.
PRIVATE_KEY = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"

USDC = to_checksum_address("0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48")
PERMIT2 = to_checksum_address("0x000000000022d473030f116ddee9f6b43ac78ba3")
ROUTER = to_checksum_address("0x3fc91a3afd70395cd496c647d5a6cc9d4b2b7fad")
WETH = to_checksum_address("0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2")
ALICE = to_checksum_address("0x3535353535353535353535353535353535353535")
BOB = to_checksum_address("0xbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb")
MAX_UINT160 = 2**160 - 1
MAX_UINT256 = 2**256 - 1
GWEI = 10**9


def word(n):
    return n.to_bytes(32, "big")


def erc20_call(signature, *words):
    return keccak(text=signature)[:4] + b"".join(words)


def addr_word(address):
    return bytes(12) + bytes.fromhex(address[2:])


# eth-account input dicts (Python ints). Field names are eth_signTransaction's.
TRANSACTIONS = [
    ("legacy EIP-155 transfer (the EIP-155 example)", {
        "chainId": 1, "nonce": 9, "gasPrice": 20 * GWEI, "gas": 21000, "to": ALICE,
        "value": 10**18, "data": b"",
    }),
    ("legacy EIP-155 ERC-20 approve, unlimited, Sepolia", {
        "chainId": 11155111, "nonce": 0, "gasPrice": 3 * GWEI, "gas": 60000, "to": USDC,
        "value": 0,
        "data": erc20_call("approve(address,uint256)", addr_word(ROUTER), word(MAX_UINT256)),
    }),
    ("EIP-2930 with access list", {
        "type": 1, "chainId": 1, "nonce": 3, "gasPrice": 30 * GWEI, "gas": 50000, "to": WETH,
        "value": 12345, "data": bytes.fromhex("d0e30db0"),
        "accessList": [
            {"address": WETH, "storageKeys": [
                "0x" + "00" * 31 + "03",
                "0x" + "ab" * 32,
            ]},
            {"address": ALICE, "storageKeys": []},
        ],
    }),
    ("EIP-1559 plain transfer, no calldata", {
        "type": 2, "chainId": 1, "nonce": 42, "maxFeePerGas": 40 * GWEI,
        "maxPriorityFeePerGas": 2 * GWEI, "gas": 21000, "to": BOB, "value": 5 * 10**17,
        "data": b"",
    }),
    ("EIP-1559 with calldata and access list", {
        "type": 2, "chainId": 10, "nonce": 7, "maxFeePerGas": 1_000_000_000_000,
        "maxPriorityFeePerGas": 1_000_000_000_000, "gas": 250000, "to": ROUTER, "value": 0,
        "data": bytes.fromhex("3593564c") + bytes(range(64)),
        "accessList": [{"address": ROUTER, "storageKeys": ["0x" + "11" * 32]}],
    }),
    ("EIP-1559 contract creation", {
        "type": 2, "chainId": 8453, "nonce": 0, "maxFeePerGas": 2 * GWEI,
        "maxPriorityFeePerGas": 1, "gas": 1_000_000, "value": 0,
        "data": bytes.fromhex("6080604052348015600f57600080fd5b50603f80601d6000396000f3fe"),
    }),
    ("EIP-1559 ERC-20 transfer, Polygon", {
        "type": 2, "chainId": 137, "nonce": 1_000_001, "maxFeePerGas": 300 * GWEI,
        "maxPriorityFeePerGas": 30 * GWEI, "gas": 65000, "to": USDC, "value": 0,
        "data": erc20_call("transfer(address,uint256)", addr_word(BOB), word(2_500_000)),
    }),
    ("EIP-1559 large chain id and quantities", {
        "type": 2, "chainId": 2**40 + 5, "nonce": 2**63 - 1, "maxFeePerGas": 2**100,
        "maxPriorityFeePerGas": 2**99, "gas": 2**62, "to": ALICE, "value": 2**255 + 1,
        "data": b"\x00",
    }),
]


def rpc_quantity(n):
    return hex(n)


def rpc_transaction(tx, sender):
    """The eth_signTransaction JSON object for an eth-account dict: hex quantities."""
    out = {"from": sender}
    for key, value in tx.items():
        if key in ("to",):
            out[key] = value
        elif key == "data":
            out[key] = "0x" + value.hex()
        elif key == "accessList":
            out[key] = value
        elif key == "type":
            out[key] = rpc_quantity(value)
        else:
            out[key] = rpc_quantity(value)
    return out


def domain_type(domain):
    order = [("name", "string"), ("version", "string"), ("chainId", "uint256"),
             ("verifyingContract", "address"), ("salt", "bytes32")]
    return [{"name": n, "type": t} for n, t in order if n in domain]


def document(primary, types, domain, message):
    return {
        "types": {"EIP712Domain": domain_type(domain), **types},
        "primaryType": primary,
        "domain": domain,
        "message": message,
    }


# Large integers are decimal strings, as ethers and viem send them: JSON numbers above
# 2^53 do not survive JavaScript, and the Rust side refuses to guess.
TYPED_DATA = [
    ("EIP-712 Mail example", document(
        "Mail",
        {
            "Person": [{"name": "name", "type": "string"}, {"name": "wallet", "type": "address"}],
            "Mail": [{"name": "from", "type": "Person"}, {"name": "to", "type": "Person"},
                     {"name": "contents", "type": "string"}],
        },
        {"name": "Ether Mail", "version": "1", "chainId": 1,
         "verifyingContract": "0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC"},
        {"from": {"name": "Cow", "wallet": "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"},
         "to": {"name": "Bob", "wallet": "0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB"},
         "contents": "Hello, Bob!"},
    )),
    ("EIP-712 v4 Mail with arrays", document(
        "Mail",
        {
            "Person": [{"name": "name", "type": "string"},
                       {"name": "wallets", "type": "address[]"}],
            "Mail": [{"name": "from", "type": "Person"}, {"name": "to", "type": "Person[]"},
                     {"name": "contents", "type": "string"},
                     {"name": "attachment", "type": "bytes"},
                     {"name": "tags", "type": "string[2]"}],
        },
        {"name": "Ether Mail", "version": "1", "chainId": 1,
         "verifyingContract": "0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC",
         "salt": "0x" + "5a" * 32},
        {"from": {"name": "Cow", "wallets": [
            "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826",
            "0xDeaDbeefdEAdbeefdEadbEEFdeadbeEFdEaDbeeF"]},
         "to": [{"name": "Bob", "wallets": [
             "0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB",
             "0xB0BdaBea57B0BDABeA57b0bdABEA57b0BDabEa57",
             "0xB0B0b0b0b0b0B000000000000000000000000000"]}],
         "contents": "Hello, Bob!", "attachment": "0xdeadbeef", "tags": ["a", "b"]},
    )),
    ("EIP-2612 Permit (USDC)", document(
        "Permit",
        {"Permit": [{"name": "owner", "type": "address"}, {"name": "spender", "type": "address"},
                    {"name": "value", "type": "uint256"}, {"name": "nonce", "type": "uint256"},
                    {"name": "deadline", "type": "uint256"}]},
        {"name": "USD Coin", "version": "2", "chainId": 1, "verifyingContract": USDC},
        {"owner": Account.from_key(PRIVATE_KEY).address, "spender": ROUTER,
         "value": "1000000000", "nonce": 0, "deadline": "1893456000"},
    )),
    ("Permit2 PermitSingle", document(
        "PermitSingle",
        {
            "PermitDetails": [{"name": "token", "type": "address"},
                              {"name": "amount", "type": "uint160"},
                              {"name": "expiration", "type": "uint48"},
                              {"name": "nonce", "type": "uint48"}],
            "PermitSingle": [{"name": "details", "type": "PermitDetails"},
                             {"name": "spender", "type": "address"},
                             {"name": "sigDeadline", "type": "uint256"}],
        },
        {"name": "Permit2", "chainId": 1, "verifyingContract": PERMIT2},
        {"details": {"token": USDC, "amount": str(MAX_UINT160), "expiration": 1900000000,
                     "nonce": 0},
         "spender": ROUTER, "sigDeadline": "1893456000"},
    )),
    ("Permit2 PermitBatch", document(
        "PermitBatch",
        {
            "PermitDetails": [{"name": "token", "type": "address"},
                              {"name": "amount", "type": "uint160"},
                              {"name": "expiration", "type": "uint48"},
                              {"name": "nonce", "type": "uint48"}],
            "PermitBatch": [{"name": "details", "type": "PermitDetails[]"},
                            {"name": "spender", "type": "address"},
                            {"name": "sigDeadline", "type": "uint256"}],
        },
        {"name": "Permit2", "chainId": 1, "verifyingContract": PERMIT2},
        {"details": [
            {"token": USDC, "amount": "5000000", "expiration": 1900000000, "nonce": 1},
            {"token": WETH, "amount": "2000000000000000000", "expiration": 1900000000,
             "nonce": 0}],
         "spender": ROUTER, "sigDeadline": "1893456000"},
    )),
    ("Permit2 PermitBatchTransferFrom", document(
        "PermitBatchTransferFrom",
        {
            "TokenPermissions": [{"name": "token", "type": "address"},
                                 {"name": "amount", "type": "uint256"}],
            "PermitBatchTransferFrom": [{"name": "permitted", "type": "TokenPermissions[]"},
                                        {"name": "spender", "type": "address"},
                                        {"name": "nonce", "type": "uint256"},
                                        {"name": "deadline", "type": "uint256"}],
        },
        {"name": "Permit2", "chainId": 10, "verifyingContract": PERMIT2},
        {"permitted": [{"token": USDC, "amount": "7"}, {"token": WETH, "amount": "9"}],
         "spender": BOB, "nonce": "123456789", "deadline": "1893456000"},
    )),
]

MESSAGES = [
    ("short text", b"hello"),
    ("empty", b""),
    ("multi-line text (sign-in style)",
     b"example.com wants you to sign in with your Ethereum account:\n"
     b"0x2c7536E3605D9C16a7a3D7b1898e529396a65c23\n\nNonce: 32891756\n"),
    ("binary", bytes(range(256))),
]


def main():
    account = Account.from_key(PRIVATE_KEY)
    out = {
        "generator": f"tests/interop/eth_vectors.py with eth-account {version('eth-account')}",
        "regenerate": "$(bash scripts/test-env.sh) tests/interop/eth_vectors.py"
                      " > eth/tests/data/eth_account_vectors.json",
        "private_key": PRIVATE_KEY,
        "address": account.address,
        "transactions": [],
        "typed_data": [],
        "messages": [],
    }
    for name, tx in TRANSACTIONS:
        signed = Account.sign_transaction(tx, PRIVATE_KEY)
        raw = bytes(signed.raw_transaction)
        # The hash eth-account signs (its own internal helper: no public API exposes it).
        signing_hash = serializable_unsigned_transaction_from_dict(dict(tx)).hash()
        out["transactions"].append({
            "name": name,
            "transaction": rpc_transaction(tx, account.address),
            "signing_hash": "0x" + bytes(signing_hash).hex(),
            "r": "0x" + signed.r.to_bytes(32, "big").hex(),
            "s": "0x" + signed.s.to_bytes(32, "big").hex(),
            "v": signed.v,
            "raw": "0x" + raw.hex(),
            "hash": "0x" + bytes(signed.hash).hex(),
        })
        assert keccak(raw) == bytes(signed.hash)
    for name, doc in TYPED_DATA:
        signed = Account.sign_typed_data(PRIVATE_KEY, full_message=doc)
        out["typed_data"].append({
            "name": name,
            "document": doc,
            "signing_hash": "0x" + bytes(signed.message_hash).hex(),
            "signature": "0x" + bytes(signed.signature).hex(),
        })
    for name, msg in MESSAGES:
        signed = Account.sign_message(encode_defunct(primitive=msg), PRIVATE_KEY)
        out["messages"].append({
            "name": name,
            "message": "0x" + msg.hex(),
            "signing_hash": "0x" + bytes(signed.message_hash).hex(),
            "signature": "0x" + bytes(signed.signature).hex(),
        })
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
