#!/usr/bin/env python3
"""Independent computation of the identity crate's known-answer vectors (hashlib only).

Writes identity/tests/data/answer_vectors.txt and audit_vectors.txt; the Rust tests compare
their own results with these files.  Run: python3 tests/interop/identity_vectors.py
"""
import hashlib
import pathlib
import struct


def field(h, b):
    h.update(struct.pack(">Q", len(b)))
    h.update(b)


def answer_request_digest(method, path, body, stamp):
    h = hashlib.sha256()
    field(h, b"strongroom/v1/answer-request")
    field(h, method.encode())
    field(h, path.encode())
    field(h, hashlib.sha256(body).digest())
    field(h, (stamp or "").encode())
    return h.digest()


def answer_message(request_digest, status, time, head_seq, head_hash, body):
    h = hashlib.sha256()
    field(h, b"strongroom/v2/answer")
    h.update(request_digest)
    h.update(struct.pack(">H", status))
    h.update(struct.pack(">Q", time))
    h.update(struct.pack(">Q", head_seq))
    h.update(head_hash)
    h.update(hashlib.sha256(body).digest())
    return h.digest()


def entry_hash(entry):
    h = hashlib.sha256()
    field(h, b"strongroom/v1/audit-entry")
    h.update(entry)
    return h.digest()


def checkpoint_message(seq, head, time):
    h = hashlib.sha256()
    field(h, b"strongroom/v1/audit-checkpoint")
    h.update(struct.pack(">Q", seq))
    h.update(head)
    h.update(struct.pack(">Q", time))
    return h.digest()


out = pathlib.Path(__file__).resolve().parents[2] / "identity" / "tests" / "data"
d = answer_request_digest("GET", "/v1/policy", b"", None)
m = answer_message(d, 200, 1_700_000_000, 41, b"\xab" * 32, b"{}")
(out / "answer_vectors.txt").write_text(f"request_digest={d.hex()}\nanswer_message={m.hex()}\n")
e = entry_hash(b'{"kind":"boot"}')
c = checkpoint_message(3, b"\xab" * 32, 1_700_000_000)
(out / "audit_vectors.txt").write_text(f"entry_hash={e.hex()}\ncheckpoint_message={c.hex()}\n")
