#!/usr/bin/env bash
# Regenerates pcaps/offload_sender.pcap: a capture taken on a host that
# offloads checksums to its NIC (see README-link.md, "Checksum offload").
#
# Two network namespaces created here (ww_offl_gw, ww_offl_br), joined by a
# veth pair; nothing leaves them. The gateway's veth keeps transmit checksum
# offload ON (`ethtool -K c0 tx on`), so the kernel hands its outgoing TCP
# and UDP packets to the "NIC" with only the pseudo-header sum in the
# checksum field (CHECKSUM_PARTIAL). tcpdump runs on the gateway, the
# sending host, and records them that way. The broker's veth has offload
# off: its packets arrive with real checksums, as from a remote host.
#
# Traffic, all real programs: mosquitto 2.0 with a password file;
# mosquitto_pub (MQTT 3.1.1, default credentials admin/admin) publishes an
# HL7 ORU^R01 for the fictitious TEST^JANE (pcaps/lib/fakeids.py) at QoS 1;
# python sends one UDP datagram to a python receiver (also offloaded); ping
# sends one ICMP echo
# (ICMP is summed in software, so its checksum is real).
#
# Needs root, tcpdump, tshark, mosquitto (+clients), ethtool, iproute2,
# python3, ping. Usage: pcaps/gen_offload.sh   (OUT=dir to write elsewhere)
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-$HERE}
TMP=$(mktemp -d /tmp/ww_offl.XXXXXX)
F=$OUT/offload_sender.pcap
PIDS=()

cleanup() {
    local p ns
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    for ns in ww_offl_gw ww_offl_br; do ip netns del "$ns" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

for t in tcpdump tshark mosquitto mosquitto_pub mosquitto_passwd ip ethtool python3 ping; do
    command -v "$t" >/dev/null || { echo "missing tool: $t" >&2; exit 1; }
done

GW() { ip netns exec ww_offl_gw "$@"; }
BR() { ip netns exec ww_offl_br "$@"; }

for ns in ww_offl_gw ww_offl_br; do
    ip netns add "$ns"
    ip netns exec "$ns" ip link set lo up
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
done
ip link add c0 netns ww_offl_gw address 02:00:1f:00:00:15 type veth \
    peer name b0 netns ww_offl_br address 02:00:1f:00:00:10
# Real-sized segments on both ends; transmit checksum offload only on the
# gateway (the capturing, sending host).
GW ethtool -K c0 tso off gso off gro off tx on >/dev/null
BR ethtool -K b0 tso off gso off gro off tx off >/dev/null
GW ethtool -k c0 | grep -q '^tx-checksumming: on' || { echo "tx offload not on" >&2; exit 1; }
for x in "GW c0 10.31.0.15" "BR b0 10.31.0.10"; do
    set -- $x
    $1 ip link set "$2" mtu 1500
    $1 ip addr add "$3/24" dev "$2"
    $1 ip link set "$2" up
done

# The broker: default credentials, anonymous refused.
mosquitto_passwd -c -b "$TMP/pw" admin admin
printf 'user root\nlistener 1883 0.0.0.0\nallow_anonymous false\npassword_file %s\npersistence false\nlog_dest stderr\n' \
    "$TMP/pw" >"$TMP/m.conf"
# Background programs started by `ip netns exec` itself (not through a
# function), so $! is the program and signals reach it.
ip netns exec ww_offl_br mosquitto -c "$TMP/m.conf" 2>"$TMP/mosq.log" &
PIDS+=($!)
for _ in $(seq 50); do BR ss -ltn | grep -q ':1883 ' && break; sleep 0.1; done

ip netns exec ww_offl_gw tcpdump -Z root -i c0 -U -w "$F" 2>"$TMP/tcpdump.log" &
CAP=$!
PIDS+=($CAP)
for _ in $(seq 50); do grep -q 'listening on' "$TMP/tcpdump.log" && break; sleep 0.1; done
sleep 0.3

# A syslog-like receiver, so the datagram is not answered by an ICMP error.
ip netns exec ww_offl_br timeout 10 python3 -c "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('10.31.0.10', 5140)); print('ready', flush=True); s.recvfrom(2048)" >"$TMP/udp.log" &
UDP=$!
PIDS+=($UDP)
for _ in $(seq 50); do grep -q ready "$TMP/udp.log" && break; sleep 0.1; done

HL7=$(python3 -c "import sys; sys.path.insert(0, '$HERE/lib'); import mqtt_clients as m, fakeids; sys.stdout.write(m.hl7_for(fakeids.JANE))")
GW mosquitto_pub -V mqttv311 -h 10.31.0.10 -i VITALS-GW-31 -u admin -P admin -q 1 \
    -t hl7/icu/oru -m "$HL7"
GW python3 -c "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.sendto(b'<14>vitals-gw: report sent', ('10.31.0.10', 5140))"
GW ping -c 1 -W 1 10.31.0.10 >/dev/null
wait "$UDP"

sleep 0.5
kill -INT "$CAP"
wait "$CAP" || true

# Check: the gateway's own TCP/UDP packets carry offloaded checksums, the
# broker's and the ICMP ones are right.
bad=$(tshark -r "$F" -o tcp.check_checksum:TRUE -o udp.check_checksum:TRUE \
    -Y 'ip.src == 10.31.0.15 && (tcp.checksum.status == 0 || udp.checksum.status == 0)' | wc -l)
good=$(tshark -r "$F" -o tcp.check_checksum:TRUE \
    -Y 'ip.src == 10.31.0.10 && (tcp.checksum.status == 1 || icmp.checksum.status == 1)' | wc -l)
mqtt=$(tshark -r "$F" -Y 'mqtt.msgtype == 3' | wc -l)
echo "offload_sender.pcap: $(capinfos -c -M "$F" | awk -F: '/Number of packets/{print $2}' | tr -d ' ') packets," \
    "$bad offloaded checksums from the gateway, $good verified from the broker, $mqtt PUBLISH" >&2
[ "$bad" -ge 5 ] && [ "$good" -ge 3 ] && [ "$mqtt" -eq 1 ] || { echo "unexpected capture" >&2; exit 1; }
