#!/usr/bin/env python3
"""Checks what a Strongroom enclave signed, with eth-account (an independent implementation).

Reads JSON on stdin:
  {"address": "0x…",
   "transactions": [{"fields": {…eth_signTransaction object…}, "answer": {"raw", "hash", "signing_hash"}}],
   "typed_data": [{"document": {…eth_signTypedData_v4…}, "answer": {"signature", "signing_hash"}}],
   "messages": [{"message": "0x…", "answer": {"signature", "signing_hash"}}]}
and prints, for each item, what eth-account computes: the signer it recovers, its own
signing hash for the same fields, and (transactions) the fields decoded from the raw bytes.
The Rust end-to-end test compares these with what it sent and what the enclave answered.
"""
import json
import sys

from eth_account import Account
from eth_account._utils.legacy_transactions import serializable_unsigned_transaction_from_dict
from eth_account.messages import encode_defunct, encode_typed_data
from eth_account.typed_transactions import TypedTransaction
from eth_utils import keccak, to_checksum_address
from hexbytes import HexBytes


def quantity(v):
    return int(v, 16) if isinstance(v, str) else v


def tx_dict(fields):
    """eth_signTransaction hex fields → eth-account's dict of ints/bytes."""
    out = {}
    for k, v in fields.items():
        if k in ("to",):
            out[k] = to_checksum_address(v)
        elif k in ("data", "input"):
            out["data"] = bytes.fromhex(v[2:])
        elif k == "accessList":
            out[k] = v
        elif k == "type":
            out[k] = quantity(v)
        else:
            out[k] = quantity(v)
    return out


def check_transaction(item):
    fields = tx_dict(item["fields"])
    raw = bytes.fromhex(item["answer"]["raw"][2:])
    signer = Account.recover_transaction(raw)
    unsigned = serializable_unsigned_transaction_from_dict(fields)
    decoded = TypedTransaction.from_bytes(HexBytes(raw)).as_dict() if raw[0] < 0x7F else None
    result = {
        "signer": signer,
        "signing_hash": "0x" + unsigned.hash().hex(),
        "hash": "0x" + keccak(raw).hex(),
    }
    if decoded is not None:
        result["decoded"] = {
            "chainId": decoded["chainId"],
            "nonce": decoded["nonce"],
            "to": to_checksum_address(decoded["to"]) if decoded.get("to") else None,
            "value": decoded["value"],
            "gas": decoded["gas"],
        }
    return result


def check_typed_data(item):
    signable = encode_typed_data(full_message=item["document"])
    signer = Account.recover_message(signable, signature=item["answer"]["signature"])
    # EIP-191 version 0x01: keccak(0x19 ‖ 0x01 ‖ domainSeparator ‖ hashStruct(message)).
    digest = keccak(b"\x19" + signable.version + signable.header + signable.body)
    return {"signer": signer, "signing_hash": "0x" + digest.hex()}


def check_message(item):
    signable = encode_defunct(hexstr=item["message"])
    signer = Account.recover_message(signable, signature=item["answer"]["signature"])
    digest = keccak(b"\x19" + signable.version + signable.header + signable.body)
    return {"signer": signer, "signing_hash": "0x" + digest.hex()}


def main():
    request = json.load(sys.stdin)
    print(json.dumps({
        "transactions": [check_transaction(t) for t in request.get("transactions", [])],
        "typed_data": [check_typed_data(t) for t in request.get("typed_data", [])],
        "messages": [check_message(m) for m in request.get("messages", [])],
    }))


if __name__ == "__main__":
    main()
