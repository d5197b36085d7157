#!/usr/bin/env python3
"""Summarise what tshark sees in each application capture (one line per file)
and check the PHI-negative captures really carry no identifiers.

Usage: verify.py PCAP...
Exit status 1 if a negative capture contains a name/MRN/NIR/BSN-looking value
or a positive one lacks them.
"""

import collections
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
import fakeids  # noqa: E402

MQTT_TYPES = {1: "CONNECT", 2: "CONNACK", 3: "PUBLISH", 4: "PUBACK", 5: "PUBREC", 6: "PUBREL", 7: "PUBCOMP",
              8: "SUBSCRIBE", 9: "SUBACK", 10: "UNSUBSCRIBE", 11: "UNSUBACK", 12: "PINGREQ", 13: "PINGRESP",
              14: "DISCONNECT", 15: "AUTH"}
DICOM_PDU = {1: "A-ASSOCIATE-RQ", 2: "A-ASSOCIATE-AC", 3: "A-ASSOCIATE-RJ", 4: "P-DATA-TF", 5: "A-RELEASE-RQ",
             6: "A-RELEASE-RP", 7: "A-ABORT"}
DECODE_AS = {"mqtt_nonstd_port": ["-d", "tcp.port==8080,mqtt"], "dicom_nonstd_port": ["-d", "tcp.port==4242,dicom"],
             "dicom_tls": ["-d", "tcp.port==2762,tls"]}
PHI_NEGATIVE = {"mqtt_telemetry_nophi", "mqtt_foreign_broker", "mqtt_incountry", "dicom_echo", "mqtt_refused", "mqtt_site_hub",
                "mqtt_large_split", "dicom_userid", "dicom_rejected", "dicom_nonstd_port"}
PHI_POSITIVE = {"mqtt_v311_anon_phi", "mqtt_v31_default_creds", "mqtt_v5_props", "mqtt_nonstd_port",
                "dicom_store_phi", "dicom_store_large", "dicom_find", "cms8000_exfil", "fhir_http_exfil"}


def tshark(path, extra, fields, filt):
    cmd = ["tshark", "-r", path, *extra, "-Y", filt, "-T", "fields", "-E", "occurrence=a", "-E", "separator=\t"]
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return [line.split("\t") for line in out.splitlines()]


def count(rows, col, names):
    c = collections.Counter()
    for r in rows:
        for v in r[col].split(","):
            if v:
                c[names.get(int(v, 0), v)] += 1
    return ", ".join("%s %d" % (k, n) for k, n in c.items())


def payload_text(path, extra):
    rows = tshark(path, extra, ["tcp.payload"], "tcp.len>0")
    return b"".join(bytes.fromhex(r[0]) for r in rows if r and r[0])


def phi_hits(data):
    hits = set()
    for name in ("TEST^JANE", "DOE^JOHN", "TEST^ALEX", "MRN-TEST-", "1900-01-0", "19000101"):
        if name.encode() in data:
            hits.add(name)
    for m in re.finditer(rb"(?<!\d)(\d{15})(?!\d)", data):
        s = m.group(1).decode()
        if fakeids.nir_key(s[:13]) == s[13:] and s[0] in "12":
            hits.add("NIR " + s)
    for m in re.finditer(rb"(?<!\d)(\d{9})(?!\d)", data):
        if fakeids.bsn_valid(m.group(1).decode()):
            hits.add("BSN " + m.group(1).decode())
    return sorted(hits)


def summarise(path):
    name = os.path.basename(path).rsplit(".", 1)[0]
    extra = DECODE_AS.get(name, [])
    parts = []
    mq = tshark(path, extra, ["mqtt.msgtype"], "mqtt")
    if mq:
        parts.append("MQTT: " + count(mq, 0, MQTT_TYPES))
    dc = tshark(path, extra, ["dicom.pdu.type"], "dicom")
    if dc:
        parts.append("DICOM: " + count(dc, 0, DICOM_PDU))
    tls = tshark(path, extra, ["tls.record.content_type"], "tls")
    if tls:
        parts.append("TLS records: %d" % sum(len(r[0].split(",")) for r in tls))
    hl7 = payload_text(path, extra)
    if b"MSH|" in hl7:
        parts.append("HL7 MSH segments: %d" % hl7.count(b"MSH|"))
    hits = phi_hits(hl7)
    ok = True
    if name in PHI_NEGATIVE and hits:
        ok = False
    if name in PHI_POSITIVE and not hits:
        ok = False
    parts.append("PHI strings: " + (", ".join(hits) if hits else "none"))
    pk = tshark(path, [], ["frame.number"], "frame")
    return ok, "%s (%d packets) - %s" % (name, len(pk), "; ".join(parts))


def main():
    bad = 0
    for p in sys.argv[1:]:
        ok, line = summarise(p)
        print(("" if ok else "FAIL ") + line)
        bad += not ok
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
