#!/usr/bin/env python3
"""paho-mqtt clients used by gen_app.sh, one sub-command per role.

Usage: mqtt_clients.py ROLE HOST PORT [args...]
All client ids, topics and payloads are fixed so reruns produce the same
application bytes (only ports, timing and TCP sequence numbers vary).
"""

import json
import random
import socket
import sys
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

sys.path.insert(0, __import__("os").path.dirname(__file__))
import fakeids  # noqa: E402

V2 = mqtt.CallbackAPIVersion.VERSION2


def wait_connected(c, ev, timeout=5.0):
    if not ev.wait(timeout):
        raise SystemExit("connect timed out")


def mk(client_id, protocol=mqtt.MQTTv311, **kw):
    return mqtt.Client(V2, client_id=client_id, protocol=protocol, **kw)


def connect_blocking(c, host, port, keepalive, **kw):
    ev = threading.Event()
    result = {}

    def on_connect(client, userdata, flags, rc, props=None):
        result["rc"] = rc
        ev.set()

    c.on_connect = on_connect
    c.connect(host, port, keepalive, **kw)
    c.loop_start()
    wait_connected(c, ev)
    return result["rc"]


def phi_json(p, hr, spo2, seq):
    return json.dumps(
        {
            "device": "MON-W3-BED12",
            "bed": "W3-12",
            "seq": seq,
            "patient": {
                "name": p["name"],
                "mrn": p["mrn"],
                "birthDate": p["birth_date"],
                "sex": p["sex"],
                "nir": p["nir"],
            },
            "vitals": {"hr": hr, "spo2": spo2, "nibp": "118/76"},
        },
        separators=(",", ":"),
    )


# ---------------------------------------------------------------- scenario 1
def sub311(host, port):
    """Nurse station: wildcard subscriptions, waits for pings, unsubscribes."""
    c = mk("NURSE-STN-W3")
    got = []
    c.on_message = lambda cl, ud, m: got.append(m.topic)
    connect_blocking(c, host, port, keepalive=2)
    c.subscribe([("ward3/+/patient", 2), ("ward3/#", 1)])
    # publishers run meanwhile; stay long enough for PINGREQ/PINGRESP
    time.sleep(float(sys.argv[4]) if len(sys.argv) > 4 else 8)
    c.unsubscribe(["ward3/+/patient", "ward3/#"])
    time.sleep(0.5)
    c.disconnect()
    c.loop_stop()
    print("nurse station received %d messages" % len(got), file=sys.stderr)


def pub311(host, port):
    """Bedside monitor (paho): QoS 0/1/2 with patient JSON, idles for a ping."""
    c = mk("bedside-mon-0012")
    connect_blocking(c, host, port, keepalive=2)
    for i, qos in enumerate((0, 1, 2)):
        info = c.publish("ward3/bed12/patient", phi_json(fakeids.JANE, 80 + i, 97 - i, 100 + i), qos=qos)
        info.wait_for_publish(5)
    time.sleep(3)  # keepalive 2 s: PINGREQ/PINGRESP
    c.disconnect()
    c.loop_stop()


# ---------------------------------------------------------------- scenario 2
HL7_ORU = (
    "MSH|^~\\&|ICU-GW|CHU-EXEMPLE|EPIC|CHU-EXEMPLE|19000101120000||ORU^R01|MSG-TEST-0001|P|2.5\r"
    "PID|1||{mrn}^^^CHU-EXEMPLE^MR~{nir}^^^ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.8&ISO^INS||"
    "{family}^{given}||{dob}|{sex}|||{addr}||{phone}\r"
    "PV1|1|I|ICU^07^01\r"
    "OBR|1||OBS-TEST-0001|8867-4^Heart rate^LN\r"
    "OBX|1|NM|8867-4^Heart rate^LN||72|/min|||||F\r"
    "OBX|2|NM|59408-5^SpO2^LN||97|%|||||F\r"
)


def hl7_for(p):
    return HL7_ORU.format(
        mrn=p["mrn"],
        nir=p["nir"],
        family=p["family"],
        given=p["given"],
        dob=p["birth_date"].replace("-", ""),
        sex=p["sex"],
        addr=p["address"],
        phone=p["phone"],
    )


def v31(host, port):
    """HL7 gateway, MQTT 3.1 (MQIsdp), default credentials admin/admin."""
    c = mk("HL7GW-ICU-01", protocol=mqtt.MQTTv31)
    c.username_pw_set("admin", "admin")
    rc = connect_blocking(c, host, port, keepalive=30)
    print("v31 connack", rc, file=sys.stderr)
    c.publish("hl7/icu/oru", hl7_for(fakeids.JOHN), qos=1).wait_for_publish(5)
    c.publish("hl7/icu/oru", hl7_for(fakeids.JANE), qos=0).wait_for_publish(5)
    time.sleep(0.3)
    c.disconnect()
    c.loop_stop()


# ---------------------------------------------------------------- scenario 3
V5_USER = "icu-gw-07"
V5_PASS = "Xq7vR2mLp9tZ4wK8sJ3nB6cH1fD5gY0e"


def fhir_patient(p):
    ident = [
        {"system": "urn:oid:1.2.250.1.999.1.1", "value": p["mrn"]},
        {"system": "urn:oid:1.2.250.1.213.1.4.8", "value": p["nir"]},
    ]
    if "bsn" in p:
        ident.append({"system": "http://fhir.nl/fhir/NamingSystem/bsn", "value": p["bsn"]})
    return json.dumps(
        {
            "resourceType": "Patient",
            "id": "test-" + p["mrn"].lower(),
            "identifier": ident,
            "name": [{"family": p["family"], "given": [p["given"]]}],
            "gender": "female" if p["sex"] == "F" else "male",
            "birthDate": p["birth_date"],
            "telecom": [{"system": "phone", "value": p["phone"]}],
        },
        separators=(",", ":"),
    )


def v5sub(host, port):
    """EHR bridge: MQTT 5 subscriber with subscription identifiers."""
    c = mk("ehr-bridge-01", protocol=mqtt.MQTTv5)
    c.username_pw_set("ehr-bridge", V5_PASS[::-1])
    cp = Properties(PacketTypes.CONNECT)
    cp.SessionExpiryInterval = 600
    cp.ReceiveMaximum = 20
    cp.TopicAliasMaximum = 5
    cp.UserProperty = ("site", "CHU-EXEMPLE")
    got = []
    c.on_message = lambda cl, ud, m: got.append(m.topic)
    connect_blocking(c, host, port, keepalive=30, clean_start=True, properties=cp)
    sp = Properties(PacketTypes.SUBSCRIBE)
    sp.SubscriptionIdentifier = 7
    c.subscribe("fhir/ward3/#", options=mqtt.SubscribeOptions(qos=1, noLocal=True), properties=sp)
    sp2 = Properties(PacketTypes.SUBSCRIBE)
    sp2.SubscriptionIdentifier = 42
    c.subscribe([("ward3/+/status", mqtt.SubscribeOptions(qos=2, retainAsPublished=True))], properties=sp2)
    # a subscription the ACL denies -> SUBACK reason 0x87
    c.subscribe("admin/#", qos=1)
    time.sleep(float(sys.argv[4]) if len(sys.argv) > 4 else 5)
    up = Properties(PacketTypes.UNSUBSCRIBE)
    up.UserProperty = ("reason", "shift-end")
    c.unsubscribe(["fhir/ward3/#", "ward3/+/status"], properties=up)
    time.sleep(0.3)
    dp = Properties(PacketTypes.DISCONNECT)
    dp.ReasonString = "bridge shutting down"
    dp.SessionExpiryInterval = 0
    c.disconnect(reasoncode=ReasonCode(PacketTypes.DISCONNECT, "Normal disconnection"), properties=dp)
    c.loop_stop()
    print("ehr bridge received %d messages" % len(got), file=sys.stderr)


def v5pub(host, port):
    """ICU gateway: MQTT 5 publisher with properties, topic alias, will."""
    c = mk("icu-gw-07", protocol=mqtt.MQTTv5)
    c.username_pw_set(V5_USER, V5_PASS)
    wp = Properties(PacketTypes.WILLMESSAGE)
    wp.WillDelayInterval = 0
    wp.ContentType = "text/plain"
    c.will_set("ward3/icu-gw-07/status", "offline", qos=1, retain=False, properties=wp)
    cp = Properties(PacketTypes.CONNECT)
    cp.SessionExpiryInterval = 300
    cp.RequestProblemInformation = 1
    cp.UserProperty = [("fw", "4.2.1"), ("vendor", "EXAMPLE-MED")]
    connect_blocking(c, host, port, keepalive=30, clean_start=True, properties=cp)

    pp = Properties(PacketTypes.PUBLISH)
    pp.PayloadFormatIndicator = 1
    pp.ContentType = "application/fhir+json"
    pp.ResponseTopic = "fhir/ward3/ack/icu-gw-07"
    pp.CorrelationData = b"corr-0001"
    pp.MessageExpiryInterval = 120
    pp.UserProperty = [("device", "MON-0042"), ("ward", "3")]
    c.publish("fhir/ward3/patient", fhir_patient(fakeids.JANE), qos=1, properties=pp).wait_for_publish(5)

    # topic alias: first publish sets alias 1, second uses it with an empty topic
    pa = Properties(PacketTypes.PUBLISH)
    pa.TopicAlias = 1
    pa.ContentType = "application/fhir+json"
    pa.CorrelationData = b"corr-0002"
    c.publish("fhir/ward3/patient", fhir_patient(fakeids.JOHN), qos=1, properties=pa).wait_for_publish(5)
    pb = Properties(PacketTypes.PUBLISH)
    pb.TopicAlias = 1
    pb.ContentType = "application/json"
    pb.CorrelationData = b"corr-0003"
    c.publish("", json.dumps({"event": "census", "count": 2}), qos=2, properties=pb).wait_for_publish(5)

    # a publish the ACL denies -> PUBACK reason 0x87
    c.publish("admin/config", "reboot", qos=1).wait_for_publish(5)
    time.sleep(0.5)
    # reason code 0x04: disconnect with will message -> broker publishes the will
    c.disconnect(reasoncode=ReasonCode(PacketTypes.DISCONNECT, "Disconnect with will message"))
    c.loop_stop()


# ---------------------------------------------------------------- scenario 4
def badlogin(host, port):
    """Wrong password, MQTT 3.1.1 then MQTT 5 (paho)."""
    for proto, cid in ((mqtt.MQTTv311, "infusion-pump-17"), (mqtt.MQTTv5, "infusion-pump-18")):
        c = mk(cid, protocol=proto)
        c.username_pw_set("pump", "wrong-password")
        try:
            rc = connect_blocking(c, host, port, keepalive=30)
            print("bad login", cid, "->", rc, file=sys.stderr)
        finally:
            time.sleep(0.3)
            c.loop_stop()
            c.disconnect()


# ---------------------------------------------------------------- scenario 5 / 18
def telemetry(host, port):
    """Vital-sign telemetry without identifiers: N QoS 0 publishes."""
    dev, user, password, n = sys.argv[4], sys.argv[5], sys.argv[6], int(sys.argv[7])
    gap = float(sys.argv[8]) if len(sys.argv) > 8 else 0.01
    rnd = random.Random(dev)
    c = mk(dev)
    c.username_pw_set(user, password)
    connect_blocking(c, host, port, keepalive=60)
    # one message per segment, as many IoT stacks do
    c.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    ts0 = 1735689600000  # 2025-01-01T00:00:00Z, fixed for reproducible payloads
    for i in range(n):
        msg = {
            "hr": rnd.randint(60, 95),
            "spo2": rnd.randint(94, 99),
            "rr": rnd.randint(12, 20),
            "temp": round(36.5 + rnd.random(), 1),
            "ts": ts0 + i * 1000,
            "device": dev,
            "fw": "2.4.1",
            "batt": 100 - i // 10,
        }
        c.publish("telemetry/ward3/%s/vitals" % dev, json.dumps(msg, separators=(",", ":")), qos=0)
        time.sleep(gap)
    time.sleep(0.3)
    c.disconnect()
    c.loop_stop()


# ---------------------------------------------------------------- scenario 8
def bigpub(host, port):
    """ECG waveform upload: one ~200 KB publish (QoS 1)."""
    rnd = random.Random(8)
    samples = [rnd.randint(-2048, 2047) for _ in range(40000)]
    payload = json.dumps({"device": "ECG-0007", "lead": "II", "fs": 500, "uV": samples}, separators=(",", ":"))
    c = mk("ecg-cart-07")
    c.username_pw_set("ecg-cart", "k3P9wQ2zR7vM5xN1")
    connect_blocking(c, host, port, keepalive=60)
    c.publish("ward3/ecg-cart-07/waveform", payload, qos=1).wait_for_publish(10)
    time.sleep(0.3)
    c.disconnect()
    c.loop_stop()
    print("waveform payload %d bytes" % len(payload), file=sys.stderr)


def phijson(_host, _port):
    """Not a client: print the patient JSON for mosquitto_pub (args: jane|john hr spo2 seq)."""
    p = {"jane": fakeids.JANE, "john": fakeids.JOHN}[sys.argv[2]]
    print(phi_json(p, int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])))


ROLES = {f.__name__: f for f in (sub311, pub311, v31, v5sub, v5pub, badlogin, telemetry, bigpub)}

if __name__ == "__main__":
    if sys.argv[1] == "phijson":
        phijson(None, None)
    else:
        ROLES[sys.argv[1]](sys.argv[2], int(sys.argv[3]))
