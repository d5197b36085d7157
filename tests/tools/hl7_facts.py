#!/usr/bin/env python3
"""What an independent HL7 decoder reads of the HL7 v2 in a capture, as sorted
"fact" lines, for tests/hl7.rs to compare with wardwatch's EVE `hl7` records.

Usage:
  hl7_facts.py tshark CAPTURE PORT [PORT...]   MLLP-framed HL7: tshark's decode
                                               (`-d tcp.port==PORT,hl7 -T pdml`);
                                               tshark 4.0 shows no segment after
                                               a frame's last CR (python-hl7's
                                               mllp_send leaves the last one
                                               unterminated): that one is read by
                                               python-hl7 from the frame's raw
                                               text (`hl7.display_raw`)
  hl7_facts.py python CAPTURE                  unframed HL7 (tshark decodes none):
                                               each TCP direction's bytes (tshark
                                               `follow,tcp,raw`) cut into messages
                                               at segments starting `MSH`, each
                                               parsed with python-hl7's `hl7.parse`

Each line is `CONTROL_ID<TAB>KEY<TAB>VALUE`, one per value wardwatch logs
(src/app/hl7/log.rs), keyed by the message's MSH-10:

  message_type trigger_event message_structure processing_id version
  sending_application sending_facility receiving_application receiving_facility
  segments (names joined by ",", batch envelope FHS/BHS/BTS/FTS excluded)
  framing (mllp for tshark's decode, bare for the python path)
  patient_class (PV1-2.1)   ack_code acknowledged_control_id text_message (MSA-1..3)
  errors.N.<name> (ERR-1,2,3,4,7,8 of the N-th ERR)
  patient.<name> (first PID: -3 -5 -11 -13 one line per repetition, -7, -19)
  next_of_kin (NK1-2 of every NK1, one line per repetition)
  answers (on an answer: the control id of the message of the other direction,
           earlier in the same connection, whose MSH-10 equals its MSA-2)

Values are read as wardwatch documents it: components of MSH-9, -11, -12 and
PV1-2, MSA-1 taken by position; every value's repetitions, components and
subcomponents cut at the message's own delimiters (MSH-1, MSH-2) and written
back with ~ ^ &, each piece unescaped by python-hl7 (`Message.unescape`);
the trigger event is EVN-1 when MSH-9.2 is empty (HL7 2.1, 2.2). Empty
values give no line.
"""
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import hl7

ENVELOPE = {"FHS", "BHS", "BTS", "FTS"}
HEADERS = {"MSH", "FHS", "BHS"}


class Msg:
    """One message: its segments as lists of raw field texts in HL7
    numbering (index 0 the name; in MSH, 1 the field separator, 2 the
    encoding characters), its direction and connection."""

    def __init__(self, segments, stream, src, framing):
        self.segments = segments
        self.stream = stream
        self.src = src
        self.framing = framing
        msh = segments[0]
        self.sep = msh[1]
        enc = msh[2] if len(msh) > 2 else ""
        self.comp, self.rep, self.esc, self.sub = (list(enc) + [None] * 4)[:4]
        # A python-hl7 container with this message's separators, for
        # unescaping.
        self.container = hl7.parse(self.sep.join(msh[:3]) + "\r")

    def seg(self, name):
        return next((s for s in self.segments if s[0] == name), None)

    def field(self, name, n):
        s = self.seg(name)
        return s[n] if s is not None and n < len(s) else ""

    def cut(self, text, sep):
        return text.split(sep) if sep and text else [text]

    def leaf(self, text):
        return self.container.unescape(text) if self.esc else text

    def value(self, text):
        """Repetitions, components, subcomponents canonical, unescaped."""
        return "~".join(
            "^".join("&".join(self.leaf(x) for x in self.cut(c, self.sub))
                     for c in self.cut(r, self.comp))
            for r in self.cut(text, self.rep))

    def reps(self, text):
        return [self.value(r) for r in self.cut(text, self.rep) if r]

    def component(self, text, i):
        first = self.cut(text, self.rep)[0]
        parts = self.cut(first, self.comp)
        return self.value(parts[i - 1]) if i <= len(parts) else ""

    def control_id(self):
        return self.value(self.field("MSH", 10))


def facts(msgs):
    out = []
    seen = []  # (stream, src, control id) of the messages so far
    for m in msgs:
        c = m.control_id()

        def add(key, value):
            if value:
                out.append(f"{c}\t{key}\t{value}")

        m9 = m.field("MSH", 9)
        add("message_type", m.component(m9, 1))
        add("trigger_event", m.component(m9, 2) or m.component(m.field("EVN", 1), 1))
        add("message_structure", m.component(m9, 3))
        add("processing_id", m.component(m.field("MSH", 11), 1))
        add("version", m.component(m.field("MSH", 12), 1))
        for key, n in (("sending_application", 3), ("sending_facility", 4),
                       ("receiving_application", 5), ("receiving_facility", 6)):
            add(key, m.value(m.field("MSH", n)))
        add("segments", ",".join(s[0] for s in m.segments))
        add("framing", m.framing)
        add("patient_class", m.component(m.field("PV1", 2), 1))
        if m.seg("MSA") is not None:
            add("ack_code", m.component(m.field("MSA", 1), 1))
            acked = m.value(m.field("MSA", 2))
            add("acknowledged_control_id", acked)
            add("text_message", m.value(m.field("MSA", 3)))
            if any(s == m.stream and src != m.src and i == acked for s, src, i in seen):
                add("answers", acked)
        errs = [s for s in m.segments if s[0] == "ERR"]
        for i, e in enumerate(errs):
            for key, n in (("error_code_and_location", 1), ("error_location", 2),
                           ("hl7_error_code", 3), ("severity", 4),
                           ("diagnostic_information", 7), ("user_message", 8)):
                add(f"errors.{i}.{key}", m.value(e[n]) if n < len(e) else "")
        for key, n, repeats in (("patient_identifier_list", 3, True), ("patient_name", 5, True),
                                ("date_time_of_birth", 7, False), ("patient_address", 11, True),
                                ("phone_number_home", 13, True),
                                ("ssn_number_patient", 19, False)):
            v = m.field("PID", n)
            for r in (m.reps(v) if repeats else [m.value(v)]):
                add(f"patient.{key}", r)
        for s in m.segments:
            if s[0] == "NK1" and len(s) > 2:
                for r in m.reps(s[2]):
                    add("next_of_kin", r)
        seen.append((m.stream, m.src, c))
    return sorted(out)


def split_messages(segments, stream, src, framing):
    """Segment lists (name first) cut into messages at MSH; envelope
    segments dropped."""
    msgs, cur = [], None
    for s in segments:
        if s[0] in ENVELOPE:
            cur = None
            continue
        if s[0] == "MSH":
            cur = [s]
            msgs.append(cur)
        elif cur is not None:
            cur.append(s)
    return [Msg(m, stream, src, framing) for m in msgs]


def from_tshark(capture, ports):
    args = ["tshark", "-r", capture, "-T", "pdml", "-o", "tcp.desegment_tcp_streams:TRUE",
            "-o", "hl7.display_raw:TRUE"]
    for p in ports:
        args += ["-d", f"tcp.port=={p},hl7"]
    xml = subprocess.run(args, check=True, capture_output=True).stdout
    msgs = []
    for packet in ET.fromstring(xml).iter("packet"):
        protos = {p.get("name"): p for p in packet.iter("proto")}
        if "hl7" not in protos:
            continue
        ip = protos["ip"]
        tcp = protos["tcp"]
        src = (next(f.get("show") for f in ip.iter("field") if f.get("name") == "ip.src"),
               next(f.get("show") for f in tcp.iter("field") if f.get("name") == "tcp.srcport"))
        stream = next(f.get("show") for f in tcp.iter("field") if f.get("name") == "tcp.stream")
        for proto in packet.iter("proto"):
            if proto.get("name") != "hl7":
                continue
            segments = []
            for seg in proto.findall("field[@name='hl7.segment']"):
                raw = bytes.fromhex(seg.get("value")).decode("latin-1").rstrip("\r\n")
                fields = {}
                for f in seg.findall("field[@name='hl7.field']"):
                    n = int(re.search(r"field (\d+):", f.get("showname")).group(1))
                    fields[n] = bytes.fromhex(f.get("value") or "").decode("latin-1")
                name = raw[:3]
                if name in HEADERS:
                    # tshark: field 1 the name, field 2 the encoding
                    # characters, field k MSH-k; MSH-1 is the 4th byte.
                    top = max(fields, default=2)
                    row = [name, raw[3]] + [fields.get(k, "") for k in range(2, top + 1)]
                else:
                    # tshark: field k is SEG-(k-1).
                    top = max(fields, default=1)
                    row = [name] + [fields.get(k, "") for k in range(2, top + 1)]
                segments.append(row)
            raw = proto.find("field[@name='hl7.raw']")
            text = bytes.fromhex(raw.get("value")).decode("latin-1") if raw is not None else ""
            tail = re.split(r"\r\n|\r|\n", text)[-1]
            msh = next((r for r in reversed(re.split(r"\r\n|\r|\n", text)) if r[:3] in HEADERS), "")
            if tail and msh and tail != msh:
                # The unterminated last segment tshark does not show.
                seg = hl7.parse(msh + "\r" + tail + "\r")[1]
                segments.append([str(seg[0])] + [str(seg[i]) for i in range(1, len(seg))])
            msgs += split_messages(segments, stream, src, "mllp")
    return msgs


def streams(capture):
    """(stream, src, bytes) per TCP direction, in the order data first
    appears, from tshark's `follow,tcp,raw`."""
    out = subprocess.run(["tshark", "-r", capture, "-T", "fields", "-e", "tcp.stream"],
                         check=True, capture_output=True, text=True).stdout
    ids = sorted({int(x) for x in out.split() if x})
    for sid in ids:
        text = subprocess.run(["tshark", "-r", capture, "-q", "-z", f"follow,tcp,raw,{sid}"],
                              check=True, capture_output=True, text=True).stdout
        nodes = re.search(r"Node 0: (\S+)\nNode 1: (\S+)\n", text)
        chunks = []
        for line in text.split("\n"):
            m = re.fullmatch(r"(\t?)([0-9a-f]+)", line)
            if m:
                chunks.append((1 if m.group(1) else 0, bytes.fromhex(m.group(2))))
        for node in (0, 1):
            data = b"".join(b for n, b in chunks if n == node)
            if data:
                host, port = nodes.group(node + 1).rsplit(":", 1)
                yield sid, (host, port), data


def from_python(capture):
    msgs = []
    for sid, src, data in streams(capture):
        text = data.decode("latin-1")
        # Bare HL7: a message starts at each segment that is an MSH.
        lines = [x for x in re.split(r"\r\n|\r|\n", text) if x]
        starts = [i for i, x in enumerate(lines) if x.startswith("MSH")] + [len(lines)]
        for a, b in zip(starts, starts[1:]):
            m = hl7.parse("\r".join(lines[a:b]))
            segments = []
            for seg in m:
                name = str(seg[0])
                segments.append([name] + [str(seg[i]) for i in range(1, len(seg))])
            msgs.append(Msg(segments, sid, src, "bare"))
    return msgs


def main():
    mode, capture = sys.argv[1], sys.argv[2]
    msgs = from_tshark(capture, sys.argv[3:]) if mode == "tshark" else from_python(capture)
    for line in facts(msgs):
        print(line)


if __name__ == "__main__":
    main()
