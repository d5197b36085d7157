#!/usr/bin/env python3
"""Deterministic byte streams for the TCP reassembly captures.

stream(label, n) = first n bytes of  SHA256(label + b":" + str(0)) ||
                                     SHA256(label + b":" + str(1)) || ...
(label and counter are ASCII; counter is decimal, no padding.)  Every 32-byte
block differs, so a reassembler that repeats, drops or misorders any segment
produces a different sha256.

usage: pattern.py LABEL N            -> writes the bytes to stdout
       pattern.py --sha LABEL N      -> prints sha256 hex of those bytes
"""
import hashlib
import sys


def stream(label, n):
    out = bytearray()
    k = 0
    lab = label.encode()
    while len(out) < n:
        out += hashlib.sha256(lab + b":" + str(k).encode()).digest()
        k += 1
    return bytes(out[:n])


def main():
    a = sys.argv[1:]
    if a and a[0] == "--sha":
        print(hashlib.sha256(stream(a[1], int(a[2]))).hexdigest())
    else:
        sys.stdout.buffer.write(stream(a[0], int(a[1])))


if __name__ == "__main__":
    main()
