#!/usr/bin/env python3
"""Small converters / inspectors for classic pcap files (real captures in, real
packets out -- these only re-frame records, they never invent packet bytes).

  pcaptool.py bigendian SRC DST   LE pcap (usec or nsec) -> big-endian usec pcap
                                  (nsec timestamps are truncated to usec)
  pcaptool.py null SRC DST        Ethernet pcap -> LINKTYPE_NULL (0): IPv4 frames
                                  only, 14-byte Ethernet header replaced by the
                                  4-byte little-endian AF_INET (2); non-IPv4
                                  frames (ARP) are left out
  pcaptool.py corrupt SRC DST N   copy; record N (1-based) gets caplen 0x7fffffff
  pcaptool.py cutpoint SRC K      byte offset inside record K+1's data (half way)
  pcaptool.py follow              stdin = `tshark -q -z follow,tcp,raw,N`; prints
                                  "<node> <len> <sha256>" per direction
"""
import hashlib
import struct
import sys


def read_pcap(path):
    data = open(path, "rb").read()
    magic = struct.unpack("<I", data[:4])[0]
    if magic == 0xA1B2C3D4:
        nano = False
    elif magic == 0xA1B23C4D:
        nano = True
    else:
        raise SystemExit("%s: not a little-endian pcap (magic %08x)" % (path, magic))
    _, _, _, _, snap, lt = struct.unpack("<HHiIII", data[4:24])
    recs = []
    off = 24
    while off + 16 <= len(data):
        sec, frac, cap, orig = struct.unpack("<IIII", data[off : off + 16])
        recs.append((off, sec, frac, cap, orig, data[off + 16 : off + 16 + cap]))
        off += 16 + cap
    return data, nano, snap, lt, recs


def bigendian(src, dst):
    _, nano, snap, lt, recs = read_pcap(src)
    out = [struct.pack(">IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, snap, lt)]
    for _, sec, frac, cap, orig, pkt in recs:
        usec = frac // 1000 if nano else frac
        out.append(struct.pack(">IIII", sec, usec, cap, orig) + pkt)
    open(dst, "wb").write(b"".join(out))
    print("records", len(recs))


def null(src, dst):
    _, nano, snap, lt, recs = read_pcap(src)
    assert lt == 1, "source must be Ethernet"
    out = [struct.pack("<IHHiIII", 0xA1B23C4D if nano else 0xA1B2C3D4, 2, 4, 0, 0, snap, 0)]
    n = 0
    for _, sec, frac, cap, orig, pkt in recs:
        if cap < 14 or pkt[12:14] != b"\x08\x00":
            continue
        body = struct.pack("<I", 2) + pkt[14:]
        out.append(struct.pack("<IIII", sec, frac, cap - 10, orig - 10) + body)
        n += 1
    open(dst, "wb").write(b"".join(out))
    print("records", n)


def corrupt(src, dst, n):
    data, _, _, _, recs = read_pcap(src)
    off = recs[n - 1][0]
    b = bytearray(data)
    b[off + 8 : off + 12] = struct.pack("<I", 0x7FFFFFFF)
    open(dst, "wb").write(bytes(b))
    print("record", n, "header_offset", off, "caplen_field_offset", off + 8,
          "old_caplen", recs[n - 1][3])


def cutpoint(src, k):
    _, _, _, _, recs = read_pcap(src)
    off, _, _, cap, _, _ = recs[k]
    print(off + 16 + cap // 2)


def follow():
    nodes = {0: bytearray(), 1: bytearray()}
    started = False
    for line in sys.stdin:
        if line.startswith("====="):
            if started:
                break
            started = True
            continue
        if not started or line.startswith(("Follow:", "Filter:", "Node ")):
            continue
        node = 1 if line.startswith("\t") else 0
        h = line.strip()
        if h:
            nodes[node] += bytes.fromhex(h)
    for k, v in nodes.items():
        print(k, len(v), hashlib.sha256(v).hexdigest())


def main():
    a = sys.argv[1:]
    if a[0] == "bigendian":
        bigendian(a[1], a[2])
    elif a[0] == "null":
        null(a[1], a[2])
    elif a[0] == "corrupt":
        corrupt(a[1], a[2], int(a[3]))
    elif a[0] == "cutpoint":
        cutpoint(a[1], int(a[2]))
    elif a[0] == "follow":
        follow()


if __name__ == "__main__":
    main()
