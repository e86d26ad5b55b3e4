#!/usr/bin/env python3
"""Recovers the signer of a secp256k1 signature with eth-keys (an implementation independent
of Strongroom's) and prints JSON {"address": EIP-55, "public_key": "0x04…"}.

usage: recover_signer.py DIGEST_HEX SIGNATURE_HEX   (signature: 65 bytes r‖s‖v, v in {0,1})
"""
import json
import sys

from eth_keys import keys

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        sys.exit(1)
    digest = bytes.fromhex(sys.argv[1].removeprefix("0x"))
    sig = bytes.fromhex(sys.argv[2].removeprefix("0x"))
    if len(digest) != 32 or len(sig) != 65 or sig[64] not in (0, 1):
        print("digest must be 32 bytes, signature 65 with v in {0,1}", file=sys.stderr)
        sys.exit(1)
    signature = keys.Signature(sig)
    public = signature.recover_public_key_from_msg_hash(digest)
    print(json.dumps({
        "address": public.to_checksum_address(),
        "public_key": "0x04" + public.to_bytes().hex(),
        "verifies": signature.verify_msg_hash(digest, public),
        # Ethereum (EIP-2) accepts only s <= n/2.
        "low_s": signature.s <= SECP256K1_N // 2,
    }))


if __name__ == "__main__":
    main()
