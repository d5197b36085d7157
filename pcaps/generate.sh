#!/bin/bash
# Regenerate the whole capture corpus in pcaps/ (run as root on Debian 12).
#
#   sudo pcaps/generate.sh            # everything
#   sudo pcaps/gen_app.sh mqtt_tls    # one application capture
#
# 1. installs what is missing (apt-get / pip),
# 2. runs gen_app.sh (MQTT, DICOM, HL7 captures between network namespaces),
# 3. runs gen_link.sh if present (link-layer / encapsulation captures) and
#    gen_offload.sh (a capture with checksum offload),
# 4. runs gen_evasion.sh (adversarial captures in evasion/, after gen_link.sh:
#    the fragment flood wraps frag_ipv4_udp.pcap),
# 5. prints a table of the files with packet counts (capinfos -c).
# No traffic leaves the namespaces the scripts create; public addresses in
# the captures are rewritten bytes only.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)

if [ "$(id -u)" -ne 0 ]; then
    echo "generate.sh: must run as root (network namespaces, tcpdump)" >&2
    exit 1
fi

need_apt=()
for pair in tcpdump:tcpdump tshark:tshark capinfos:wireshark-common editcap:wireshark-common \
    mosquitto:mosquitto mosquitto_pub:mosquitto-clients ethtool:ethtool openssl:openssl \
    ip:iproute2 ss:iproute2 ping:iputils-ping python3:python3 pip3:python3-pip; do
    cmd=${pair%%:*} pkg=${pair#*:}
    command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || need_apt+=("$pkg")
done
for tool in storescu storescp echoscu findscu dcmdump; do
    [ -x "/usr/bin/$tool" ] || need_apt+=(dcmtk)
done
if [ ${#need_apt[@]} -gt 0 ]; then
    mapfile -t need_apt < <(printf '%s\n' "${need_apt[@]}" | sort -u)
    echo "installing: ${need_apt[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends "${need_apt[@]}"
fi
# mosquitto must not be running as a system service on 1883 in our way; our
# brokers live in their own namespaces, so a host service does not matter.

if ! python3 -c 'import paho.mqtt, pynetdicom, pydicom, scapy, pynmea2; assert int(paho.mqtt.__version__.split(".")[0]) >= 2' 2>/dev/null; then
    pkgs=("paho-mqtt>=2,<3" "pynetdicom>=2.1" "pydicom>=3" "scapy>=2.5" "pynmea2>=1.19")
    python3 -m pip install "${pkgs[@]}" || python3 -m pip install --break-system-packages "${pkgs[@]}"
fi

"$HERE/gen_app.sh"
if [ -x "$HERE/gen_link.sh" ]; then
    "$HERE/gen_link.sh"
elif [ -f "$HERE/gen_link.sh" ]; then
    bash "$HERE/gen_link.sh"
fi
# The capture taken on a sending host with checksum offload (README-link.md).
bash "$HERE/gen_offload.sh"
"$HERE/gen_evasion.sh"

# The capture `wardwatch --demo` embeds: real exchanges from the files above,
# merged in time order (mergecap), one of each kind a SOC should see.
mergecap -F pcap -w "$HERE/demo.pcap" \
    "$HERE/mqtt_v311_anon_phi.pcap" "$HERE/mqtt_v31_default_creds.pcap" "$HERE/mqtt_tls.pcap" \
    "$HERE/mqtt_foreign_broker.pcap" "$HERE/dicom_echo.pcap" "$HERE/dicom_store_phi.pcap" \
    "$HERE/dicom_userid.pcap" "$HERE/cms8000_exfil.pcap"

printf '\n%-40s %10s %10s\n' file packets bytes
total=0
for f in "$HERE"/*.pcap "$HERE"/*.pcapng; do
    [ -e "$f" ] || continue
    n=$(capinfos -c -M -T "$f" 2>/dev/null | awk -F'\t' 'NR==2 {print $2}')
    b=$(stat -c %s "$f")
    total=$((total + b))
    printf '%-40s %10s %10s\n' "$(basename "$f")" "$n" "$b"
done
printf '%-40s %10s %10s\n' total "" "$total"
