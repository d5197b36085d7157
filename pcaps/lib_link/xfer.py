#!/usr/bin/env python3
"""One TCP transfer of known byte streams (see pattern.py).

server: xfer.py server BIND_ADDR PORT S2C_LABEL S2C_LEN
    accepts one connection, reads the client's stream to EOF, then sends
    pattern(S2C_LABEL, S2C_LEN) and closes.  Prints "c2s <len> <sha256>".
client: xfer.py client ADDR PORT C2S_LABEL C2S_LEN
    connects, sends pattern(C2S_LABEL, C2S_LEN) in 4 KiB writes, half-closes,
    reads the reply to EOF.  Prints "s2c <len> <sha256>".
"""
import hashlib
import socket
import sys
import time

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from pattern import stream  # noqa: E402


def family(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def read_all(s):
    buf = bytearray()
    while True:
        d = s.recv(65536)
        if not d:
            return bytes(buf)
        buf += d


def main():
    role, addr, port, label, n = sys.argv[1:6]
    port, n = int(port), int(n)
    if role == "server":
        ls = socket.socket(family(addr), socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind((addr, port))
        ls.listen(1)
        print("ready", flush=True)
        c, _ = ls.accept()
        got = read_all(c)
        c.sendall(stream(label, n))
        c.shutdown(socket.SHUT_WR)
        read_all(c)
        c.close()
        print("c2s", len(got), hashlib.sha256(got).hexdigest(), flush=True)
    else:
        s = socket.create_connection((addr, port), timeout=30)
        data = stream(label, n)
        for i in range(0, len(data), 4096):
            s.sendall(data[i : i + 4096])
        s.shutdown(socket.SHUT_WR)
        got = read_all(s)
        time.sleep(0.05)
        s.close()
        print("s2c", len(got), hashlib.sha256(got).hexdigest(), flush=True)


if __name__ == "__main__":
    main()
