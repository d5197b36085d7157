#!/bin/bash
# Regenerate mqtt_v5_padded_connect.pcap (README.md): a real paho-mqtt 2.2
# client logs in to mosquitto 2.0 as admin/admin with an MQTT 5.0 CONNECT
# padded with 1.1 MiB of user properties, then publishes patient JSON; and
# mqtt_anomaly_flood.pcap: a login, 2 000 malformed PUBLISHes and patient
# JSON in one write (lib/mqtt_flood.py).
# Captured with tcpdump between two network namespaces this script creates
# (named apart from gen_app.sh's, so both may run at once), then
# re-addressed by lib/rewrite.py. Nothing leaves the namespaces.
#
# Usage (as root): pcaps/gen_mqtt_padded.sh
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
WW_LIB=$HERE/lib
# shellcheck source=lib/common.sh
. "$WW_LIB/common.sh"
WW_NS_SRV=ww_mqpad_srv
CLI=ww_mqpad_cli
SRV=172.31.78.1
CLI_IP=172.31.78.11
OUT=${WW_OUT:-$HERE}
WORK=$(mktemp -d /tmp/ww_mqpad.XXXXXX)
chmod 755 "$WORK"

down() {
    local ns pids
    for ns in $WW_NS_SRV $CLI; do
        if ip netns list | grep -qw "$ns"; then
            pids=$(ip netns pids "$ns" 2>/dev/null || true)
            [ -n "$pids" ] && kill $pids 2>/dev/null || true
            ip netns del "$ns" 2>/dev/null || true
        fi
    done
}
cleanup() {
    srv_stop || true
    [ -n "${WW_CAP_PID:-}" ] && kill -INT "$WW_CAP_PID" 2>/dev/null || true
    down
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

down
ip netns add $WW_NS_SRV
ip netns add $CLI
ip link add eth0 netns $CLI type veth peer name wwp1 netns $WW_NS_SRV
for ns_dev in "$WW_NS_SRV wwp1 $SRV" "$CLI eth0 $CLI_IP"; do
    set -- $ns_dev
    ip netns exec "$1" ip link set lo up
    ip netns exec "$1" ip link set "$2" mtu 1500
    ip netns exec "$1" ip addr add "$3/24" dev "$2"
    ip netns exec "$1" ip link set "$2" up
    ww_offloads_off "$1" "$2"
done
for n in $(seq 1 50); do
    ip netns exec $CLI ping -c1 -W1 $SRV >/dev/null 2>&1 && break
    sleep 0.2
done

mosquitto_passwd -c -b "$WORK/pw" admin admin
printf '%s\n' "user root" "persistence false" "log_dest stderr" "log_type all" \
    "listener 1883 0.0.0.0" "allow_anonymous false" "password_file $WORK/pw" >"$WORK/m.conf"
srv_start 1883 "$WORK/broker.log" mosquitto -c "$WORK/m.conf"
# tcpdump on the server's end of the link
cap_start "$WORK/raw" wwp1
ip netns exec $CLI python3 "$WW_LIB/mqtt_padded.py" $SRV 1883
cap_stop
# The anomaly flood (lib/mqtt_flood.py), in a capture of its own.
cap_start "$WORK/flood" wwp1
ip netns exec $CLI python3 "$WW_LIB/mqtt_flood.py" $SRV 1883
cap_stop
srv_stop
for f in raw:mqtt_v5_padded_connect flood:mqtt_anomaly_flood; do
    rewrite "$WORK/${f%%:*}" "$OUT/evasion/${f#*:}.pcap" \
        "$SRV=10.10.5.10,mac=00:50:56:05:00:0a" "$CLI_IP=10.20.1.15,mac=00:09:fb:1e:01:0f"
    log "wrote $OUT/evasion/${f#*:}.pcap"
done
