#!/usr/bin/env python3
"""HL7 v2 peers built on python-hl7 (PyPI `hl7`): its MLLP listener
(`hl7.mllp.start_hl7_server`) answering with `Message.create_ack`, and clients
that use its MLLP connection (`hl7.mllp.open_hl7_connection`) or, for the
unframed CMS8000-style upload, a plain socket. The messages are parsed with
`hl7.parse` before they are sent, so each is well-formed HL7.

Usage:
  hl7_peers.py server PORT [N]        MLLP listener; ACK AA, or AE for an order
                                      without PID-3 (patient id); stops after N
                                      connections (default 1)
  hl7_peers.py bare-server PORT       unframed listener: reads CR-terminated
                                      segments, answers each message with an
                                      unframed ACK AA
  hl7_peers.py adt HOST PORT          ADT^A01, ADT^A08, ORM^O01, ORU^R01 and an
                                      ORM^O01 without PID-3, each awaiting its ACK
  hl7_peers.py burst HOST PORT        three ADT^A08 in one write (several MLLP
                                      frames per segment), then one ORU^R01 of
                                      ~9 kB (split across segments)
  hl7_peers.py bare HOST PORT N       N ORU^R01 vitals messages without MLLP
                                      framing (as the Contec CMS8000 sends them)
Segments end with CR; MLLP frames are 0x0B ... 0x1C 0x0D. Patients are the
fake identities of fakeids.py.
"""

import asyncio
import os
import socket
import sys
import time

import hl7
import hl7.mllp

sys.path.insert(0, os.path.dirname(__file__))
import fakeids  # noqa: E402

SB, EB, CR = b"\x0b", b"\x1c", b"\x0d"
# Fixed message times, so runs differ only in what the network changes.
TS = "19000101120000"


def msh(app, fac, rapp, rfac, mtype, ctrl, version="2.5"):
    return "MSH|^~\\&|%s|%s|%s|%s|%s||%s|%s|P|%s" % (app, fac, rapp, rfac, TS, mtype, ctrl, version)


def pid(p, with_id=True):
    ident = "%s^^^CHU-EXEMPLE^MR~%s^^^INS-NIR^NH" % (p["mrn"], p["nir"]) if with_id else ""
    return "PID|1||%s||%s^%s||%s|%s|||%s||%s" % (
        ident, p["family"], p["given"], p["birth_date"].replace("-", ""), p["sex"],
        p["address"], p["phone"])


def message(*segments):
    text = "\r".join(segments)
    return hl7.parse(text)


def adt(event, p, ctrl, pclass="I"):
    return message(
        msh("ADT-SRC", "CHU-EXEMPLE", "PACS-RIS", "RADIOLOGIE", "ADT^%s^ADT_A01" % event, ctrl),
        "EVN|%s|%s" % (event, TS),
        pid(p),
        "NK1|1|TEST^MARIE|MTH^Mother",
        "PV1|1|%s|W3^12^1^CHU-EXEMPLE||||1234^TEST^REFERRING^^^DR" % pclass,
    )


def orm(p, ctrl, with_id=True):
    return message(
        msh("CPOE", "CHU-EXEMPLE", "LAB", "LABO-CENTRAL", "ORM^O01^ORM_O01", ctrl),
        pid(p, with_id),
        "PV1|1|I|W3^12^1",
        "ORC|NW|ORD-TEST-0001",
        "OBR|1|ORD-TEST-0001||85025^CBC^CPT",
    )


def oru(p, ctrl, hr=72, ecg_bytes=0):
    segs = [
        msh("MON-GW", "WARD3", "CENTRAL", "CHU-EXEMPLE", "ORU^R01^ORU_R01", ctrl),
        pid(p),
        "PV1|1|I|W3^12^1",
        "OBR|1|||VITALS^Vital signs",
        "OBX|1|NM|8867-4^Heart rate^LN||%d|/min|||||F" % hr,
        "OBX|2|NM|59408-5^SpO2^LN||97|%|||||F",
    ]
    if ecg_bytes:
        segs.append("OBX|3|ED|ECG^ECG lead II||^AP^Octet-stream^Base64^%s|||||F" % ("QUJDREVGR0g=" * (ecg_bytes // 12)))
    return message(*segs)


def frame(m):
    return SB + str(m).encode() + EB + CR


# ------------------------------------------------------------------ servers
def server(port, n=1):
    left = [int(n)]

    async def handle(reader, writer):
        try:
            while not writer.is_closing():
                m = await reader.readmessage()
                code = "AA"
                if str(m.segment("MSH")[9]).startswith("ORM") and not str(m.segment("PID")[3]):
                    code = "AE"
                ack = m.create_ack(code, message_id="ACK-" + str(m.segment("MSH")[10]))
                if code == "AE":
                    # MSA-3 carries the error text, ERR the coded error
                    # (HL7 table 0357, 101: required field missing).
                    segs = str(ack).strip("\r").split("\r")
                    segs = [s + "|Patient identifier missing" if s.startswith("MSA|") else s for s in segs]
                    segs.append("ERR|^^^101&Required field missing&HL70357|PID^1^3")
                    ack = hl7.parse("\r".join(segs))
                writer.writemessage(ack)
                await writer.drain()
        except asyncio.IncompleteReadError:
            pass
        writer.close()
        left[0] -= 1
        if left[0] <= 0:
            done.set()

    async def main():
        global done
        done = asyncio.Event()
        srv = await hl7.mllp.start_hl7_server(handle, host="0.0.0.0", port=int(port))
        async with srv:
            await done.wait()

    asyncio.run(main())


def bare_server(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", int(port)))
    s.listen(1)
    conn, _ = s.accept()
    buf = b""
    while True:
        chunk = conn.recv(65536)
        if not chunk:
            break
        buf += chunk
        # A message ends where the next MSH starts, or at a blank pause;
        # the client sends one message per write and waits for the ACK.
        while buf.endswith(CR) and buf.startswith(b"MSH|"):
            m = hl7.parse(buf.decode())
            ack = m.create_ack("AA", message_id="ACK-" + str(m.segment("MSH")[10]))
            conn.sendall(str(ack).encode() + CR)
            buf = b""
    conn.close()


# ------------------------------------------------------------------ clients
def adt_client(host, port):
    j, d = fakeids.JANE, fakeids.JOHN

    async def run():
        reader, writer = await hl7.mllp.open_hl7_connection(host, int(port))
        for m in (adt("A01", j, "ADT-TEST-0001"), adt("A08", j, "ADT-TEST-0002", "O"),
                  orm(d, "ORM-TEST-0001"), oru(j, "ORU-TEST-0001"),
                  orm(d, "ORM-TEST-0002", with_id=False)):
            writer.writemessage(m)
            await writer.drain()
            ack = await reader.readmessage()
            print("ack", str(ack.segment("MSA")[1]), file=sys.stderr)
            await asyncio.sleep(0.2)
        writer.close()
        await writer.wait_closed()

    asyncio.run(run())


def burst_client(host, port):
    j = fakeids.JANE
    c = socket.create_connection((host, int(port)))
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    three = b"".join(frame(adt("A08", j, "ADT-TEST-01%02d" % i)) for i in range(3))
    c.sendall(three)
    got = b""
    while got.count(EB + CR) < 3:
        got += c.recv(65536)
    time.sleep(0.2)
    c.sendall(frame(oru(j, "ORU-TEST-0100", 75, ecg_bytes=9000)))
    got = b""
    while EB + CR not in got:
        got += c.recv(65536)
    c.close()


def bare_client(host, port, n):
    j = fakeids.JANE
    c = socket.create_connection((host, int(port)))
    for i in range(int(n)):
        m = message(
            "MSH|^~\\&|CMS8000|MONITOR|||%s||ORU^R01|CMS-TEST-%04d|P|2.3.1" % (TS, i),
            pid(j),
            "PV1|1|I|W3^12^1||||TEST^DOCTOR^^DR",
            "OBX|1|NM|HR^Heart rate||%d|bpm|||||F" % (72 + i),
            "OBX|2|NM|SPO2^SpO2||97|%|||||F",
            "OBX|3|NM|NIBP^NIBP||118/76|mmHg|||||F",
        )
        c.sendall(str(m).encode() + CR)
        got = b""
        while not got.endswith(CR):
            got += c.recv(65536)
        time.sleep(0.3)
    c.close()


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"server": server, "bare-server": bare_server, "adt": adt_client,
     "burst": burst_client, "bare": bare_client}[cmd](*args)
