#!/usr/bin/env python3
"""paho-mqtt client for gen_mqtt_padded.sh: an MQTT 5.0 login as admin/admin
whose CONNECT carries 1.1 MiB of user properties (18 values of 64 000
bytes), then a QoS 1 PUBLISH of patient JSON and a DISCONNECT.

Usage: mqtt_padded.py HOST PORT
The padding makes the CONNECT larger than wardwatch's default max_msg_len
(1 MiB), as a client hiding its login from a sensor would; mosquitto 2.0
accepts it (CONNACK 0).
"""

import json
import sys
import threading

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

sys.path.insert(0, __import__("os").path.dirname(__file__))
import fakeids  # noqa: E402


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="MON-W3-BED12",
                    protocol=mqtt.MQTTv5)
    c.username_pw_set("admin", "admin")
    props = Properties(PacketTypes.CONNECT)
    props.UserProperty = [("pad%02d" % i, "x" * 64000) for i in range(18)]
    done = threading.Event()
    rc = {}

    def on_connect(client, userdata, flags, reason, p=None):
        rc["connect"] = reason
        done.set()

    c.on_connect = on_connect
    c.connect(host, port, 30, properties=props)
    c.loop_start()
    if not done.wait(10):
        raise SystemExit("no CONNACK")
    if rc["connect"].is_failure:
        raise SystemExit(f"refused: {rc['connect']}")
    p = fakeids.JANE
    body = json.dumps({"device": "MON-W3-BED12", "patient": {
        "name": p["name"], "mrn": p["mrn"], "birthDate": p["birth_date"]}, "hr": 72})
    c.publish("ward3/bed12/patient", body, qos=1).wait_for_publish(5)
    c.disconnect()
    c.loop_stop()


if __name__ == "__main__":
    main()
