#!/usr/bin/env python3
"""Verifies an Ed25519 signature with Python `cryptography` (OpenSSL's Ed25519, independent
of Strongroom's) and prints JSON {"verifies": bool}.

usage: ed25519_verify.py PUBLIC_KEY_HEX MESSAGE_HEX SIGNATURE_HEX
"""
import json
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


def main():
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        sys.exit(1)
    public, message, signature = (bytes.fromhex(a.removeprefix("0x")) for a in sys.argv[1:])
    key = Ed25519PublicKey.from_public_bytes(public)
    try:
        key.verify(signature, message)
        verifies = True
    except InvalidSignature:
        verifies = False
    print(json.dumps({"verifies": verifies}))


if __name__ == "__main__":
    main()
