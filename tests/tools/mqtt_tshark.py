#!/usr/bin/env python3
"""MQTT messages of a capture as tshark decodes them, in a canonical form.

Usage: mqtt_tshark.py CAPTURE [tshark -d option...]  > messages.json

Prints a JSON list, one object per MQTT control packet tshark decoded
(`tshark -r CAPTURE -Y mqtt -T json`), in frame order:

  {"src": "ip:port", "dst": "ip:port", "type": 3, "flags": 2, ...fields}

with the fields that wardwatch's EVE `mqtt` records carry, named as in EVE
(see tests/mqtt_golden.rs, which builds the same form from wardwatch's
output). v5 properties become {eve name: value}; user properties
{key: value}, as Suricata logs them. Payloads, will messages and passwords
are given as their length and the SHA-256 of their bytes.

tshark's JSON repeats keys (one `mqtt.property_id` per property, one `mqtt`
layer per message of a frame), so it is read as ordered pairs.
"""
import hashlib
import json
import subprocess
import sys

# Property identifier -> Suricata's EVE name.
PROPS = {
    0x01: "payload_format_indicator", 0x02: "message_expiry_interval",
    0x03: "content_type", 0x08: "response_topic", 0x09: "correlation_data",
    0x0b: "subscription_identifier", 0x11: "session_expiry_interval",
    0x12: "assigned_client_identifier", 0x13: "server_keep_alive",
    0x15: "authentication_method", 0x16: "authentication_data",
    0x17: "request_problem_information", 0x18: "will_delay_interval",
    0x19: "request_response_information", 0x1a: "response_information",
    0x1c: "server_reference", 0x1f: "reason_string", 0x21: "receive_maximum",
    0x22: "topic_alias_maximum", 0x23: "topic_alias", 0x24: "maximum_qos",
    0x25: "retain_available", 0x27: "maximum_packet_size",
    0x28: "wildcard_subscription_available",
    0x29: "subscription_identifier_available",
    0x2a: "shared_subscription_available",
}


def pairs(x):
    return x if isinstance(x, list) else []


def get(p, key):
    """First value of `key` among pairs `p`, searching subtrees."""
    for k, v in pairs(p):
        if k == key:
            return v
    for k, v in pairs(p):
        if isinstance(v, list):
            r = get(v, key)
            if r is not None:
                return r
    return None


def get_all(p, key):
    out = []
    for k, v in pairs(p):
        if k == key:
            out.append(v)
        elif isinstance(v, list):
            out.extend(get_all(v, key))
    return out


def digest(b):
    return {"len": len(b), "sha256": hashlib.sha256(b).hexdigest()}


def hexbytes(s):
    """tshark prints bytes as aa:bb:cc (or as text when printable)."""
    if s is None:
        return b""
    parts = s.split(":")
    if all(len(x) == 2 for x in parts) and s:
        try:
            return bytes(int(x, 16) for x in parts)
        except ValueError:
            pass
    return s.encode()


def properties(p):
    """Ordered pairs of an `mqtt.properties` subtree -> {name: value}."""
    out = {}
    cur = None
    key = None
    for k, v in pairs(p):
        if k == "mqtt.property_id":
            cur = PROPS.get(int(v, 16), "unknown")
        elif k == "mqtt.prop_number":
            out[cur] = int(v)
        elif k in ("mqtt.prop_string", "mqtt.property.content_type"):
            out[cur] = v
        elif k == "mqtt.property.topic_alias":
            out[cur] = int(v)
        elif k == "mqtt.prop_key":
            key = v
        elif k == "mqtt.prop_value":
            out[key] = v
    return out


def message(m):
    flags = int(get(m, "mqtt.hdrflags"), 16)
    t = flags >> 4
    r = {"type": t, "flags": flags & 0x0f}
    props = get(m, "mqtt.properties")
    if props is not None:
        r["properties"] = properties(props)
    msgid = get(m, "mqtt.msgid")
    if msgid is not None:
        r["message_id"] = int(msgid)
    if t == 1:
        cf = int(get(m, "mqtt.conflags"), 16)
        r["protocol_string"] = get(m, "mqtt.protoname")
        r["protocol_version"] = int(get(m, "mqtt.ver"))
        r["connect_flags"] = cf
        r["keep_alive"] = int(get(m, "mqtt.kalive"))
        r["client_id"] = get(m, "mqtt.clientid") or ""
        if cf & 0x80:
            r["username"] = get(m, "mqtt.username") or ""
        if cf & 0x40:
            pw = get(m, "mqtt.passwd")
            r["password"] = digest((pw or "").encode())
        if cf & 0x04:
            w = {"topic": get(m, "mqtt.willtopic"),
                 "message": digest(hexbytes(get(m, "mqtt.willmsg")))}
            wp = get(m, "mqtt.will_properties")
            if wp is not None:
                w["properties"] = properties(wp)
            r["will"] = w
    elif t == 2:
        r["session_present"] = (int(get(m, "mqtt.conack.flags") or "0", 16) & 1) == 1
        code = get(m, "mqtt.connack.reason_code") or get(m, "mqtt.conack.val")
        r["return_code"] = int(code)
    elif t == 3:
        r["topic"] = get(m, "mqtt.topic") or ""
        r["message"] = digest(hexbytes(get(m, "mqtt.msg")))
    elif t in (4, 5, 6, 7):
        code = None
        for k in ("mqtt.puback.reason_code", "mqtt.pubrec.reason_code",
                  "mqtt.pubrel.reason_code", "mqtt.pubcomp.reason_code"):
            code = code or get(m, k)
        if code is not None:
            r["reason_code"] = int(code)
    elif t == 8:
        topics = get_all(m, "mqtt.topic")
        qos = [int(q) for q in get_all(m, "mqtt.sub.qos")] or \
            [int(q) for q in get_all(m, "mqtt.subscription_options_qos")]
        r["topics"] = [{"topic": a, "qos": b} for a, b in zip(topics, qos)]
    elif t == 9:
        codes = get_all(m, "mqtt.suback.qos") or get_all(m, "mqtt.suback.reason_code")
        r["qos_granted"] = [int(c) for c in codes]
    elif t == 10:
        r["topics"] = get_all(m, "mqtt.topic")
    elif t == 11:
        codes = get_all(m, "mqtt.unsuback.reason_code")
        if codes:
            r["reason_codes"] = [int(c) for c in codes]
    elif t == 14:
        code = get(m, "mqtt.disconnect.reason_code")
        if code is not None:
            r["reason_code"] = int(code)
    return r


def main():
    cap = sys.argv[1]
    extra = sys.argv[2:]
    out = subprocess.run(["tshark", "-r", cap, "-Y", "mqtt", "-T", "json", *extra],
                         check=True, capture_output=True).stdout
    frames = json.loads(out, object_pairs_hook=lambda p: p)
    msgs = []
    for f in frames:
        layers = get(f, "layers")
        ip = get(layers, "ip") or get(layers, "ipv6")
        src = get(ip, "ip.src") or get(ip, "ipv6.src")
        dst = get(ip, "ip.dst") or get(ip, "ipv6.dst")
        tcp = get(layers, "tcp")
        sport, dport = get(tcp, "tcp.srcport"), get(tcp, "tcp.dstport")
        for k, v in layers:
            if k != "mqtt":
                continue
            m = message(v)
            m["src"] = f"{src}:{sport}"
            m["dst"] = f"{dst}:{dport}"
            msgs.append(m)
    json.dump(msgs, sys.stdout, indent=0, sort_keys=True)
    print()


if __name__ == "__main__":
    main()
