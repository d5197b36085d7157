#!/usr/bin/env python3
"""Validates EVE lines (stdin) against Suricata's published EVE schema.

Usage: validate_eve.py SCHEMA.json < eve.json

Suricata's schema forbids unknown keys. wardwatch adds a few things of its
own; they are listed here, and only here, so every other field must have
exactly Suricata's name and shape.
"""
import copy
import json
import sys

import jsonschema

_STR = {"type": "string"}
_STRS = {"type": "array", "items": _STR}
# One HL7 message as src/app/hl7/log.rs writes it.
HL7_MESSAGE = {
    "type": "object",
    "required": ["segments", "framing", "length"],
    "properties": {
        **{k: _STR for k in [
            "message_type", "trigger_event", "message_structure", "control_id",
            "processing_id", "version", "sending_application", "sending_facility",
            "receiving_application", "receiving_facility", "patient_class", "ack_code",
            "acknowledged_control_id", "text_message"]},
        "segments": {"type": "array", "items": {"type": "string", "pattern": "^.{1,3}$"}},
        "framing": {"enum": ["mllp", "bare"]},
        "length": {"type": "integer", "minimum": 0},
        "truncated": {"type": "boolean"},
        "segment_count": {"type": "integer"},
        "segments_dropped": {"type": "integer"},
        "segments_truncated": {"type": "integer"},
        "incomplete": {"type": "boolean"},
        "errors": {"type": "array", "items": {
            "type": "object",
            "properties": {k: _STR for k in [
                "error_code_and_location", "error_location", "hl7_error_code", "severity",
                "diagnostic_information", "user_message"]},
            "additionalProperties": False}},
        "patient": {
            "type": "object",
            "properties": {
                "patient_identifier_list": _STRS, "patient_name": _STRS,
                "date_time_of_birth": _STR, "patient_address": _STRS,
                "phone_number_home": _STRS, "ssn_number_patient": _STR},
            "additionalProperties": False},
        "next_of_kin": _STRS,
    },
    "additionalProperties": False,
}

STRINGS = {"type": "array", "items": {"type": "string"}}
TS = {"type": "string", "pattern": r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}[+-]\d{4}$"}


def group(*keys):
    return {"type": "object", "properties": {k: STRINGS for k in keys},
            "additionalProperties": False}


ASSET = {
    "type": "object",
    "required": ["ip", "event", "first_seen"],
    "properties": {
        "ip": {"type": "string"},
        "event": {"enum": ["new", "changed", "snapshot"]},
        "changed": STRINGS,
        "first_seen": TS,
        "last_seen": TS,
        "macs": {"type": "array", "items": {
            "type": "object", "required": ["address"],
            "properties": {"address": {"type": "string", "pattern": "^([0-9a-f]{2}:){5}[0-9a-f]{2}$"},
                           "vendor": {"type": "string"}, "shared": {"type": "boolean"}},
            "additionalProperties": False}},
        "roles": STRINGS,
        "services": STRINGS,
        "dicom": group("scu_ae_titles", "scp_ae_titles", "implementation_class_uids",
                       "implementation_version_names", "toolkits"),
        "device": group("manufacturers", "models", "software_versions", "serial_numbers",
                        "station_names", "institutions", "modalities"),
        "mqtt": group("client_ids", "usernames", "versions", "topic_prefixes"),
        "hl7": group("sending_applications", "sending_facilities", "receiving_applications",
                     "receiving_facilities"),
        "tls": group("sni"),
        "truncated": STRINGS,
        "traffic": {"type": "array", "items": {
            "type": "object",
            "properties": {"app_proto": {"type": "string"},
                           **{k: {"type": "integer"} for k in [
                               "client_flows", "server_flows", "bytes_sent", "bytes_received"]}},
            "additionalProperties": False}},
        "countries": {"type": "array", "items": {
            "type": "object",
            "properties": {"country": {"type": "string", "pattern": "^[A-Z0-9]{2}$"},
                           "flows": {"type": "integer"}, "bytes": {"type": "integer"}},
            "additionalProperties": False}},
        "findings": {"type": "array", "items": {
            "type": "object",
            "properties": {"kind": {"type": "string"}, "count": {"type": "integer"}, "last": TS},
            "additionalProperties": False}},
        "cleartext_clinical": {"type": "boolean"},
        "baseline": {
            "type": "object",
            "properties": {
                "status": {"enum": ["known", "new"]},
                "drift": {"type": "array", "items": {
                    "type": "object",
                    "required": ["finding"],
                    "properties": {
                        "finding": {"enum": ["new-device", "ae-title-moved", "device-changed"]},
                        "fact": {"type": "string"}, "value": {"type": "string"},
                        "baseline": STRINGS},
                    "additionalProperties": False}},
            },
            "additionalProperties": False,
        },
    },
    "additionalProperties": False,
}

# Our additions, as (path of object properties, key, schema of the value).
ADDITIONS = [
    (["stats", "tcp"], "ooo_segments", {"type": "integer"}),
    (["stats", "tcp"], "retransmissions", {"type": "integer"}),
    (["stats", "tcp"], "reassembly_gap_bytes", {"type": "integer"}),
    (["stats", "tcp"], "ooo_limit_reached", {"type": "integer"}),
    # Reassembly (src/stream/mod.rs): holes declared after `hole_timeout`,
    # and overlap windows refused because stream.memcap was half used.
    (["stats", "tcp"], "ooo_timeout", {"type": "integer"}),
    (["stats", "tcp"], "overlap_window_memcap", {"type": "integer"}),
    (["stats", "app_layer", "flow"], "dicom", {"type": "integer"}),
    (["stats", "app_layer", "flow"], "hl7", {"type": "integer"}),
    (["stats", "detect"], "threshold_table_full", {"type": "integer"}),
    # Packets dropped for a bad checksum (src/decode/stats.rs). Suricata
    # counts only TCP's (tcp.invalid_checksum) and has rule keywords
    # (ipv4-csum, udpv4-csum, icmpv4-csum…) for the others; these name them
    # in its decoder-event style.
    (["stats", "decoder", "event", "ipv4"], "invalid_checksum", {"type": "integer"}),
    (["stats", "decoder", "event", "udp"], "invalid_checksum", {"type": "integer"}),
    (["stats", "decoder", "event", "icmpv4"], "invalid_checksum", {"type": "integer"}),
    (["stats", "decoder", "event", "icmpv6"], "invalid_checksum", {"type": "integer"}),
    # 1 when `decoder.checksum_checks: auto` found checksum offload in the
    # first packets and stopped validating (src/decode/offload.rs).
    (["stats", "decoder"], "checksum_offload_detected", {"type": "integer"}),
    # Reservations refused by defrag.memcap (src/decode/defrag.rs); each
    # evicts the oldest datagram being reassembled.
    (["stats", "defrag"], "memcap_reached", {"type": "integer"}),
    # Threshold matches decided on what was known (src/detect/threshold.rs).
    (["stats", "detect"], "threshold_late", {"type": "integer"}),
    (["stats", "detect"], "threshold_memcap", {"type": "integer"}),
    # Frames of a link type the decoder does not read (src/decode/stats.rs).
    (["stats", "decoder"], "unsupported_link", {"type": "integer"}),
    # Bytes held by app-layer parsers of all workers (src/memcap.rs).
    (["stats", "app_layer"], "memuse", {"type": "integer"}),
    # Times app_layer.memcap refused a flow's growth (src/app/session.rs).
    (["stats", "app_layer"], "memcap", {"type": "integer"}),
    # Anomaly records not written past the per-event, per-direction cap
    # of a flow (src/app/mod.rs, AnomalyTally).
    (["stats", "app_layer"], "anomalies_capped", {"type": "integer"}),
    # RSTs too far from the expected sequence number to close their flow
    # (src/flow/mod.rs).
    (["stats", "tcp"], "rst_out_of_window", {"type": "integer"}),
    # Packets of the capture files a `-f` filter rejected (src/capture/bpf.rs).
    (["stats", "capture"], "filtered", {"type": "integer"}),
    # Live capture: EVE lines dropped because the writer's queue was full
    # or a Unix-socket reader was absent (src/pipeline/live.rs).
    (["stats"], "output", {
        "type": "object",
        "properties": {"eve": {
            "type": "object",
            "properties": {"dropped_lines": {"type": "integer"}},
            "additionalProperties": False}},
        "additionalProperties": False,
    }),
    # Live capture through libpcap (src/capture/libpcap.rs): the packets
    # and bytes libpcap handed over.
    (["stats", "capture"], "pcap", {
        "type": "object",
        "properties": {"packets": {"type": "integer"}, "bytes": {"type": "integer"}},
        "additionalProperties": False,
    }),
    # The DICOM record (README "DICOM records"): association or DIMSE exchange.
    ([], "dicom", {
        "type": "object",
        "required": ["type"],
        "properties": {
            "type": {"enum": ["association", "dimse"]},
            "association": {"type": "object"},
            "dimse": {"type": "object"},
            # The answer was lost in a gap (one-way capture): shared decision.
            "answer_lost": {"type": "boolean"},
        },
        "additionalProperties": False,
    }),
    # The HL7 record (README "HL7 records", src/app/hl7/log.rs): the message
    # that opened it, its answer, and whether the answer was lost.
    ([], "hl7", dict(HL7_MESSAGE, properties={
        **HL7_MESSAGE["properties"],
        "answer": HL7_MESSAGE,
        "answer_lost": {"type": "boolean"},
    })),
    # Alerts (src/output/alert.rs): the patient data found and the countries
    # of both ends.
    ([], "phi", {
        "type": "object",
        "required": ["kinds"],
        "properties": {
            "kinds": {"type": "array", "minItems": 1, "items": {
                "enum": ["hl7", "fhir", "json", "ssn", "nir", "bsn", "dicom", "location"]}},
            "evidence": {"type": "array", "items": {
                "type": "object",
                "required": ["kind", "field", "value"],
                "properties": {"kind": {"type": "string"}, "field": {"type": "string"},
                               "value": {"type": "string"}},
                "additionalProperties": False}},
        },
        "additionalProperties": False,
    }),
    ([], "geo", {
        "type": "object",
        "properties": {
            "src_country": {"type": "string", "pattern": "^[A-Z0-9]{2}$"},
            "dest_country": {"type": "string", "pattern": "^[A-Z0-9]{2}$"},
        },
        "additionalProperties": False,
    }),
    # The asset inventory (src/asset/log.rs, README "Asset inventory"): one
    # record per host of the home network when first identified, when its
    # facts change, and as a snapshot; an alert of a rule on asset changes
    # carries the change's record.
    ([], "asset", ASSET),
    (["stats"], "asset", {
        "type": "object",
        "properties": {k: {"type": "integer"} for k in [
            "hosts", "memuse", "hosts_dropped", "hosts_evicted", "memcap",
            "lists_truncated", "values_cut", "phi_masked", "alerts"]},
        "additionalProperties": False,
    }),
    # MQTT (src/app/mqtt/log.rs): what Suricata lacks.
    (["mqtt"], "mid_stream_guess", {"type": "boolean"}),
    # The answer was in bytes the capture lost or never showed (one-way).
    (["mqtt"], "answer_lost", {"type": "boolean"}),
    (["mqtt"], "auth", {"type": "object", "additionalProperties": False, "properties": {
        "qos": {"type": "integer"}, "retain": {"type": "boolean"}, "dup": {"type": "boolean"},
        "reason_code": {"type": "integer"},
        "properties": {"type": "object", "additionalProperties": True},
        "truncated": {"type": "boolean"}, "skipped_length": {"type": "integer"}}}),
    (["mqtt", "connect"], "accepted", {"type": "boolean"}),
    (["mqtt", "connect"], "keep_alive", {"type": "integer"}),
    (["mqtt", "publish"], "payload_length", {"type": "integer"}),
    (["mqtt", "publish"], "resolved_topic", {"type": "string"}),
] + [
    # v5 properties of the messages whose properties Suricata does not log.
    (["mqtt", t], "properties", {"type": "object", "additionalProperties": True})
    for t in ["subscribe", "suback", "unsubscribe", "unsuback", "puback", "pubrec", "pubrel",
              "pubcomp"]
] + [
    # A message over the size limit is logged as Suricata logs a truncated
    # PUBLISH, whatever its type.
    (["mqtt", t], k, v)
    for t in ["connect", "connack", "puback", "pubrec", "pubrel", "pubcomp", "subscribe",
              "suback", "unsubscribe", "unsuback", "pingreq", "pingresp", "disconnect"]
    for k, v in [("truncated", {"type": "boolean"}), ("skipped_length", {"type": "integer"})]
]


def extend(schema):
    s = copy.deepcopy(schema)
    for path, key, value in ADDITIONS:
        node = s
        for p in path:
            node = node["properties"][p]
        assert key not in node["properties"], f"{key} is Suricata's now: remove it from ADDITIONS"
        node["properties"][key] = value
    return s


def main():
    schema = extend(json.load(open(sys.argv[1])))
    validator = jsonschema.Draft7Validator(schema)
    bad = 0
    n = 0
    # Read everything first: the caller writes all lines before it reads
    # what this prints, so printing while reading could fill a pipe and
    # block both.
    for line in sys.stdin.read().splitlines():
        n += 1
        rec = json.loads(line)
        for err in validator.iter_errors(rec):
            bad += 1
            print(f"line {n} ({rec.get('event_type')}): {'/'.join(map(str, err.absolute_path))}: {err.message}",
                  file=sys.stderr)
    print(f"{n} records, {bad} schema errors")
    sys.exit(1 if bad or n == 0 else 0)


if __name__ == "__main__":
    main()
