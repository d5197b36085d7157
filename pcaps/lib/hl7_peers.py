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
  hl7_peers.py variants HOST PORT     python-hl7 MLLP client: an HL7 2.1 ADT (trigger
                                      in EVN only), a 2.8 ORU with custom delimiters
                                      (MSH!*#%@, truncation character), an ORU with
                                      escape sequences and processing id D (refused:
                                      ACK AR, MSA-3 with an escape), a batch file
                                      (FHS/BHS, two ADT^A08, BTS/FTS) in one frame, and
                                      an ADT asking for no acknowledgment (MSH-15/16 NE)
  hl7_peers.py split HOST PORT        one ADT^A01 written in two sends (TCP_NODELAY):
                                      the start block and MSH, then PID and the rest
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
                block = (await reader.readblock()).decode()
                parsed = hl7.parse_hl7(block)
                # A batch file (FHS/BHS) is acknowledged message by message.
                msgs = [m for b in parsed for m in b] if hl7.isfile(block) else (
                    list(parsed) if hl7.isbatch(block) else [parsed])
                for m in msgs:
                    ack = answer(m)
                    if ack is not None:
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


def answer(m):
    """The listener's acknowledgment of `m` (None when MSH-15 and MSH-16 ask
    for none): AE for an order without PID-3, AR for processing id D."""
    seg = m.segment("MSH")

    def msh(i):
        return seg[i] if i < len(seg) else ""

    if str(msh(15)) == "NE" and str(msh(16)) == "NE":
        return None
    ctrl = str(msh(10))
    code, text, err = "AA", None, None
    if str(msh(9)).startswith("ORM") and not str(m.segment("PID")[3]):
        # MSA-3 carries the error text, ERR the coded error (HL7 table
        # 0357, 101: required field missing).
        code, text = "AE", "Patient identifier missing"
        err = "ERR|^^^101&Required field missing&HL70357|PID^1^3"
    if str(msh(11)) == "D":
        # Escaped field separator in the text (HL7 v2.5.1 2.7.4).
        code, text = "AR", "Processing ID \\F\\D\\F\\ not accepted"
    try:
        ack = m.create_ack(code, message_id="ACK-" + ctrl)
    except TypeError:
        # python-hl7 cannot acknowledge a message type without components
        # (HL7 2.1: MSH-9 "ADT", the trigger in EVN-1): the same by hand.
        s = m.separators[1]
        ack = hl7.parse(s.join(["MSH", str(msh(2)), str(msh(5)), str(msh(6)), str(msh(3)),
                                str(msh(4)), TS, "", "ACK", "ACK-" + ctrl, str(msh(11)),
                                str(msh(12))]) + "\r" + s.join(["MSA", code, ctrl]))
    if text is None:
        return ack
    s = m.separators[1]
    segs = str(ack).strip("\r").split("\r")
    segs = [x + s + text if x.startswith("MSA" + s) else x for x in segs]
    if err:
        segs.append(err)
    return hl7.parse("\r".join(segs))


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


def variants_client(host, port):
    j = fakeids.JANE
    v21 = message(
        "MSH|^~\\&|REG|CHU-EXEMPLE|ADT-GW|CHU-EXEMPLE|%s||ADT|V21-TEST-0001|P|2.1" % TS,
        "EVN|A01|%s" % TS,
        "PID|||%s||%s^%s||%s|%s" % (j["mrn"], j["family"], j["given"],
                                     j["birth_date"].replace("-", ""), j["sex"]),
        "PV1|1|I|W3^12^1",
    )
    # HL7 2.8 with every delimiter changed: field '!', component '*',
    # repetition '#', escape '%', subcomponent '@', truncation '$'.
    custom = message(
        "MSH!*#%%@$!MON-GW!WARD3!CENTRAL!CHU-EXEMPLE!%s!!ORU*R01*ORU_R01!V28-TEST-0001!P!2.8" % TS,
        "PID!1!!%s***CHU-EXEMPLE@1.2.250.1.999@ISO*MR#%s***INS-NIR*NH!!%s*%s!!%s!%s" % (
            j["mrn"], j["nir"], j["family"], j["given"], j["birth_date"].replace("-", ""),
            j["sex"]),
        "PV1!1!E!URG*1",
        "OBX!1!NM!8867-4*Heart rate*LN!!88!/min!!!!!F",
    )
    # Escape sequences in logged fields: hex (\X2D\ '-', \X27\ apostrophe),
    # an escaped subcomponent separator, and formatting in a note.
    escaped = message(
        "MSH|^~\\&|LIS\\X2D\\01|LAB\\T\\PATHO|EHR|CHU-EXEMPLE|%s||ORU^R01^ORU_R01|ESC-TEST-0001|D|2.5.1" % TS,
        "PID|1||%s^^^CHU-EXEMPLE^MR||D\\X27\\ARC^JEANNE||19000101|F" % j["mrn"],
        "OBR|1|||PATH^Pathology",
        "NTE|1||Result \\F\\ reviewed \\E\\ signed",
    )
    batch = hl7.parse_hl7("\r".join([
        "FHS|^~\\&|ADT-SRC|CHU-EXEMPLE|PACS-RIS|RADIOLOGIE|%s||BATCH-FILE-01" % TS,
        "BHS|^~\\&|ADT-SRC|CHU-EXEMPLE|PACS-RIS|RADIOLOGIE|%s||||BATCH-0001" % TS,
        str(adt("A08", j, "BAT-TEST-0001")).strip("\r"),
        str(adt("A08", fakeids.JOHN, "BAT-TEST-0002", "O")).strip("\r"),
        "BTS|2",
        "FTS|1",
    ]) + "\r")
    no_ack = message(
        "MSH|^~\\&|ADT-SRC|CHU-EXEMPLE|PACS-RIS|RADIOLOGIE|%s||ADT^A08^ADT_A01|NOACK-TEST-0001|P|2.5|||NE|NE" % TS,
        "EVN|A08|%s" % TS,
        pid(fakeids.JOHN),
    )

    async def run():
        reader, writer = await hl7.mllp.open_hl7_connection(host, int(port))
        for m, acks in ((v21, 1), (custom, 1), (escaped, 1), (batch, 2), (no_ack, 0)):
            writer.writemessage(m)
            await writer.drain()
            for _ in range(acks):
                ack = await reader.readmessage()
                print("ack", str(ack.segment("MSA")[1]), file=sys.stderr)
            await asyncio.sleep(0.2)
        writer.close()
        await writer.wait_closed()

    asyncio.run(run())


def split_client(host, port):
    text = str(adt("A01", fakeids.JOHN, "SPLIT-TEST-0001")).encode()
    cut = text.index(CR) + 1
    c = socket.create_connection((host, int(port)))
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    c.sendall(SB + text[:cut])
    time.sleep(0.1)
    c.sendall(text[cut:] + EB + CR)
    got = b""
    while EB + CR not in got:
        got += c.recv(65536)
    c.close()


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"server": server, "bare-server": bare_server, "adt": adt_client,
     "burst": burst_client, "bare": bare_client, "variants": variants_client,
     "split": split_client}[cmd](*args)
