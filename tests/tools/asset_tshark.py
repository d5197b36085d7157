#!/usr/bin/env python3
"""What tshark shows about each internal host of some captures, as sorted
"HOST KIND VALUE" lines: the independent reference of tests/assets.rs.

Usage: asset_tshark.py CAPTURE... > facts.txt

For every capture, tshark decodes MQTT (ports 1883 and 8080) and DICOM
(ports 104, 11112 and 4242), and HL7 v2 as tests/tools/hl7_facts.py reads
it (tshark's MLLP decode on the capture's HL7 port, python-hl7 for the
unframed capture tshark does not decode; see HL7 below); this script
attributes what it decodes to the host that sent it, as the README's
"Asset inventory" says the inventory does, for the hosts of 10.0.0.0/8,
172.16.0.0/12 and 192.168.0.0/16:

  mac                        eth.src of the frames the host sent
  mac_vendor                 the IEEE organisation of that MAC's block, read
                             from /usr/share/ieee-data/oui.csv (Debian
                             ieee-data), not from wardwatch's table
  dicom_scu_ae_titles        calling AE title of its A-ASSOCIATE-RQs
  dicom_scp_ae_titles        called AE title of the A-ASSOCIATE-ACs it sent
  implementation_class_uids  item 0x52 of the RQs/ACs it sent
  implementation_version_names  item 0x55 of the RQs/ACs it sent
  manufacturers, models, software_versions, serial_numbers,
  station_names, institutions, modalities
                             (0008,0070) (0008,1090) (0018,1020) (0018,1000)
                             (0008,1010) (0008,0080) (0008,0060) of the
                             data sets of the C-STORE-RQs it sent
  mqtt_client_ids            non-empty client id of its CONNECTs
  mqtt_usernames             user name of its CONNECTs
  mqtt_versions              protocol level of its CONNECTs (3.1, 3.1.1, 5.0)
  mqtt_topic_prefixes        the first two levels (up to a wildcard or an
                             empty level) of the topics it published to the
                             broker, subscribed to, or named as its will
  hl7_sending_applications, hl7_sending_facilities
                             MSH-3, MSH-4 of the HL7 messages it sent
  hl7_receiving_applications, hl7_receiving_facilities
                             MSH-5, MSH-6 of the HL7 messages it received
                             (each whole field, as hl7_facts.py writes it)
  tls_sni                    the server name (SNI) of the ClientHellos it
                             received (tshark decodes TLS on 443, 2762, 8883)
  roles                      mqtt-client / mqtt-broker: it sent MQTT to /
                             from a broker port; dicom-scu / dicom-scp: it
                             sent DICOM to / from a DICOM port; hl7-sender /
                             hl7-receiver: it is the client / server end of
                             a connection carrying HL7 (the server the end
                             on the capture's HL7 port)
  countries                  the country of each public peer, from the
                             regional registries' allocations documented in
                             pcaps/README.md ("Country of the public
                             addresses"), not from a country database
"""
import csv
import ipaddress
import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dicom_tshark  # noqa: E402  (its element and PDU readers)
import hl7_facts  # noqa: E402  (its HL7 message readers)

MQTT_PORTS = ["1883", "8080"]
DICOM_PORTS = ["104", "11112", "4242"]
HOME = [ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")]
# pcaps/README.md, "Country of the public addresses" (registry allocations).
COUNTRIES = {
    "202.114.4.120": "CN",
    "202.114.4.119": "CN",
    "175.45.178.20": "KP",
    "90.63.221.20": "FR",
    "162.142.125.221": "US",
}
# HL7 captures (as tests/hl7.rs reads them): the reader and the HL7 port.
HL7 = {
    "hl7_mllp.pcap": ("tshark", "2575"),
    "hl7_nonstd_port.pcap": ("tshark", "6661"),
    "hl7_variants.pcap": ("tshark", "2575"),
    "cms8000_exfil.pcap": ("tshark", "515"),
    "hl7_bare_515.pcap": ("python", "515"),
}
DEVICE = {
    "0008,0070": "manufacturers",
    "0008,1090": "models",
    "0018,1020": "software_versions",
    "0018,1000": "serial_numbers",
    "0008,1010": "station_names",
    "0008,0080": "institutions",
    "0008,0060": "modalities",
}
SEP = "\x1e"
TLS_PORTS = (443, 2762, 8883)


def home(ip):
    try:
        a = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(a in n for n in HOME)


def oui_table():
    t = {}
    with open("/usr/share/ieee-data/oui.csv", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            t[row["Assignment"].lower()] = " ".join(row["Organization Name"].split())
    return t


def prefix(topic):
    out = []
    for level in topic.split("/")[:2]:
        if level in ("", "+", "#"):
            break
        out.append(level)
    return "/".join(out)


def decode_args(cap):
    args = ["tshark", "-r", cap]
    for p in MQTT_PORTS:
        args += ["-d", f"tcp.port=={p},mqtt"]
    for p in DICOM_PORTS:
        args += ["-d", f"tcp.port=={p},dicom"]
    return args


def packets_and_mqtt(cap, facts):
    fields = ["ip.src", "ip.dst", "eth.src", "tcp.srcport", "tcp.dstport", "mqtt.msgtype",
              "mqtt.clientid",
              "mqtt.username", "mqtt.ver", "mqtt.topic", "mqtt.willtopic"]
    args = decode_args(cap) + ["-T", "fields", "-E", f"aggregator={SEP}", "-E", "occurrence=a",
                               "-Y", "ip"]
    for f in fields:
        args += ["-e", f]
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        v = dict(zip(fields, line.split("\t")))
        v = {f: v.get(f, "") for f in fields}
        src, dst = v["ip.src"], v["ip.dst"]
        if home(src) and v["eth.src"]:
            facts.add((src, "mac", v["eth.src"].lower()))
        for a, b in ((src, dst), (dst, src)):
            if home(a) and b in COUNTRIES:
                facts.add((a, "countries", COUNTRIES[b]))
        if not home(src) or not v["mqtt.msgtype"]:
            continue
        types = v["mqtt.msgtype"].split(SEP)
        ids = iter(v["mqtt.clientid"].split(SEP))
        users = iter(v["mqtt.username"].split(SEP))
        vers = iter(v["mqtt.ver"].split(SEP))
        topics = [t for t in v["mqtt.topic"].split(SEP)]
        to_broker = v["tcp.dstport"] in MQTT_PORTS
        if to_broker:
            facts.add((src, "roles", "mqtt-client"))
        elif v["tcp.srcport"] in MQTT_PORTS:
            facts.add((src, "roles", "mqtt-broker"))
        for t in types:
            if t == "1":
                cid, user, ver = next(ids, ""), next(users, ""), next(vers, "")
                if cid:
                    facts.add((src, "mqtt_client_ids", cid))
                if user:
                    facts.add((src, "mqtt_usernames", user))
                name = {"3": "3.1", "4": "3.1.1", "5": "5.0"}.get(ver)
                if name:
                    facts.add((src, "mqtt_versions", name))
        if to_broker and ("3" in types or "8" in types):
            for topic in topics:
                if prefix(topic):
                    facts.add((src, "mqtt_topic_prefixes", prefix(topic)))
        for w in v["mqtt.willtopic"].split(SEP):
            if w and prefix(w):
                facts.add((src, "mqtt_topic_prefixes", prefix(w)))


def dicom(cap, facts):
    args = decode_args(cap) + ["-T", "json", "-Y", "dicom"]
    out = subprocess.run(args, check=True, capture_output=True).stdout
    packets = json.loads(out, object_pairs_hook=dicom_tshark.pairs)
    # Per direction of a connection: the command set last seen.
    command = {}
    for pkt in packets:
        for s in pkt["_source"]:
            for layers in s["layers"]:
                ip = dicom_tshark.first(layers, "ip", {})
                tcp = dicom_tshark.first(layers, "tcp", {})
                src = dicom_tshark.first(ip, "ip.src")
                conn = (src, dicom_tshark.first(tcp, "tcp.srcport"),
                        dicom_tshark.first(ip, "ip.dst"), dicom_tshark.first(tcp, "tcp.dstport"))
                if layers.get("dicom"):
                    if conn[3] in DICOM_PORTS:
                        facts.add((src, "roles", "dicom-scu"))
                    elif conn[1] in DICOM_PORTS:
                        facts.add((src, "roles", "dicom-scp"))
                for pdu in layers.get("dicom", []):
                    sub = []
                    dicom_tshark.walk_pdu(pdu, sub)
                    for f in sub:
                        kind, _, rest = f.partition(" ")
                        if kind == "rq":
                            facts.add((src, "dicom_scu_ae_titles", rest.split(" ")[0]))
                        elif kind == "ac":
                            facts.add((src, "dicom_scp_ae_titles", rest.split(" ")[1]))
                        elif kind in ("rq_impl_uid", "ac_impl_uid"):
                            facts.add((src, "implementation_class_uids", rest))
                        elif kind in ("rq_impl_version", "ac_impl_version"):
                            facts.add((src, "implementation_version_names", rest))
                        elif kind == "cmd":
                            command[conn] = rest.split(" ")[0]
                        elif kind == "attr" and command.get(conn) == "C-STORE-RQ":
                            tag, _, value = rest.partition(" ")
                            if tag in DEVICE and value:
                                facts.add((src, DEVICE[tag], value))


def hl7(cap, facts):
    reader = HL7.get(os.path.basename(cap))
    if reader is None:
        return
    tool, port = reader
    out = subprocess.run(["tshark", "-r", cap, "-T", "fields", "-e", "tcp.stream", "-e", "ip.src",
                          "-e", "tcp.srcport", "-Y", "tcp"],
                         check=True, capture_output=True, text=True).stdout
    ends = {}
    for line in out.splitlines():
        stream, ip, sport = line.split("\t")
        ends.setdefault(stream, set()).add((ip, sport))
    if tool == "tshark":
        msgs = hl7_facts.from_tshark(cap, [port])
    else:
        msgs = hl7_facts.from_python(cap)
    for m in msgs:
        sender = m.src
        others = [e for e in ends.get(str(m.stream), ()) if e != tuple(sender)]
        for ip, sport in [tuple(sender)] + others:
            facts.add((ip, "roles", "hl7-receiver" if sport == port else "hl7-sender"))
        for ip, kinds in ((sender[0], (("hl7_sending_applications", 3),
                                        ("hl7_sending_facilities", 4))),
                          *[(o[0], (("hl7_receiving_applications", 5),
                                    ("hl7_receiving_facilities", 6))) for o in others]):
            for kind, n in kinds:
                v = m.value(m.field("MSH", n))
                if v:
                    facts.add((ip, kind, v))


def tls(cap, facts):
    args = ["tshark", "-r", cap]
    for p in TLS_PORTS:
        args += ["-d", f"tcp.port=={p},tls"]
    args += ["-Y", "tls.handshake.type == 1", "-T", "fields", "-e", "ip.dst",
             "-e", "tls.handshake.extensions_server_name"]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        dst, sni = (line.split("\t") + [""])[:2]
        if sni:
            facts.add((dst, "tls_sni", sni))


def main():
    facts = set()
    for cap in sys.argv[1:]:
        packets_and_mqtt(cap, facts)
        dicom(cap, facts)
        hl7(cap, facts)
        tls(cap, facts)
    ouis = oui_table()
    for host, kind, value in list(facts):
        if kind == "mac":
            name = ouis.get(value.replace(":", "")[:6])
            if name:
                facts.add((host, "mac_vendor", name))
    facts = {f for f in facts if home(f[0])}
    for host, kind, value in sorted(facts, key=lambda f: (ipaddress.ip_address(f[0]), f[1], f[2])):
        print(f"{host} {kind} {value}")


if __name__ == "__main__":
    main()
