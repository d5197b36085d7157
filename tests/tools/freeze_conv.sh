#!/bin/sh
# Freezes tshark's per-conversation counts and the reference Community IDs of
# every committed capture into tests/expected/conv/, for machines without
# tshark. Needs tshark and `pip install communityid`. Review the diff.
set -eu
cd "$(dirname "$0")/../.."
mkdir -p tests/expected/conv
for f in pcaps/*.pcap pcaps/*.pcapng pcaps/evasion/*.pcap; do
    [ -e "$f" ] || continue
    python3 tests/tools/tshark_conv.py "$f" > "tests/expected/conv/$(basename "$f").tsv"
done
