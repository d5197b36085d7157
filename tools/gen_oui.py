#!/usr/bin/env python3
"""Compiles the IEEE registries of MAC address blocks into the compact table
wardwatch embeds (src/asset/oui.bin), so that the vendor of a MAC address is
known offline, without the network, at a small build-time cost (build.rs inflates it).

Input: Debian's `ieee-data` package (`apt-get install ieee-data`), which
ships the IEEE Registration Authority's public listings as CSV:
  oui.csv   MA-L, 24-bit prefixes
  mam.csv   MA-M, 28-bit prefixes
  oui36.csv MA-S, 36-bit prefixes
  iab.csv   IAB,  36-bit prefixes (the former Individual Address Blocks)
Organisation names are kept as the IEEE lists them (whitespace collapsed);
"Private" registrations are kept as such.

Output (before zlib compression; all integers little endian):
  b"WWOUI1\\n"
  u32 length + the source description (UTF-8)
  u32 name count; u32 end offset of each name in the blob; u32 blob length;
      the names, UTF-8, concatenated (each once, sorted)
  three tables, 24-bit, 28-bit and 36-bit prefixes, each:
      u32 count; count x prefix (sorted; u32 for 24 and 28 bits, u64 for
      36); count x u32 name index
The file is the zlib stream of that (wardwatch's build.rs inflates it into
the binary, which reads it in place).

Usage: python3 tools/gen_oui.py [/usr/share/ieee-data] > src/asset/oui.bin
"""

import csv
import io
import os
import struct
import sys
import zlib


def read(path, bits):
    out = []
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            hexdigits = row["Assignment"].strip()
            if len(hexdigits) * 4 != bits:
                raise SystemExit(f"{path}: {hexdigits!r} is not {bits} bits")
            name = " ".join(row["Organization Name"].split())
            out.append((int(hexdigits, 16), name))
    return out


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else "/usr/share/ieee-data"
    tables = {
        24: read(os.path.join(src, "oui.csv"), 24),
        28: read(os.path.join(src, "mam.csv"), 28),
        36: read(os.path.join(src, "oui36.csv"), 36) + read(os.path.join(src, "iab.csv"), 36),
    }
    try:
        with open(os.path.join(src, ".lastupdate")) as f:
            stamp = f.read().strip()
    except OSError:
        stamp = "?"
    names = sorted({n for t in tables.values() for _, n in t})
    index = {n: i for i, n in enumerate(names)}
    out = io.BytesIO()
    out.write(b"WWOUI1\n")
    desc = f"IEEE MA-L/MA-M/MA-S/IAB registries from Debian ieee-data (.lastupdate {stamp})".encode()
    out.write(struct.pack("<I", len(desc)) + desc)
    blob = b""
    ends = []
    for n in names:
        blob += n.encode()
        ends.append(len(blob))
    out.write(struct.pack("<I", len(names)))
    out.write(struct.pack(f"<{len(ends)}I", *ends))
    out.write(struct.pack("<I", len(blob)) + blob)
    for bits in (24, 28, 36):
        # One name per prefix (a prefix listed twice keeps its first name).
        seen = {}
        for p, n in tables[bits]:
            seen.setdefault(p, n)
        items = sorted(seen.items())
        out.write(struct.pack("<I", len(items)))
        wide = "Q" if bits > 32 else "I"
        out.write(struct.pack(f"<{len(items)}{wide}", *[p for p, _ in items]))
        out.write(struct.pack(f"<{len(items)}I", *[index[n] for _, n in items]))
    sys.stdout.buffer.write(zlib.compress(out.getvalue(), 9))
    print(
        f"{len(names)} names, {len(tables[24])}/{len(tables[28])}/{len(tables[36])} "
        f"prefixes of 24/28/36 bits, {len(out.getvalue())} bytes inflated",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
