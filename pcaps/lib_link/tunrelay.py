#!/usr/bin/env python3
"""Point-to-point IP tunnel between two namespaces made of two TUN devices.

The capture VM's kernel has no ipip/sit/gre, so the "tunnel" is this relay:
it attaches to the persistent TUN device DEV_A in namespace NS_A and DEV_B in
NS_B and copies every IP packet the kernel writes to one into the other.  The
packets themselves are produced and consumed by the kernel's IP/TCP stack;
a capture on either TUN device has link type RAW (no link-layer header).

usage: tunrelay.py NS_A DEV_A NS_B DEV_B READY_FILE   (runs until killed)
"""
import ctypes
import fcntl
import os
import select
import struct
import sys

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
CLONE_NEWNET = 0x40000000
libc = ctypes.CDLL(None, use_errno=True)


def enter(ns):
    fd = os.open("/run/netns/" + ns, os.O_RDONLY)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "setns " + ns)
    os.close(fd)


def attach(dev):
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", dev.encode(), IFF_TUN | IFF_NO_PI))
    return fd


def main():
    ns_a, dev_a, ns_b, dev_b, ready = sys.argv[1:6]
    enter(ns_a)
    fa = attach(dev_a)
    enter(ns_b)
    fb = attach(dev_b)
    open(ready, "w").close()
    peer = {fa: fb, fb: fa}
    while True:
        r, _, _ = select.select([fa, fb], [], [])
        for fd in r:
            os.write(peer[fd], os.read(fd, 65536))


if __name__ == "__main__":
    main()
