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

# Our additions, as (path of object properties, key, schema of the value).
ADDITIONS = [
    (["stats", "tcp"], "ooo_segments", {"type": "integer"}),
    (["stats", "tcp"], "retransmissions", {"type": "integer"}),
    (["stats", "tcp"], "reassembly_gap_bytes", {"type": "integer"}),
    (["stats", "tcp"], "ooo_limit_reached", {"type": "integer"}),
    (["stats", "app_layer", "flow"], "dicom", {"type": "integer"}),
    # The DICOM record (README "DICOM records"): association or DIMSE exchange.
    ([], "dicom", {
        "type": "object",
        "required": ["type"],
        "properties": {
            "type": {"enum": ["association", "dimse"]},
            "association": {"type": "object"},
            "dimse": {"type": "object"},
        },
        "additionalProperties": False,
    }),
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
    for line in sys.stdin:
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
