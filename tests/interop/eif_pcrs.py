#!/usr/bin/env python3
"""Enclave Image File (EIF) measurements and layout, computed independently of Rust and of
AWS's EIF crate (Python's hashlib, struct and zlib only), for tests/e2e/measure.rs.

  eif_pcrs.py pcrs --kernel K --cmdline S --ramdisk R [--ramdisk R ...] [--eif FILE]
      Prints {"PCR0": hex, "PCR1": hex, "PCR2": hex}: PCR = SHA-384(48 zero bytes ||
      SHA-384(data)), data being kernel || cmdline || every ramdisk (PCR0), kernel ||
      cmdline || the first ramdisk (PCR1), the other ramdisks (PCR2). With --eif, also checks
      that FILE is laid out as the EIF format says and holds exactly these inputs, and adds
      "layout": {"version", "sections": [{"type", "offset", "size"}], "crc_ok"}.
  eif_pcrs.py set-size FILE INDEX SIZE
      Sets section INDEX's size, in its section header and in the header's table, and
      recomputes the CRC: a forged header that is otherwise consistent.
  eif_pcrs.py fix-crc FILE
      Recomputes the header's CRC over the file as it is.
"""

import argparse
import hashlib
import json
import struct
import sys
import zlib

MAGIC = b".eif"
MAX_SECTIONS = 32
# magic, version, flags, default_mem, default_cpus, reserved, num_sections,
# section_offsets[32], section_sizes[32], unused, crc32 — big-endian.
HEADER = struct.Struct(">4sHHQQHH%dQ%dQII" % (MAX_SECTIONS, MAX_SECTIONS))
SECTION = struct.Struct(">HHQ")  # type, flags, size
TYPES = {1: "kernel", 2: "cmdline", 3: "ramdisk", 4: "signature", 5: "metadata"}
OFFSETS_AT = 28
SIZES_AT = OFFSETS_AT + 8 * MAX_SECTIONS
CRC_AT = HEADER.size - 4

assert HEADER.size == 548 and SECTION.size == 12


def pcr(*parts):
    inner = hashlib.sha384()
    for p in parts:
        inner.update(p)
    return hashlib.sha384(bytes(48) + inner.digest()).hexdigest()


def crc(image):
    return zlib.crc32(image[CRC_AT + 4 :], zlib.crc32(image[:CRC_AT])) & 0xFFFFFFFF


def fail(msg):
    print("eif_pcrs.py: " + msg, file=sys.stderr)
    sys.exit(2)


def layout(image):
    if len(image) < HEADER.size:
        fail("shorter than the header")
    fields = HEADER.unpack_from(image)
    magic, version, _flags, _mem, _cpus, _res, count = fields[:7]
    offsets = fields[7 : 7 + MAX_SECTIONS]
    sizes = fields[7 + MAX_SECTIONS : 7 + 2 * MAX_SECTIONS]
    header_crc = fields[-1]
    if magic != MAGIC:
        fail("bad magic %r" % magic)
    sections = []
    pos = HEADER.size
    while pos < len(image):
        if pos + SECTION.size > len(image):
            fail("truncated section header at %d" % pos)
        kind, _f, size = SECTION.unpack_from(image, pos)
        if kind not in TYPES:
            fail("unknown section type %d at %d" % (kind, pos))
        if pos + SECTION.size + size > len(image):
            fail("section at %d runs past the end" % pos)
        sections.append({"type": TYPES[kind], "offset": pos, "size": size})
        pos += SECTION.size + size
    if count != len(sections):
        fail("header lists %d sections, file holds %d" % (count, len(sections)))
    for i, s in enumerate(sections):
        if (offsets[i], sizes[i]) != (s["offset"], s["size"]):
            fail("table entry %d does not match section %d" % (i, i))
    if any(offsets[count:]) or any(sizes[count:]):
        fail("table entries past the count")
    return {"version": version, "sections": sections, "crc_ok": header_crc == crc(image)}


def body(image, s):
    start = s["offset"] + SECTION.size
    return image[start : start + s["size"]]


def cmd_pcrs(args):
    kernel = open(args.kernel, "rb").read()
    cmdline = args.cmdline.encode()
    ramdisks = [open(r, "rb").read() for r in args.ramdisk]
    out = {
        "PCR0": pcr(kernel, cmdline, *ramdisks),
        "PCR1": pcr(kernel, cmdline, ramdisks[0]),
        "PCR2": pcr(*ramdisks[1:]),
    }
    if args.eif:
        image = open(args.eif, "rb").read()
        lay = layout(image)
        secs = lay["sections"]
        kinds = [s["type"] for s in secs]
        want = ["kernel", "cmdline", "metadata"] + ["ramdisk"] * len(ramdisks)
        if kinds != want:
            fail("sections %s, expected %s" % (kinds, want))
        if body(image, secs[0]) != kernel:
            fail("the kernel section is not the kernel")
        if body(image, secs[1]) != cmdline:
            fail("the cmdline section is not the cmdline")
        for i, r in enumerate(ramdisks):
            if body(image, secs[3 + i]) != r:
                fail("ramdisk section %d is not ramdisk %d" % (3 + i, i))
        meta = json.loads(body(image, secs[2]))
        lay["metadata"] = meta
        out["layout"] = lay
    print(json.dumps(out))


def cmd_set_size(args):
    image = bytearray(open(args.file, "rb").read())
    s = layout(bytes(image))["sections"][args.index]
    struct.pack_into(">Q", image, s["offset"] + 4, args.size)
    struct.pack_into(">Q", image, SIZES_AT + 8 * args.index, args.size)
    struct.pack_into(">I", image, CRC_AT, crc(image))
    open(args.file, "wb").write(image)


def cmd_fix_crc(args):
    image = bytearray(open(args.file, "rb").read())
    struct.pack_into(">I", image, CRC_AT, crc(image))
    open(args.file, "wb").write(image)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("pcrs")
    a.add_argument("--kernel", required=True)
    a.add_argument("--cmdline", required=True)
    a.add_argument("--ramdisk", action="append", required=True)
    a.add_argument("--eif")
    a.set_defaults(run=cmd_pcrs)
    b = sub.add_parser("set-size")
    b.add_argument("file")
    b.add_argument("index", type=int)
    b.add_argument("size", type=int)
    b.set_defaults(run=cmd_set_size)
    c = sub.add_parser("fix-crc")
    c.add_argument("file")
    c.set_defaults(run=cmd_fix_crc)
    args = p.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
