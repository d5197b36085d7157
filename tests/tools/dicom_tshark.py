#!/usr/bin/env python3
"""What tshark decodes of the DICOM in a capture, as sorted "fact" lines.

Usage: dicom_tshark.py CAPTURE PORT [PORT...]  > facts.txt

Runs `tshark -r CAPTURE -d tcp.port==PORT,dicom -T json` and prints one
line per association item, DIMSE command and data set element (top-level,
outside group 0000), sorted, so that tests/dicom.rs can compare them with the
facts derived from wardwatch's EVE `dicom` records of the same capture. The
fact grammar (space-separated, UIDs bare):

  rq CALLING CALLED              ac CALLING CALLED
  rq_app_context UID
  rq_pctx ID ABSTRACT TS,TS...   ac_pctx ID RESULT TS
  rq_max_pdu N / ac_max_pdu N
  rq_impl_uid UID / ac_impl_uid UID
  rq_impl_version NAME / ac_impl_version NAME
  rq_user_identity TYPE RESPONSE_REQUESTED PRIMARY [SECONDARY]
  ac_user_identity_response VALUE
  rj RESULT SOURCE REASON
  abort SOURCE REASON
  release_rq / release_rp
  cmd NAME id=N responded_to=N sop=UID status=0xNNNN   (absent fields omitted)
  attr GGGG,EEEE VALUE
"""
import json
import re
import subprocess
import sys


def pairs(items):
    """Keeps repeated keys (tshark writes one per PDU/PDV of a frame)."""
    out = {}
    for k, v in items:
        out.setdefault(k, []).append(v)
    return out


def uid_of(text):
    m = re.search(r"\(([0-9.]+)\)\s*$", text)
    return m.group(1) if m else text.strip()


def ae(text):
    return text.strip()


def first(d, k, default=None):
    v = d.get(k)
    return v[0] if v else default


def walk_user_info(ui, side, facts):
    for key, vals in ui.items():
        for v in vals:
            if not isinstance(v, dict):
                continue
            if "dicom.max_pdu_len" in v:
                facts.append(f"{side}_max_pdu {first(v, 'dicom.max_pdu_len')}")
            if "dicom.userinfo.uid" in v:
                facts.append(f"{side}_impl_uid {first(v, 'dicom.userinfo.uid').strip()}")
            if "dicom.userinfo.version" in v:
                facts.append(f"{side}_impl_version {first(v, 'dicom.userinfo.version').strip()}")
            if key == "dicom.userinfo.user_identify":
                t = first(v, "dicom.userinfo.user_identify.type")
                if t is not None:
                    f = [t, first(v, "dicom.userinfo.user_identify.response_requested", "0"),
                         first(v, "dicom.userinfo.user_identify.primary_field", "")]
                    sec = first(v, "dicom.userinfo.user_identify.secondary_field")
                    if sec:
                        f.append(sec)
                    facts.append(f"{side}_user_identity " + " ".join(f))
            if first(v, "dicom.assoc.item.type") == "0x59" and "dicom.userinfo.data" in v:
                # tshark 4.0 shows this sub-item as raw bytes: a 2-byte
                # length, then the server response.
                raw = bytes.fromhex(first(v, "dicom.userinfo.data").replace(":", ""))
                n = int.from_bytes(raw[:2], "big")
                facts.append(f"{side}_user_identity_response {raw[2:2 + n].decode('latin-1')}")


def walk_assoc(a, side, facts):
    calling = ae(first(a, "dicom.assoc.ae.calling", ""))
    called = ae(first(a, "dicom.assoc.ae.called", ""))
    facts.append(f"{side} {calling} {called}")
    for key, vals in a.items():
        for v in vals:
            if not isinstance(v, dict):
                continue
            if "dicom.actx" in v and side == "rq":
                facts.append(f"rq_app_context {uid_of(first(v, 'dicom.actx'))}")
            if "dicom.pctx.id" in v:
                pid = int(first(v, "dicom.pctx.id"), 16)
                abstract, ts = "", []
                for sk, svals in v.items():
                    for sv in svals:
                        if isinstance(sv, dict) and "dicom.pctx.abss.syntax" in sv:
                            abstract = uid_of(first(sv, "dicom.pctx.abss.syntax"))
                        if isinstance(sv, dict) and "dicom.pctx.xfer.syntax" in sv:
                            ts.append(uid_of(first(sv, "dicom.pctx.xfer.syntax")))
                if side == "rq":
                    facts.append(f"rq_pctx {pid} {abstract} {','.join(ts)}")
                else:
                    res = int(first(v, "dicom.pctx.result", "0x00"), 16)
                    facts.append(f"ac_pctx {pid} {res} {','.join(ts)}")
            if key == "dicom.userinfo":
                walk_user_info(v, side, facts)


ELEM = re.compile(r"^\(([0-9A-Fa-f]{4}),([0-9A-Fa-f]{4})\)\s+(\S+)\s(.*)$")


def element_value(rest):
    """tshark prints the name in a 45-column field, then "[VR] " for
    explicit VR, then the value; UIDs it knows get " (name)" after."""
    v = rest[46:] if len(rest) > 46 else ""
    v = re.sub(r"^\[[A-Z]{2}\] ", "", v).strip()
    m = re.match(r"^([0-9.]+) \(.*\)$", v)
    if m:
        v = m.group(1)
    return "" if v == "<Empty>" else v


def walk_pdv(pdv, facts):
    cmd = {}
    for key in pdv:
        m = ELEM.match(key)
        if not m:
            continue
        group, elem = m.group(1).upper(), m.group(2).upper()
        value = element_value(m.group(4))
        if group == "0000":
            cmd[elem] = value
        else:
            facts.append(f"attr {group},{elem} {value}")
    if "0100" in cmd:
        f = [f"cmd {cmd['0100']}"]
        if "0110" in cmd:
            f.append(f"id={cmd['0110']}")
        if "0120" in cmd:
            f.append(f"responded_to={cmd['0120']}")
        sop = cmd.get("0002") or cmd.get("0003")
        if sop:
            f.append(f"sop={sop.split(' ')[0]}")
        if "0900" in cmd:
            m = re.search(r"\(0x([0-9a-fA-F]+)\)\s*$", cmd["0900"])
            f.append(f"status=0x{int(m.group(1), 16):04x}" if m else f"status={cmd['0900']}")
        facts.append(" ".join(f))


def walk_pdu(pdu, facts):
    t = first(pdu, "dicom.pdu.type")
    for key, vals in pdu.items():
        for v in vals:
            if not isinstance(v, dict):
                continue
            if t == "0x01" and key.startswith("A-ASSOCIATE request"):
                walk_assoc(v, "rq", facts)
            elif t == "0x02" and key.startswith("A-ASSOCIATE accept"):
                walk_assoc(v, "ac", facts)
            elif t == "0x04" and key.startswith("PDV"):
                walk_pdv(v, facts)
            elif t == "0x03" and "dicom.assoc.reject.result" in v:
                facts.append("rj {} {} {}".format(first(v, "dicom.assoc.reject.result"),
                                                  first(v, "dicom.assoc.reject.source"),
                                                  first(v, "dicom.assoc.reject.reason")))
            elif t == "0x07" and "dicom.assoc.abort.source" in v:
                facts.append("abort {} {}".format(first(v, "dicom.assoc.abort.source"),
                                                  first(v, "dicom.assoc.abort.reason")))
    if t == "0x05":
        facts.append("release_rq")
    elif t == "0x06":
        facts.append("release_rp")


def main():
    cap, ports = sys.argv[1], sys.argv[2:]
    args = ["tshark", "-r", cap, "-T", "json", "-Y", "dicom"]
    for p in ports:
        args += ["-d", f"tcp.port=={p},dicom"]
    out = subprocess.run(args, check=True, capture_output=True).stdout
    packets = json.loads(out, object_pairs_hook=pairs)
    facts = []
    for pkt in packets:
        for src in pkt["_source"]:
            for layers in src["layers"]:
                for pdu in layers.get("dicom", []):
                    walk_pdu(pdu, facts)
    for f in sorted(facts):
        print(f)


if __name__ == "__main__":
    main()
