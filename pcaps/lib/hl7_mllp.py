#!/usr/bin/env python3
"""HL7 v2 over MLLP-framed TCP, modelling the Contec CMS8000 patient-data
upload (CISA ICSMA-25-030-01: HL7 to a hard-coded address, TCP port 515).

Usage: hl7_mllp.py server PORT            accept one connection, ACK each message
       hl7_mllp.py client HOST PORT N     send N ORU^R01 messages (fake patient)
MLLP framing: 0x0B <message> 0x1C 0x0D; segments end with CR.
"""

import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import fakeids  # noqa: E402

SB, EB, CR = b"\x0b", b"\x1c", b"\x0d"


def oru(i, p):
    vit = (72 + i, 97, 118 - i, 76, 16)
    segs = [
        "MSH|^~\\&|CMS8000|MONITOR-W3-12|CENTRAL|HOSPITAL|19000101%02d0000||ORU^R01|CMS-TEST-%04d|P|2.3.1" % (i, i),
        "PID|1||%s||%s^%s||%s|%s" % (p["mrn"], p["family"], p["given"], p["birth_date"].replace("-", ""), p["sex"]),
        "PV1|1|I|W3^12^1||||TEST^DOCTOR^^DR",
        "OBR|1|||CMS8000^VITALS",
        "OBX|1|NM|HR^Heart rate||%d|bpm|||||F" % vit[0],
        "OBX|2|NM|SPO2^SpO2||%d|%%|||||F" % vit[1],
        "OBX|3|NM|NIBP_SYS^NIBP systolic||%d|mmHg|||||F" % vit[2],
        "OBX|4|NM|NIBP_DIA^NIBP diastolic||%d|mmHg|||||F" % vit[3],
        "OBX|5|NM|RESP^Respiration rate||%d|rpm|||||F" % vit[4],
        "OBX|6|ED|ECG^ECG lead II||^AP^Octet-stream^Base64^%s|||||F" % ("AAECAwQFBgcICQ" * 8),
    ]
    return ("\r".join(segs) + "\r").encode()


def read_frame(conn, buf):
    while EB + CR not in buf:
        chunk = conn.recv(65536)
        if not chunk:
            return None, buf
        buf += chunk
    end = buf.index(EB + CR)
    return buf[1:end], buf[end + 2 :]


def server(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", int(port)))
    s.listen(1)
    conn, _ = s.accept()
    buf = b""
    while True:
        msg, buf = read_frame(conn, buf)
        if msg is None:
            break
        ctrl = msg.split(b"\r")[0].split(b"|")[9]
        ack = b"MSH|^~\\&|CENTRAL|HOSPITAL|CMS8000|MONITOR-W3-12|19000101000000||ACK|A%s|P|2.3.1\rMSA|AA|%s\r" % (ctrl, ctrl)
        conn.sendall(SB + ack + EB + CR)
    conn.close()


def client(host, port, n):
    c = socket.create_connection((host, int(port)))
    buf = b""
    for i in range(int(n)):
        c.sendall(SB + oru(i, fakeids.JANE) + EB + CR)
        _, buf = read_frame(c, buf)
        time.sleep(0.5)
    c.close()


if __name__ == "__main__":
    {"server": server, "client": client}[sys.argv[1]](*sys.argv[2:])
