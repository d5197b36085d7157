#!/usr/bin/env python3
"""UDP sender / sink used to make the kernel fragment datagrams.

sink:  udp.py sink BIND_ADDR PORT COUNT      (receives COUNT datagrams, prints sizes)
send:  udp.py send DST PORT SIZE [SIZE...]   (one sendto() per SIZE; payload is
       pattern.py stream "udp-<SIZE>" so it is documented and checkable)
"""
import socket
import sys
import time

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from pattern import stream  # noqa: E402


def fam(a):
    return socket.AF_INET6 if ":" in a else socket.AF_INET


def main():
    role, addr, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if role == "sink":
        s = socket.socket(fam(addr), socket.SOCK_DGRAM)
        s.bind((addr, port))
        s.settimeout(10)
        print("ready", flush=True)
        for _ in range(int(sys.argv[4])):
            d, peer = s.recvfrom(65536)
            print("got", len(d), peer[0], flush=True)
    else:
        s = socket.socket(fam(addr), socket.SOCK_DGRAM)
        for size in sys.argv[4:]:
            s.sendto(stream("udp-" + size, int(size)), (addr, port))
            time.sleep(0.05)


if __name__ == "__main__":
    main()
