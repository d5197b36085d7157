# Shared helpers for the capture scripts (sourced, not executed).
#
# Topology built by ww_net_up (all inside network namespaces created here;
# nothing is routed to the host or beyond):
#
#   ww_app_srv : bridge wwbr0 172.31.77.1/24  (servers: mosquitto, storescp, SCPs)
#   ww_app_d1  : eth0 172.31.77.11/24         (device 1, e.g. bedside monitor)
#   ww_app_d2  : eth0 172.31.77.12/24         (device 2, e.g. nurse station)
#   ww_app_d3  : eth0 172.31.77.13/24         (device 3, e.g. dashboard)
#
# Each device namespace is joined to the bridge by a veth pair; MTU 1500,
# TSO/GSO/GRO and checksum offload off everywhere so captured segments look
# like segments on a real wire. tcpdump runs on wwbr0 inside ww_app_srv.
# The 172.31.77.0/24 addresses are rewritten afterwards by lib/rewrite.py.

WW_NS_SRV=ww_app_srv
WW_NS_DEVS="ww_app_d1 ww_app_d2 ww_app_d3"
WW_SRV_IP=172.31.77.1
WW_D1_IP=172.31.77.11
WW_D2_IP=172.31.77.12
WW_D3_IP=172.31.77.13

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# Run a command inside a namespace.
in_srv() { ip netns exec "$WW_NS_SRV" "$@"; }
in_d1() { ip netns exec ww_app_d1 "$@"; }
in_d2() { ip netns exec ww_app_d2 "$@"; }
in_d3() { ip netns exec ww_app_d3 "$@"; }

ww_offloads_off() { # ns dev
    ip netns exec "$1" ethtool -K "$2" tso off gso off gro off tx off rx off >/dev/null 2>&1 ||
        ip netns exec "$1" ethtool -K "$2" tso off gso off gro off >/dev/null 2>&1 || true
}

ww_net_down() {
    local ns
    for ns in $WW_NS_SRV $WW_NS_DEVS; do
        if ip netns list | grep -qw "$ns"; then
            # end only the processes this script started inside our namespaces
            local pids
            pids=$(ip netns pids "$ns" 2>/dev/null || true)
            [ -n "$pids" ] && kill $pids 2>/dev/null || true
            ip netns del "$ns" 2>/dev/null || true
        fi
        rm -rf "/etc/netns/$ns"
    done
}

ww_net_up() {
    ww_net_down
    ip netns add "$WW_NS_SRV"
    in_srv ip link set lo up
    in_srv sysctl -qw net.ipv6.conf.all.disable_ipv6=1
    in_srv sysctl -qw net.ipv6.conf.default.disable_ipv6=1
    in_srv ip link add wwbr0 type bridge
    in_srv ip link set wwbr0 address 02:77:00:00:00:01
    in_srv ip link set wwbr0 mtu 1500
    in_srv ip addr add "$WW_SRV_IP/24" dev wwbr0
    local i=0 ns ip
    for ns in $WW_NS_DEVS; do
        i=$((i + 1))
        ip="172.31.77.$((10 + i))"
        ip netns add "$ns"
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.default.disable_ipv6=1
        ip link add eth0 netns "$ns" type veth peer name "wwp$i" netns "$WW_NS_SRV"
        ip netns exec "$ns" ip link set lo up
        ip netns exec "$ns" ip link set eth0 address "02:77:00:00:01:0$i"
        ip netns exec "$ns" ip link set eth0 mtu 1500
        ip netns exec "$ns" ip addr add "$ip/24" dev eth0
        ip netns exec "$ns" ip link set eth0 up
        in_srv ip link set "wwp$i" mtu 1500
        in_srv ip link set "wwp$i" master wwbr0
        in_srv ip link set "wwp$i" up
        ww_offloads_off "$ns" eth0
        ww_offloads_off "$WW_NS_SRV" "wwp$i"
        # Name resolution for TLS scenarios (SNI / certificate names).
        mkdir -p "/etc/netns/$ns"
        printf '127.0.0.1 localhost\n%s mqtt.hopital.example pacs.hopital.example\n' "$WW_SRV_IP" \
            >"/etc/netns/$ns/hosts"
    done
    in_srv ip link set wwbr0 up
    ww_offloads_off "$WW_NS_SRV" wwbr0
    # wait until the bridge forwards (no STP by default, but ports need a moment)
    local n
    for n in $(seq 1 50); do
        if in_d1 ping -c1 -W1 "$WW_SRV_IP" >/dev/null 2>&1 &&
            in_d2 ping -c1 -W1 "$WW_SRV_IP" >/dev/null 2>&1 &&
            in_d3 ping -c1 -W1 "$WW_SRV_IP" >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.2
    done
    log "namespace network did not come up"
    return 1
}

# Start tcpdump on the bridge (or on IFACE of the server's namespace); sets
# WW_CAP_PID. Usage: cap_start file.pcap [IFACE]
cap_start() {
    WW_CAP_FILE=$1
    rm -f "$WW_CAP_FILE" "$WW_CAP_FILE.log"
    # called directly (not through a shell function) so $! is tcpdump itself
    ip netns exec "$WW_NS_SRV" tcpdump -i "${2:-wwbr0}" --immediate-mode -U -s 0 -Z root -w "$WW_CAP_FILE" tcp 2>"$WW_CAP_FILE.log" &
    WW_CAP_PID=$!
    local n
    for n in $(seq 1 50); do
        grep -q 'listening on' "$WW_CAP_FILE.log" 2>/dev/null && break
        sleep 0.1
    done
    sleep 0.5
}

cap_stop() {
    sleep 1
    kill -INT "$WW_CAP_PID" 2>/dev/null || true
    wait "$WW_CAP_PID" 2>/dev/null || true
    grep -E 'packets (captured|dropped)' "$WW_CAP_FILE.log" >&2 || true
}

# Wait until a TCP port listens inside the server namespace.
wait_port() { # port
    local n
    for n in $(seq 1 100); do
        in_srv ss -ltnH "sport = :$1" | grep -q . && return 0
        sleep 0.1
    done
    log "port $1 never opened"
    return 1
}

# Start a background server in the server namespace; sets WW_SRV_PID.
srv_start() { # port logfile cmd...
    local port=$1 logf=$2
    shift 2
    ip netns exec "$WW_NS_SRV" "$@" >"$logf" 2>&1 &
    WW_SRV_PID=$!
    wait_port "$port"
}

srv_stop() {
    [ -n "${WW_SRV_PID:-}" ] || return 0
    kill -TERM "$WW_SRV_PID" 2>/dev/null || true
    wait "$WW_SRV_PID" 2>/dev/null || true
    WW_SRV_PID=
}

# Rewrite addresses into the output pcap. Usage: rewrite raw out MAP...
# MAP is old_ip=new_ip[,mac=..][,ttl=-N] (see lib/rewrite.py).
rewrite() {
    local raw=$1 out=$2
    shift 2
    python3 "$WW_LIB/rewrite.py" "$raw" "$out" "$@"
}
