#!/usr/bin/env python3
"""An independent Nitro attestation verifier (cbor2 + cryptography), used to check that
Strongroom's verifier agrees with another implementation.

usage: verify_attestation.py DOC ROOT_PEM UNIX_TIME
DOC holds the COSE_Sign1 document, raw CBOR or base64. Prints one JSON object:
{"ok": true, "module_id": ..., "pcrs": {...}, "nonce": hex|null, ...} or
{"ok": false, "reason": "..."}; exits 0 either way (1 on usage errors).
"""
import base64
import binascii
import datetime
import json
import sys

import cbor2
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding


class Refused(Exception):
    pass


def load_doc(path):
    raw = open(path, "rb").read()
    try:
        return base64.b64decode(b"".join(raw.split()), validate=True)
    except (binascii.Error, ValueError):
        return raw


def verify(doc_bytes, root_der, when):
    obj = cbor2.loads(doc_bytes)
    if isinstance(obj, cbor2.CBORTag):
        if obj.tag != 18:
            raise Refused("wrong CBOR tag")
        obj = obj.value
    if not isinstance(obj, list) or len(obj) != 4:
        raise Refused("not a COSE_Sign1 array")
    protected, unprotected, payload, signature = obj
    if cbor2.loads(protected) != {1: -35}:
        raise Refused("protected header is not {alg: ES384}")
    if unprotected != {}:
        raise Refused("unprotected header not empty")
    doc = cbor2.loads(payload)
    for field in ("module_id", "digest", "timestamp", "pcrs", "certificate", "cabundle"):
        if doc.get(field) is None:
            raise Refused(f"missing {field}")
    if doc["digest"] != "SHA384":
        raise Refused("digest not SHA384")

    chain = [x509.load_der_x509_certificate(c) for c in doc["cabundle"]]
    leaf = x509.load_der_x509_certificate(doc["certificate"])
    if chain[0].public_bytes(Encoding.DER) != root_der:
        raise Refused("cabundle[0] is not the trusted root")
    path = chain + [leaf]
    for cert in path:
        if not (cert.not_valid_before_utc <= when <= cert.not_valid_after_utc):
            raise Refused(f"certificate {cert.subject.rfc4514_string()} not valid at {when}")
    for issuer, cert in zip(path, path[1:]):
        if cert.issuer != issuer.subject:
            raise Refused("issuer name does not chain")
        bc = issuer.extensions.get_extension_for_class(x509.BasicConstraints).value
        if not bc.ca:
            raise Refused("issuer is not a CA")
        try:
            issuer.public_key().verify(
                cert.signature,
                cert.tbs_certificate_bytes,
                ec.ECDSA(cert.signature_hash_algorithm),
            )
        except InvalidSignature:
            raise Refused("certificate signature invalid")

    if len(signature) != 96:
        raise Refused("signature not 96 bytes")
    r = int.from_bytes(signature[:48], "big")
    s = int.from_bytes(signature[48:], "big")
    sig_structure = cbor2.dumps(["Signature1", protected, b"", payload])
    key = leaf.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp384r1":
        raise Refused("leaf key not P-384")
    try:
        key.verify(encode_dss_signature(r, s), sig_structure, ec.ECDSA(hashes.SHA384()))
    except InvalidSignature:
        raise Refused("COSE signature invalid")

    hexo = lambda v: None if v is None else v.hex()
    return {
        "ok": True,
        "module_id": doc["module_id"],
        "timestamp_ms": doc["timestamp"],
        "pcrs": {str(k): v.hex() for k, v in sorted(doc["pcrs"].items())},
        "public_key": hexo(doc.get("public_key")),
        "user_data": hexo(doc.get("user_data")),
        "nonce": hexo(doc.get("nonce")),
        "certificate_subject": leaf.subject.rfc4514_string(),
    }


def main():
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        sys.exit(1)
    doc = load_doc(sys.argv[1])
    root = x509.load_pem_x509_certificate(open(sys.argv[2], "rb").read())
    when = datetime.datetime.fromtimestamp(float(sys.argv[3]), datetime.timezone.utc)
    try:
        result = verify(doc, root.public_bytes(Encoding.DER), when)
    except Refused as e:
        result = {"ok": False, "reason": str(e)}
    except Exception as e:  # malformed input of any kind
        result = {"ok": False, "reason": f"malformed: {type(e).__name__}: {e}"}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
