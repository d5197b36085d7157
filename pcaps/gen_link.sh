#!/usr/bin/env bash
# Regenerate the link-layer / encapsulation / TCP-edge-case captures of
# wardwatch's corpus (see README-link.md for what each file holds).
#
# Everything runs inside network namespaces named ww_link_* created here;
# nothing is sent outside them.  Needs root, tcpdump, dumpcap, tshark,
# editcap, mosquitto(+clients), python3 with scapy, iproute2, ethtool,
# iputils-ping and nftables.
#
# usage: gen_link.sh [name...]   (names: eth sll raw conv vlan mirror
#                                  ipv6 frag reorder midstream gap damaged;
#                                  default: all, in that order)
# OUT=dir overrides the output directory (default: the directory of this file).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
LIB=$HERE/lib_link
OUT=${OUT:-$HERE}
TMP=$(mktemp -d /tmp/ww_link.XXXXXX)
BPFFS=$TMP/bpffs
PIDS=()

log() { printf '== %s\n' "$*" >&2; }

cleanup() {
    local p ns
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    for ns in $(ip netns list | awk '{print $1}' | grep '^ww_link_' || true); do
        ip netns del "$ns" 2>/dev/null || true
    done
    if mountpoint -q "$BPFFS" 2>/dev/null; then umount "$BPFFS"; fi
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

for t in tcpdump dumpcap tshark editcap capinfos mosquitto mosquitto_pub \
         mosquitto_sub ip tc ethtool python3 ping nft; do
    command -v "$t" >/dev/null || { echo "missing tool: $t" >&2; exit 1; }
done

# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------
NX() { local ns=$1; shift; ip netns exec "ww_link_$ns" "$@"; }

# mkns NAME [v6]: namespace with lo up; IPv6 off unless "v6" (keeps the
# captures free of router/neighbour solicitations that the test does not need)
mkns() {
    ip netns add "ww_link_$1"
    NX "$1" ip link set lo up
    if [ "${2:-}" != v6 ]; then
        NX "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    fi
}

# quiet DEV in NS: MTU 1500 unless given, real-sized segments, real checksums
tune() {
    local ns=$1 dev=$2 mtu=${3:-1500}
    NX "$ns" ip link set "$dev" mtu "$mtu"
    NX "$ns" ethtool -K "$dev" tso off gso off gro off tx off >/dev/null 2>&1 || true
    NX "$ns" ip link set "$dev" up
}

# veth NS1 DEV1 MAC1 NS2 DEV2 MAC2 [MTU]
veth() {
    ip link add "$2" netns "ww_link_$1" address "$3" type veth \
        peer name "$5" netns "ww_link_$4" address "$6"
    tune "$1" "$2" "${7:-1500}"
    tune "$4" "$5" "${7:-1500}"
}

# bg [NX ns] cmd... : start in background; $LASTPID is the command itself (no
# subshell in between), so signals reach it
bg() {
    if [ "$1" = NX ]; then
        local ns=$2; shift 2
        ip netns exec "ww_link_$ns" "$@" &
    else
        "$@" &
    fi
    PIDS+=($!); LASTPID=$!
}

# cap_start NS OUTFILE tool-args... : start tcpdump/dumpcap, wait until it listens
cap_start() {
    local ns=$1 f=$2; shift 2
    local l=$TMP/cap.$RANDOM.log
    bg NX "$ns" "$@" -w "$f" 2>"$l"
    CAP=$LASTPID
    for _ in $(seq 50); do
        if grep -qiE 'listening on|^Capturing on' "$l"; then sleep 0.3; return 0; fi
        sleep 0.1
    done
    cat "$l" >&2; echo "capture did not start" >&2; exit 1
}
cap_stop() { sleep 0.5; kill -INT "$CAP"; wait "$CAP" || true; }

broker() { # broker NS : mosquitto listening on all addresses, port 1883
    local ns=$1 conf=$TMP/mosq.$1.conf
    printf 'listener 1883\nallow_anonymous true\npersistence false\nlog_dest stderr\n' \
        >"$conf"
    bg NX "$ns" mosquitto -c "$conf" 2>"$TMP/mosq.$1.log"
    for _ in $(seq 50); do
        NX "$ns" ss -ltn | grep -q ':1883 ' && return 0
        sleep 0.1
    done
    echo "mosquitto did not start in $ns" >&2; exit 1
}

# mqtt_exchange NS HOST TAG : one subscriber + three publishes (QoS 0, 1, 2)
# by the real mosquitto clients; the subscriber must receive all three.
mqtt_exchange() {
    local ns=$1 host=$2 tag=$3 out=$TMP/sub.$RANDOM
    bg NX "$ns" timeout 20 mosquitto_sub -h "$host" -i "monitor-$tag" -q 1 \
        -t "ward/+/vitals" -C 3 -v
    local sub=$LASTPID
    sleep 0.5
    NX "$ns" mosquitto_pub -h "$host" -i "bed7-$tag" -q 0 -t ward/7/vitals \
        -m '{"bed":7,"hr":72,"spo2":97,"via":"'"$tag"'"}'
    NX "$ns" mosquitto_pub -h "$host" -i "bed8-$tag" -q 1 -t ward/8/vitals \
        -m '{"bed":8,"hr":88,"spo2":95,"via":"'"$tag"'"}'
    NX "$ns" mosquitto_pub -h "$host" -i "bed9-$tag" -q 2 -V mqttv5 -t ward/9/vitals \
        -m '{"bed":9,"hr":64,"spo2":99,"via":"'"$tag"'"}'
    wait "$sub"
}

# basic pair: client ns $1 (10.$3.0.15) <-> broker ns $2 (10.$3.0.10) on a veth;
# device names c0 / b0, MACs 02:00:<net>:00:00:15 / :10
pair() {
    local c=$1 b=$2 net=$3 hx
    hx=$(printf '%02x' "$net")
    mkns "$c" "${4:-}"; mkns "$b" "${4:-}"
    veth "$c" c0 "02:00:$hx:00:00:15" "$b" b0 "02:00:$hx:00:00:10"
    NX "$c" ip addr add "10.$net.0.15/24" dev c0
    NX "$b" ip addr add "10.$net.0.10/24" dev b0
}

# tcp_xfer CLIENT_NS SERVER_NS SERVER_ADDR C2S_LEN S2C_LEN : known streams
tcp_xfer() {
    local c=$1 s=$2 a=$3 n1=$4 n2=$5 l=$TMP/srv.$RANDOM
    bg NX "$s" python3 "$LIB/xfer.py" server "$a" 40404 s2c "$n2" >"$l"
    local srv=$LASTPID
    for _ in $(seq 50); do grep -q ready "$l" && break; sleep 0.1; done
    NX "$c" python3 "$LIB/xfer.py" client "$a" 40404 c2s "$n1" >&2
    wait "$srv"; cat "$l" >&2
}

# expect FILE DISPLAY_FILTER MIN : fail loudly if a run came out incomplete
expect() {
    local n
    n=$(tshark -r "$OUT/$1" -Y "$2" 2>/dev/null | wc -l)
    if [ "$n" -lt "$3" ]; then
        echo "$1: only $n frames match '$2' (want >= $3)" >&2; exit 1
    fi
}

done_file() { log "$1: $(capinfos -c -M "$OUT/$1" | awk -F: '/Number of packets/{print $2}' | tr -d ' ') packets"; }

# --------------------------------------------------------------------------
# 1. Ethernet, nanosecond pcap
# --------------------------------------------------------------------------
gen_eth() {
    pair ec eb 11
    broker eb
    cap_start eb "$OUT/link_eth_nano.pcap" tcpdump -Z root -i b0 -U --time-stamp-precision=nano
    mqtt_exchange ec 10.11.0.10 eth
    cap_stop
    expect link_eth_nano.pcap mqtt 26; done_file link_eth_nano.pcap
}

# 2. Linux cooked captures v1 and v2 on "any"
gen_sll() {
    pair sc sb 12
    broker sb
    cap_start sb "$OUT/link_sll.pcap" tcpdump -Z root -i any -U -y LINUX_SLL
    mqtt_exchange sc 10.12.0.10 sll
    cap_stop
    cap_start sb "$OUT/link_sll2.pcap" tcpdump -Z root -i any -U -y LINUX_SLL2
    mqtt_exchange sc 10.12.0.10 sll2
    cap_stop
    expect link_sll.pcap mqtt 26; expect link_sll2.pcap mqtt 26
    done_file link_sll.pcap; done_file link_sll2.pcap
}

# 3./4. raw-IP tunnel (TUN pair joined by tunrelay.py) + veth: link_raw.pcap and
# the two-interface pcapng
gen_raw() {
    mkns ra; mkns rb; mkns rc
    NX ra ip tuntap add dev wwtun0 mode tun
    NX rb ip tuntap add dev wwtun0 mode tun
    bg python3 "$LIB/tunrelay.py" ww_link_ra wwtun0 ww_link_rb wwtun0 "$TMP/tun.ready"
    for _ in $(seq 50); do [ -e "$TMP/tun.ready" ] && break; sleep 0.1; done
    tune ra wwtun0; tune rb wwtun0
    NX ra ip addr add 10.13.0.15 peer 10.13.0.10 dev wwtun0
    NX rb ip addr add 10.13.0.10 peer 10.13.0.15 dev wwtun0
    veth ra c0 02:00:0e:00:00:15 rc b0 02:00:0e:00:00:10
    NX ra ip addr add 10.14.0.15/24 dev c0
    NX rc ip addr add 10.14.0.10/24 dev b0
    broker rb; broker rc
    cap_start ra "$OUT/link_raw.pcap" tcpdump -Z root -i wwtun0 -U
    mqtt_exchange ra 10.13.0.10 raw
    cap_stop
    expect link_raw.pcap mqtt 26; done_file link_raw.pcap
    cap_start ra "$OUT/link_multi_if.pcapng" dumpcap -i c0 -i wwtun0
    mqtt_exchange ra 10.14.0.10 veth
    mqtt_exchange ra 10.13.0.10 tun
    cap_stop
    expect link_multi_if.pcapng mqtt 52; done_file link_multi_if.pcapng
}

# 5. conversions of link_eth_nano.pcap
gen_conv() {
    python3 "$LIB/pcaptool.py" bigendian "$OUT/link_eth_nano.pcap" "$OUT/link_bigendian.pcap" >&2
    python3 "$LIB/pcaptool.py" null "$OUT/link_eth_nano.pcap" "$OUT/link_null.pcap" >&2
    done_file link_bigendian.pcap; done_file link_null.pcap
}

# 6. 802.1Q and 802.1ad+802.1Q, tags pushed/popped by the kernel (tc eBPF,
# bpf_skb_vlan_push/pop) because this kernel has no 8021q module
gen_vlan() {
    mkdir -p "$BPFFS"; mount -t bpf bpf "$BPFFS"
    python3 "$LIB/ebpf_vlan.py" "$BPFFS"
    local kind push pop net
    for kind in vlan qinq; do
        if [ $kind = vlan ]; then push=push120; pop=pop1; net=15; else push=qinq300_120; pop=pop2; net=16; fi
        pair "${kind}c" "${kind}b" $net
        for x in "${kind}c c0" "${kind}b b0"; do
            set -- $x
            NX "$1" tc qdisc add dev "$2" clsact
            NX "$1" tc filter add dev "$2" egress bpf da pinned "$BPFFS/$push"
            NX "$1" tc filter add dev "$2" ingress bpf da pinned "$BPFFS/$pop"
        done
        broker "${kind}b"
        cap_start "${kind}c" "$OUT/encap_$kind.pcap" tcpdump -Z root -i c0 -U
        mqtt_exchange "${kind}c" "10.$net.0.10" "$kind"
        cap_stop
        expect "encap_$kind.pcap" mqtt 26; done_file "encap_$kind.pcap"
    done
}

# 7. remote mirror: client <-> bridge(switch) <-> broker; the client's access
# port is mirrored (ingress+egress) into a tunnel towards the sensor namespace
gen_mirror() {
    local mode
    for mode in gretap erspan2 erspan3 vxlan; do
        mkns mc; mkns mb; mkns sw; mkns sn
        NX sw ip link add br0 type bridge
        veth mc c0 02:00:11:00:00:15 sw pc 02:00:11:00:01:15
        veth mb b0 02:00:11:00:00:10 sw pb 02:00:11:00:01:10
        NX sw ip link set pc master br0; NX sw ip link set pb master br0
        NX sw ip link set br0 up
        NX mc ip addr add 10.17.0.15/24 dev c0
        NX mb ip addr add 10.17.0.10/24 dev b0
        # underlay switch -> sensor, jumbo MTU as on real mirror links
        veth sw up0 02:00:63:00:00:01 sn sn0 02:00:63:00:00:02 9000
        NX sw ip addr add 10.99.0.1/24 dev up0
        NX sn ip addr add 10.99.0.2/24 dev sn0
        # the sensor only listens: drop everything at L3 so it sends no ICMP errors
        NX sn nft -f - <<'NFT'
table inet sensor {
    chain listen_only {
        type filter hook input priority 0; policy drop;
    }
}
NFT
        if [ $mode = vxlan ]; then
            NX sw ip link add mir0 type vxlan id 42 local 10.99.0.1 remote 10.99.0.2 \
                dstport 4789 dev up0
        else
            rm -f "$TMP/mir.ready"
            bg NX sw python3 "$LIB/mirror_export.py" mir0 10.99.0.2 $mode "$TMP/mir.ready"
            for _ in $(seq 80); do [ -e "$TMP/mir.ready" ] && break; sleep 0.1; done
        fi
        tune sw mir0
        NX sw tc qdisc add dev pc clsact
        NX sw tc filter add dev pc ingress protocol all u32 match u32 0 0 \
            action mirred egress mirror dev mir0
        NX sw tc filter add dev pc egress protocol all u32 match u32 0 0 \
            action mirred egress mirror dev mir0
        broker mb
        local f=encap_$mode.pcap
        cap_start sn "$OUT/$f" tcpdump -Z root -i sn0 -U
        mqtt_exchange mc 10.17.0.10 "$mode"
        cap_stop
        expect "$f" mqtt 26; done_file "$f"
        reset
    done
}

# 8. MQTT over IPv6 + fragmented IPv6 UDP/ICMPv6 + MLD (hop-by-hop) reports
gen_ipv6() {
    mkns 6c v6; mkns 6b v6
    veth 6c c0 02:00:06:00:00:15 6b b0 02:00:06:00:00:10
    sleep 2 # let link-local DAD/MLD for the new links settle before capturing
    cap_start 6b "$OUT/tcp_ipv6.pcap" tcpdump -Z root -i b0 -U
    NX 6c ip addr add fd00:20::15/64 dev c0 nodad
    NX 6b ip addr add fd00:10::10/64 dev b0 nodad
    NX 6c ip route add fd00:10::/64 dev c0
    NX 6b ip route add fd00:20::/64 dev b0
    sleep 1
    broker 6b
    mqtt_exchange 6c fd00:10::10 ipv6
    local l=$TMP/udp6.log
    bg NX 6b python3 "$LIB/udp.py" sink fd00:10::10 9999 2 >"$l"
    local sink=$LASTPID
    for _ in $(seq 50); do grep -q ready "$l" && break; sleep 0.1; done
    NX 6c python3 "$LIB/udp.py" send fd00:10::10 9999 4000 2500
    wait "$sink"; cat "$l" >&2
    NX 6c ping -6 -c 1 -s 3000 fd00:10::10 >/dev/null
    cap_stop
    expect tcp_ipv6.pcap mqtt 26; expect tcp_ipv6.pcap ipv6.fraghdr 11
    done_file tcp_ipv6.pcap
}

# 9. IPv4 fragments: UDP 3000..8000 bytes and a 4000-byte ICMP echo
gen_frag() {
    pair fc fb 18
    local l=$TMP/udp4.log
    cap_start fb "$OUT/frag_ipv4_udp.pcap" tcpdump -Z root -i b0 -U
    bg NX fb python3 "$LIB/udp.py" sink 10.18.0.10 9999 3 >"$l"
    local sink=$LASTPID
    for _ in $(seq 50); do grep -q ready "$l" && break; sleep 0.1; done
    NX fc python3 "$LIB/udp.py" send 10.18.0.10 9999 3000 5000 8000
    wait "$sink"; cat "$l" >&2
    NX fc ping -c 1 -s 4000 10.18.0.10 >/dev/null
    cap_stop
    expect frag_ipv4_udp.pcap icmp 2; expect frag_ipv4_udp.pcap udp 3
    done_file frag_ipv4_udp.pcap
}

# 10. TCP through an impaired link: loss 1%, duplication 2%, 20% of segments
# delayed behind a slow HTB class (reordering); kernel only (nft + htb) since
# this kernel has no netem
gen_reorder() {
    pair nc nb 19
    NX nc tc qdisc add dev c0 root handle 1: htb default 10
    NX nc tc class add dev c0 parent 1: classid 1:10 htb rate 1gbit
    NX nc tc class add dev c0 parent 1: classid 1:20 htb rate 4mbit ceil 4mbit
    NX nc nft -f - <<'NFT'
table netdev impair {
    chain eg {
        type filter hook egress device "c0" priority 0;
        ip protocol tcp numgen random mod 100 < 1 drop
        ip protocol tcp numgen random mod 50 == 0 dup to "c0"
        ip protocol tcp numgen random mod 5 == 0 meta priority set 1:20
    }
}
NFT
    cap_start nb "$OUT/tcp_netem_reorder.pcap" tcpdump -Z root -i b0 -U
    tcp_xfer nc nb 10.19.0.10 ${REORDER_LEN:-120000} 16384
    cap_stop
    # the reassembled streams must be exactly the known patterns
    local got want
    got=$(tshark -r "$OUT/tcp_netem_reorder.pcap" -q -z follow,tcp,raw,0 2>/dev/null \
        | python3 "$LIB/pcaptool.py" follow | awk '{print $3}' | sort | tr '\n' ' ')
    want=$( { python3 "$LIB/pattern.py" --sha c2s "${REORDER_LEN:-120000}"
              python3 "$LIB/pattern.py" --sha s2c 16384; } | sort | tr '\n' ' ')
    [ "$got" = "$want" ] || { echo "reorder: stream sha256 mismatch: $got vs $want" >&2; exit 1; }
    expect tcp_netem_reorder.pcap tcp.analysis.retransmission 1
    done_file tcp_netem_reorder.pcap
}

# 11a. clean transfer, then the handshake and first data packets are cut away
gen_midstream() {
    pair mc mb 20
    cap_start mb "$TMP/midstream_full.pcap" tcpdump -Z root -i b0 -U
    tcp_xfer mc mb 10.20.0.10 60000 8192
    cap_stop
    # cut everything up to and including the 2nd client->server data segment
    local last
    last=$(tshark -r "$TMP/midstream_full.pcap" -Y 'tcp.dstport==40404 && tcp.len>0' \
        -T fields -e frame.number | sed -n 2p)
    log "midstream: removing frames 1-$last"
    tshark -r "$TMP/midstream_full.pcap" -c "$last" >&2
    editcap "$TMP/midstream_full.pcap" "$OUT/tcp_midstream.pcap" "1-$last"
    done_file tcp_midstream.pcap
}

# 11b. clean transfer with some client->server data packets deleted
gen_gap() {
    pair gc gb 21
    cap_start gb "$TMP/gap_full.pcap" tcpdump -Z root -i b0 -U
    tcp_xfer gc gb 10.21.0.10 60000 8192
    cap_stop
    # data segments client->server, in capture order
    local frames
    frames=$(tshark -r "$TMP/gap_full.pcap" -Y 'tcp.dstport==40404 && tcp.len>0' \
        -T fields -e frame.number | sed -n '12p;13p;25p' | tr '\n' ' ')
    log "gap: removing frames $frames"
    tshark -r "$TMP/gap_full.pcap" -Y "$(echo $frames | sed 's/\([0-9]*\)/frame.number==\1/g; s/ / || /g')" >&2
    editcap "$TMP/gap_full.pcap" "$OUT/tcp_capture_gap.pcap" $frames
    done_file tcp_capture_gap.pcap
}

# 12. damaged files
gen_damaged() {
    pair dc db 22
    broker db
    cap_start db "$TMP/dmg_full.pcap" tcpdump -Z root -i b0 -U
    mqtt_exchange dc 10.22.0.10 damaged
    cap_stop
    local cut
    cut=$(python3 "$LIB/pcaptool.py" cutpoint "$TMP/dmg_full.pcap" 20)
    head -c "$cut" "$TMP/dmg_full.pcap" >"$OUT/damaged_truncated.pcap"
    log "damaged_truncated: cut at byte $cut (20 complete records)"
    python3 "$LIB/pcaptool.py" corrupt "$TMP/dmg_full.pcap" "$OUT/damaged_corrupt.pcap" 12 >&2
    # snaplen 96: every MQTT data segment is longer than 96 bytes on the wire
    cap_start db "$OUT/damaged_snaplen.pcap" tcpdump -Z root -i b0 -U -s 96
    mqtt_exchange dc 10.22.0.10 "snaplen-$(printf 'x%.0s' $(seq 120))"
    cap_stop
    expect damaged_snaplen.pcap "frame.cap_len < frame.len" 1; done_file damaged_snaplen.pcap
}

# kill what this script started and drop its namespaces
reset() {
    local p ns
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    PIDS=()
    for ns in $(ip netns list | awk '{print $1}' | grep '^ww_link_' || true); do
        ip netns del "$ns"
    done
}

ALL="eth sll raw conv vlan mirror ipv6 frag reorder midstream gap damaged"
for step in ${*:-$ALL}; do
    log "generating: $step"
    "gen_$step"
    reset
done
