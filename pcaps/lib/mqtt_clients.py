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


# ---------------------------------------------------------------- scenario: patient location
# Public places in Paris (pcaps/README.md, "Patient location"). The
# hospital's grounds (demo.yaml site_locations) are centred on the Jardin
# de Reuilly, 48.84120 N 2.38820 E, radius 300 m.

# The wearable's walk through the Jardin des Plantes, from the rue Cuvier
# side towards the Austerlitz side: 20 fixes, 5 decimals each (none with
# fewer than 3 significant decimals once JSON drops trailing zeros).
WEARABLE_PATH = [
    (48.84512, 2.35601), (48.84504, 2.35626), (48.84496, 2.35651), (48.84488, 2.35676),
    (48.84480, 2.35701), (48.84472, 2.35726), (48.84464, 2.35751), (48.84456, 2.35776),
    (48.84448, 2.35801), (48.84440, 2.35826), (48.84433, 2.35852), (48.84425, 2.35877),
    (48.84417, 2.35902), (48.84409, 2.35927), (48.84401, 2.35952), (48.84393, 2.35977),
    (48.84385, 2.36002), (48.84377, 2.36027), (48.84369, 2.36052), (48.84361, 2.36077),
]

# The tracker's walk along the Coulee verte Rene-Dumont (avenue Daumesnil)
# into the Jardin de Reuilly: the first five fixes are 1510, 1202, 912,
# 656 and 398 m from the site centre, the last three 224, 99 and 18 m
# (inside the 300 m site).
TRACKER_PATH = [
    (48.85027, 2.37285), (48.84853, 2.37612), (48.84684, 2.37915), (48.84521, 2.38163),
    (48.84362, 2.38420), (48.84260, 2.38600), (48.84180, 2.38720), (48.84130, 2.38800),
]

# Where the bedside hub is installed: the site, 18 m from its centre.
HUB_POSITION = (48.84133, 2.38795)


def nmea_angle(value, deg_digits):
    """Decimal degrees as NMEA's (d)ddmm.mmmm."""
    a = abs(value)
    deg = int(a)
    return "%0*d%07.4f" % (deg_digits, deg, (a - deg) * 60)


def nmea_fix(t, pos):
    """RMC and GGA sentences (pynmea2 renders the checksums) of one fix at
    second t after 2025-01-01 10:15:00 UTC; pos None: the receiver has no
    fix yet (RMC status V, GGA quality 0, empty positions)."""
    import pynmea2

    hms = "1015%02d.00" % t
    if pos is None:
        rmc = ("V", "", "", "", "", "", "", "010125", "", "", "N")
        gga = ("", "", "", "", "0", "00", "99.9", "", "M", "", "M", "", "")
    else:
        lat = (nmea_angle(pos[0], 2), "N" if pos[0] >= 0 else "S")
        lon = (nmea_angle(pos[1], 3), "E" if pos[1] >= 0 else "W")
        rmc = ("A",) + lat + lon + ("0.9", "118.0", "010125", "", "", "A")
        gga = lat + lon + ("1", "08", "1.1", "41.0", "M", "46.0", "M", "", "")
    return "%s\r\n%s\r\n" % (
        pynmea2.RMC("GP", "RMC", (hms,) + rmc).render(),
        pynmea2.GGA("GP", "GGA", (hms,) + gga).render(),
    )


def wearable(host, port):
    """Patient wearable (paho 3.1.1, TCP_NODELAY): vitals with its GPS fix,
    QoS 1; the first message is sent before the first fix (0.0, 0.0)."""
    rnd = random.Random("WEAR-0007")
    c = mk("WEAR-0007")
    c.username_pw_set("wear-0007", "Mz4Qh8Tn2Rw6Kp1X")
    connect_blocking(c, host, port, keepalive=60)
    c.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    ts0 = 1735726500000  # 2025-01-01T10:15:00Z
    fixes = [(0.0, 0.0)] + WEARABLE_PATH
    for i, (lat, lon) in enumerate(fixes):
        msg = {
            "device": "WEAR-0007",
            "seq": i,
            "ts": ts0 + i * 5000,
            "hr": rnd.randint(78, 104),
            "spo2": rnd.randint(93, 98),
            "steps": 40 * i,
            "batt": 87,
            "gps": {"lat": lat, "lon": lon, "acc": 4.8 if i else 0.0, "fix": i > 0},
        }
        c.publish("rpm/wear-0007/vitals", json.dumps(msg, separators=(",", ":")), qos=1).wait_for_publish(5)
        time.sleep(0.05)
    time.sleep(0.3)
    c.disconnect()
    c.loop_stop()


def tracker(host, port):
    """GPS tracker (paho 3.1.1, TCP_NODELAY) publishing its receiver's NMEA
    output, one epoch (RMC + GGA) per message, QoS 0: two epochs before the
    first fix, then one fix per point of TRACKER_PATH."""
    c = mk("TRK-0031")
    c.username_pw_set("trk-0031", "Lc7Wv3Nd9Gx5Hb2Q")
    connect_blocking(c, host, port, keepalive=60)
    c.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    epochs = [None, None] + TRACKER_PATH
    for t, pos in enumerate(epochs):
        c.publish("rpm/trk-0031/nmea", nmea_fix(t, pos), qos=0)
        time.sleep(0.05)
    time.sleep(0.3)
    c.disconnect()
    c.loop_stop()


def hub(host, port):
    """Bedside hub installed in ward 3 (paho 3.1.1): a retained status with
    where it is installed (GeoJSON point, the NMEA of its receiver, a coarse
    area), then 20 vitals messages with blood-pressure pairs, QoS 0."""
    rnd = random.Random("HUB-W3-12")
    c = mk("HUB-W3-12")
    c.username_pw_set("hub-w3-12", "Pf6Jx2Kq9Bz4Wm7T")
    connect_blocking(c, host, port, keepalive=60)
    c.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    lat, lon = HUB_POSITION
    status = {
        "device": "HUB-W3-12",
        "fw": "3.1.4",
        "location": {"type": "Point", "coordinates": [lon, lat]},
        "gnss": nmea_fix(0, HUB_POSITION).split("\r\n")[1],
        "tz_area": {"lat": 48.84, "lon": 2.39},
    }
    c.publish("ward3/hub-w3-12/status", json.dumps(status, separators=(",", ":")), qos=1,
              retain=True).wait_for_publish(5)
    ts0 = 1735726500000
    for i in range(20):
        msg = {
            "device": "HUB-W3-12",
            "bed": "W3-12",
            "seq": i,
            "ts": ts0 + i * 5000,
            "hr": rnd.randint(60, 90),
            "spo2": rnd.randint(94, 99),
            "nibp": {"sys": 120.5 + rnd.randint(-4, 4), "dia": 80.25 + rnd.randint(-3, 3)},
            "temp": round(36.6 + rnd.random(), 2),
            "fw": "2.4.1",
        }
        c.publish("ward3/hub-w3-12/vitals", json.dumps(msg, separators=(",", ":")), qos=0)
        time.sleep(0.05)
    time.sleep(0.3)
    c.disconnect()
    c.loop_stop()


def phijson(_host, _port):
    """Not a client: print the patient JSON for mosquitto_pub (args: jane|john hr spo2 seq)."""
    p = {"jane": fakeids.JANE, "john": fakeids.JOHN}[sys.argv[2]]
    print(phi_json(p, int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])))


ROLES = {f.__name__: f for f in (sub311, pub311, v31, v5sub, v5pub, badlogin, telemetry, bigpub,
                                  wearable, tracker, hub)}

if __name__ == "__main__":
    if sys.argv[1] == "phijson":
        phijson(None, None)
    else:
        ROLES[sys.argv[1]](sys.argv[2], int(sys.argv[3]))
