#!/usr/bin/env python3
"""Rewrite IPv4 addresses, MAC addresses and TTLs in a classic pcap file.

Usage: rewrite.py IN.pcap OUT.pcap MAP [MAP...]

MAP is  OLD_IP=NEW_IP[,mac=AA:BB:CC:DD:EE:FF][,ttl=-N]
  - every IPv4 source/destination OLD_IP becomes NEW_IP;
  - mac=  sets the Ethernet address of frames sent by / to that host
          (for a host "abroad" give the hospital gateway's MAC: that is what
          a sensor on the LAN sees);
  - ttl=-N lowers the TTL of packets *sent by* that host by N (hops between
          it and the sensor), so remote hosts do not look like LAN neighbours.

Only Ethernet (linktype 1) + IPv4 + TCP/UDP is handled, which is all the
capture scripts produce. Any IPv4 address not in a MAP is an error: the
namespace addresses must never survive into a committed capture.
IP header and TCP/UDP checksums are recomputed; every other byte, the record
timestamps and the packet order are kept exactly. Pure standard library.
"""

import struct
import sys


def csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def parse_map(args):
    m = {}
    for a in args:
        old, rest = a.split("=", 1)
        parts = rest.split(",")
        ent = {"ip": bytes(int(x) for x in parts[0].split(".")), "mac": None, "ttl": 0}
        for p in parts[1:]:
            k, v = p.split("=", 1)
            if k == "mac":
                ent["mac"] = bytes(int(x, 16) for x in v.split(":"))
            elif k == "ttl":
                ent["ttl"] = int(v)
            else:
                raise SystemExit("unknown map option %r" % k)
        m[bytes(int(x) for x in old.split("."))] = ent
    return m


def rewrite_frame(frame: bytearray, hosts) -> bytearray:
    if len(frame) < 14 + 20 or frame[12:14] != b"\x08\x00":
        raise SystemExit("non-IPv4 frame in capture (ethertype %s)" % frame[12:14].hex())
    ip = 14
    ihl = (frame[ip] & 0x0F) * 4
    src, dst = bytes(frame[ip + 12 : ip + 16]), bytes(frame[ip + 16 : ip + 20])
    if src not in hosts or dst not in hosts:
        raise SystemExit("unmapped address %s -> %s" % (".".join(map(str, src)), ".".join(map(str, dst))))
    hs, hd = hosts[src], hosts[dst]
    frame[ip + 12 : ip + 16] = hs["ip"]
    frame[ip + 16 : ip + 20] = hd["ip"]
    if hd["mac"]:
        frame[0:6] = hd["mac"]
    if hs["mac"]:
        frame[6:12] = hs["mac"]
    if hs["ttl"]:
        frame[ip + 8] = max(1, frame[ip + 8] + hs["ttl"])
    frame[ip + 10 : ip + 12] = b"\0\0"
    frame[ip + 10 : ip + 12] = struct.pack("!H", csum(bytes(frame[ip : ip + ihl])))
    proto = frame[ip + 9]
    total = struct.unpack("!H", frame[ip + 2 : ip + 4])[0]
    frag = struct.unpack("!H", frame[ip + 6 : ip + 8])[0]
    l4 = ip + ihl
    end = ip + total
    if frag & 0x1FFF or frag & 0x2000 or end > len(frame):
        return frame  # fragment or truncated: leave L4 alone
    if proto in (6, 17):
        off = 16 if proto == 6 else 6
        frame[l4 + off : l4 + off + 2] = b"\0\0"
        pseudo = bytes(frame[ip + 12 : ip + 20]) + struct.pack("!BBH", 0, proto, end - l4)
        c = csum(pseudo + bytes(frame[l4:end]))
        if proto == 17 and c == 0:
            c = 0xFFFF
        frame[l4 + off : l4 + off + 2] = struct.pack("!H", c)
    return frame


def main():
    if len(sys.argv) < 4:
        raise SystemExit(__doc__)
    hosts = parse_map(sys.argv[3:])
    with open(sys.argv[1], "rb") as f:
        data = f.read()
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        e = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = ">"
    else:
        raise SystemExit("not a classic pcap file")
    linktype = struct.unpack(e + "I", data[20:24])[0]
    if linktype != 1:
        raise SystemExit("linktype %d not supported" % linktype)
    out = bytearray(data[:24])
    pos = 24
    n = 0
    while pos + 16 <= len(data):
        ts_s, ts_u, incl, orig = struct.unpack(e + "IIII", data[pos : pos + 16])
        frame = bytearray(data[pos + 16 : pos + 16 + incl])
        pos += 16 + incl
        out += data[pos - 16 - incl : pos - incl]
        out += rewrite_frame(frame, hosts)
        n += 1
    with open(sys.argv[2], "wb") as f:
        f.write(out)
    print("rewrote %d packets -> %s" % (n, sys.argv[2]), file=sys.stderr)


if __name__ == "__main__":
    main()
