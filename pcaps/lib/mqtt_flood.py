#!/usr/bin/env python3
"""Attacker's client for gen_mqtt_padded.sh: an MQTT 3.1.1 login to mosquitto
as admin/admin over a plain socket (the bytes are the attacker's, the TCP
stack and the broker are real), then, in one write, 2 000 malformed
five-byte PUBLISHes (QoS 3, which MQTT forbids) followed by a valid QoS 0
PUBLISH of patient JSON. mosquitto drops the connection at the first
malformed one; the bytes are on the wire all the same, which is what a
sensor reads: each malformed message is an anomaly, and a flood of them must
neither flood the EVE output nor hide the patient data behind it.

Usage: mqtt_flood.py HOST PORT
"""

import json
import socket
import sys

sys.path.insert(0, __import__("os").path.dirname(__file__))
import fakeids  # noqa: E402


def utf8(s):
    b = s.encode()
    return len(b).to_bytes(2, "big") + b


def packet(first, body):
    n, rem = len(body), b""
    while True:
        d, n = n % 128, n // 128
        rem += bytes([d | (0x80 if n else 0)])
        if not n:
            return bytes([first]) + rem + body


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    s = socket.create_connection((host, port))
    # CONNECT: protocol MQTT level 4, flags username+password+clean session.
    s.sendall(packet(0x10, utf8("MQTT") + bytes([4, 0xC2]) + (60).to_bytes(2, "big")
                     + utf8("MON-W3-BED14") + utf8("admin") + utf8("admin")))
    connack = s.recv(4)
    assert connack[:1] == b"\x20", connack
    bad = packet(0x36, utf8("A")[1:] + b"\x00\x01")  # PUBLISH, QoS 3
    p = fakeids.JANE
    good = packet(0x30, utf8("ward3/bed14/patient") + json.dumps({
        "device": "MON-W3-BED14", "patient": {
            "name": p["name"], "mrn": p["mrn"], "birthDate": p["birth_date"]},
        "hr": 71}).encode())
    try:
        s.sendall(bad * 2000 + good)
        s.settimeout(2)
        while s.recv(4096):
            pass
    except OSError:
        pass
    s.close()


if __name__ == "__main__":
    main()
