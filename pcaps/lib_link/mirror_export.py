#!/usr/bin/env python3
"""Software remote-mirror exporter: GRE (gretap) or ERSPAN type II / III.

The capture VM's kernel has no ip_gre/erspan, so this plays the part of the
switch's tunnel endpoint.  It creates TAP device DEV; `tc ... action mirred
egress mirror dev DEV` copies the REAL frames of a mirrored port into it; this
program reads each copied frame and sends it to DST inside a GRE header
(built with scapy's GRE / ERSPAN layers, field values as Linux's gretap and
erspan drivers would use) through a raw IPPROTO_GRE socket, so the outer IPv4
header is the kernel's own.  Nothing but the GRE/ERSPAN header is synthesised.

usage: mirror_export.py DEV DST MODE READY_FILE
       MODE = gretap | erspan2 | erspan3
       erspan2: session id 100, index 123 (ip ... erspan_ver 1 key 100 erspan 123)
       erspan3: session id 101, hwid 7, direction ingress (0), granularity 100us
"""
import fcntl
import os
import socket
import struct
import sys
import time

from scapy.layers.l2 import GRE
from scapy.contrib.erspan import ERSPAN_II, ERSPAN_III

TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000


def main():
    dev, dst, mode, ready = sys.argv[1:5]
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", dev.encode(), IFF_TAP | IFF_NO_PI))
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 47)
    open(ready, "w").close()
    seq = 0
    t0 = time.monotonic()
    while True:
        frame = os.read(fd, 65536)
        if mode == "gretap":
            hdr = GRE(proto=0x6558)
        elif mode == "erspan2":
            hdr = GRE(seqnum_present=1, sequence_number=seq, proto=0x88BE) / ERSPAN_II(
                ver=1, vlan=0, cos=0, en=0, t=0, session_id=100, index=123
            )
        else:
            ts = int((time.monotonic() - t0) * 10000) & 0xFFFFFFFF  # 100 us units
            hdr = GRE(seqnum_present=1, sequence_number=seq, proto=0x22EB) / ERSPAN_III(
                ver=2, vlan=0, cos=0, bso=0, t=0, session_id=101, timestamp=ts,
                sgt_other=0, p=0, ft=0, hw=7, d=0, gra=0, o=0,
            )
        seq += 1
        s.sendto(bytes(hdr) + frame, (dst, 0))


if __name__ == "__main__":
    main()
