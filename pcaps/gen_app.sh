#!/bin/bash
# Regenerate the application-layer captures (MQTT, DICOM, HL7 exfiltration)
# from real implementations (mosquitto, paho-mqtt, dcmtk, pynetdicom) talking
# over real kernel TCP between network namespaces, captured with tcpdump and
# then re-addressed by lib/rewrite.py. See README.md for each file.
#
# Usage (as root): pcaps/gen_app.sh [scenario ...]   (default: all)
# Scenario names are the capture names without .pcap.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
WW_LIB=$HERE/lib
# shellcheck source=lib/common.sh
. "$WW_LIB/common.sh"
OUT=${WW_OUT:-$HERE}
WORK=$(mktemp -d /tmp/ww_app.XXXXXX)
chmod 755 "$WORK"
SRV=$WW_SRV_IP
PY="python3 $WW_LIB/mqtt_clients.py"

cleanup() {
    srv_stop || true
    [ -n "${WW_CAP_PID:-}" ] && kill -INT "$WW_CAP_PID" 2>/dev/null || true
    ww_net_down
    if [ -n "${WW_KEEP:-}" ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT INT TERM

# ---------------------------------------------------------------- host plan
# Namespace address -> hospital address and MAC. OUIs are plausible vendor
# prefixes; the low 3 bytes are fixed per host.
GW_MAC=00:1b:54:0a:00:01            # hospital edge router (seen for remote peers)
M_MONITOR="10.20.1.15,mac=00:09:fb:1e:01:0f"   # bedside monitor, ward 3 bed 12
M_NURSE="10.20.8.30,mac=00:14:22:08:00:1e"     # nurse station PC
M_DASH="10.20.8.31,mac=00:14:22:08:00:1f"      # ward dashboard PC
M_PUMP="10.20.2.40,mac=00:0e:8c:02:00:28"      # infusion pump
M_MODALITY="10.20.3.7,mac=00:0e:8c:03:00:07"   # CT modality
M_MR="10.20.3.8,mac=00:0e:8c:03:00:08"         # MR modality
M_VIEWER="10.20.4.21,mac=00:14:22:04:00:15"    # radiology workstation
M_BROKER="10.10.5.10,mac=00:50:56:05:00:0a"    # MQTT broker
M_HL7GW="10.10.5.11,mac=00:50:56:05:00:0b"     # integration engine (MQTT client)
M_PACS="10.10.7.20,mac=00:50:56:07:00:14"      # PACS
M_EHR="10.10.6.30,mac=00:50:56:06:00:1e"       # EHR bridge
M_HUB="10.20.1.60,mac=00:09:fb:1e:01:3c"        # bedside hub, ward 3 (installed on site)
# Remote-monitoring SIMs: the hospital's private mobile network (APN),
# routed in through the edge router, 4 hops away.
M_WEARABLE="10.40.0.21,mac=$GW_MAC,ttl=-4"     # patient wearable WEAR-0007
M_TRACKER="10.40.0.22,mac=$GW_MAC,ttl=-4"      # patient GPS tracker TRK-0031
# Public hosts: seen through the edge router, 13 hops away.
M_CMS8000_C2="202.114.4.120,mac=$GW_MAC,ttl=-13"  # CISA ICSMA-25-030-01 address (CN)
M_KP_BROKER="175.45.178.20,mac=$GW_MAC,ttl=-17"   # 175.45.176.0/22, APNIC, KP
M_FR_BROKER="90.63.221.20,mac=$GW_MAC,ttl=-6"     # 90.0.0.0/9, RIPE NCC, FR (Orange)
M_FR_CLOUD="90.63.221.30,mac=$GW_MAC,ttl=-6"      # the same network: a telemonitoring service (FR)
M_SCANNER="162.142.125.221,mac=$GW_MAC,ttl=-18"   # Censys scanning range 162.142.125.0/24 (US)

# rw NAME SRV_MAP D1_MAP [D2_MAP [D3_MAP]]: rewrite $WORK/NAME.raw into OUT.
rw() {
    local name=$1 maps=("$WW_SRV_IP=$2" "$WW_D1_IP=$3")
    [ $# -ge 4 ] && maps+=("$WW_D2_IP=$4")
    [ $# -ge 5 ] && maps+=("$WW_D3_IP=$5")
    rewrite "$WORK/$name.raw" "$OUT/$name.pcap" "${maps[@]}"
}

mosq_conf() { # file listener-lines...
    local f=$1
    shift
    {
        echo "user root"
        echo "persistence false"
        echo "log_dest stderr"
        echo "log_type all"
        printf '%s\n' "$@"
    } >"$f"
}

mosq_passwd() { # file user pass [user pass ...]
    local f=$1
    shift
    rm -f "$f"
    touch "$f"
    while [ $# -ge 2 ]; do
        mosquitto_passwd -b "$f" "$1" "$2"
        shift 2
    done
}

phi() { $PY phijson "$@"; }

# ================================================================= MQTT
scn_mqtt_v311_anon_phi() {
    local n=mqtt_v311_anon_phi c=$WORK/m.conf
    mosq_conf "$c" "listener 1883 0.0.0.0" "allow_anonymous true"
    srv_start 1883 "$WORK/$n.broker.log" mosquitto -c "$c"
    cap_start "$WORK/$n.raw"
    ip netns exec ww_app_d2 $PY sub311 $SRV 1883 10 &
    local sub=$!
    sleep 1
    local q
    for q in 0 1 2; do
        in_d1 mosquitto_pub -V mqttv311 -h $SRV -i MON-W3-BED12 -k 5 -q $q \
            -t ward3/bed12/patient -m "$(phi jane $((70 + q)) 98 $q)"
    done
    in_d1 mosquitto_pub -V mqttv311 -h $SRV -i MON-W3-BED12 -k 5 -q 1 -r \
        -t ward3/bed12/patient -m "$(phi jane 74 97 3)"
    in_d1 $PY pub311 $SRV 1883
    in_d3 mosquitto_sub -V mqttv311 -h $SRV -i DASH-W3 -k 5 -q 1 -t 'ward3/+/patient' -C 1 -W 5 -v >/dev/null
    wait $sub
    cap_stop
    srv_stop
    rw $n "$M_BROKER" "$M_MONITOR" "$M_NURSE" "$M_DASH"
}

scn_mqtt_v31_default_creds() {
    local n=mqtt_v31_default_creds c=$WORK/m.conf
    mosq_passwd "$WORK/pw" admin admin guest guest
    mosq_conf "$c" "listener 1883 0.0.0.0" "allow_anonymous false" "password_file $WORK/pw"
    srv_start 1883 "$WORK/$n.broker.log" mosquitto -c "$c"
    cap_start "$WORK/$n.raw"
    in_d1 $PY v31 $SRV 1883
    in_d2 mosquitto_pub -V mqttv31 -h $SRV -i PUMP-GW-02 -u guest -P guest -q 1 \
        -t hl7/ward2/adt -m "$(python3 -c "import sys; sys.path.insert(0,'$WW_LIB'); import mqtt_clients as m, fakeids; sys.stdout.write(m.hl7_for(fakeids.JANE).replace('ORU^R01','ADT^A01').replace('MSG-TEST-0001','MSG-TEST-0002'))")"
    cap_stop
    srv_stop
    rw $n "$M_BROKER" "$M_HL7GW" "$M_PUMP"
}

scn_mqtt_v5_props() {
    local n=mqtt_v5_props c=$WORK/m.conf
    mosq_passwd "$WORK/pw" icu-gw-07 Xq7vR2mLp9tZ4wK8sJ3nB6cH1fD5gY0e \
        ehr-bridge e0Yg5Df1Hc6Bn3Js8Kw4Zt9pLm2Rv7qX \
        mon-w3-12 Vb8nM3qT6wZ1xK4rP9sL2dF7hJ5gC0aE
    cat >"$WORK/acl" <<'EOF'
user icu-gw-07
topic readwrite fhir/#
topic readwrite ward3/#
user ehr-bridge
topic read fhir/#
topic read ward3/#
user mon-w3-12
topic readwrite ward3/#
topic readwrite fhir/#
EOF
    mosq_conf "$c" "listener 1883 0.0.0.0" "allow_anonymous false" "password_file $WORK/pw" \
        "acl_file $WORK/acl" "max_topic_alias 10"
    srv_start 1883 "$WORK/$n.broker.log" mosquitto -c "$c"
    cap_start "$WORK/$n.raw"
    in_d2 $PY v5sub $SRV 1883 6 &
    local sub=$!
    sleep 1
    in_d1 $PY v5pub $SRV 1883
    in_d3 mosquitto_pub -V mqttv5 -h $SRV -i mon-w3-12 -u mon-w3-12 -P Vb8nM3qT6wZ1xK4rP9sL2dF7hJ5gC0aE \
        -q 2 -t fhir/ward3/observation \
        -D connect session-expiry-interval 120 \
        -D connect user-property site CHU-EXEMPLE \
        -D publish content-type application/fhir+json \
        -D publish message-expiry-interval 60 \
        -D publish response-topic fhir/ward3/ack/mon-w3-12 \
        -D publish correlation-data obs-0001 \
        -D publish user-property unit W3 \
        -D publish payload-format-indicator 1 \
        -m '{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"subject":{"reference":"Patient/test-mrn-test-0001"},"valueQuantity":{"value":72,"unit":"/min"}}'
    wait $sub
    cap_stop
    srv_stop
    rw $n "$M_BROKER" "$M_HL7GW" "$M_EHR" "$M_MONITOR"
}

scn_mqtt_refused() {
    local n=mqtt_refused c=$WORK/m.conf
    mosq_passwd "$WORK/pw" pump Pump-Str0ng-Passw0rd-2025
    mosq_conf "$c" "listener 1883 0.0.0.0" "allow_anonymous false" "password_file $WORK/pw"
    srv_start 1883 "$WORK/$n.broker.log" mosquitto -c "$c"
    cap_start "$WORK/$n.raw"
    in_d1 mosquitto_pub -V mqttv311 -h $SRV -i anon-monitor-01 -t ward3/bed12/vitals -m '{"hr":70}' || true
    in_d1 mosquitto_pub -V mqttv5 -h $SRV -i anon-monitor-02 -t ward3/bed12/vitals -m '{"hr":71}' || true
    in_d1 mosquitto_pub -V mqttv31 -h $SRV -i anon-monitor-03 -t ward3/bed12/vitals -m '{"hr":72}' || true
    in_d2 $PY badlogin $SRV 1883 || true
    in_d2 mosquitto_pub -V mqttv5 -h $SRV -i infusion-pump-19 -u pump -P pump -t ward2/pump/19 -m x || true
    cap_stop
    srv_stop
    rw $n "$M_BROKER" "$M_MONITOR" "$M_PUMP"
}

scn_mqtt_telemetry_nophi() {
    local n=mqtt_telemetry_nophi c=$WORK/m.conf
    mosq_passwd "$WORK/pw" mon-0042 Tq4Lm8Zr2Wx6Np1K mon-0043 Hs7Jd3Fv9Bc5Gy2R central Ck1Vn6Xs4Qa8Me3W
    mosq_conf "$c" "listener 1883 0.0.0.0" "allow_anonymous false" "password_file $WORK/pw"
    srv_start 1883 "$WORK/$n.broker.log" mosquitto -c "$c"
    cap_start "$WORK/$n.raw"
    in_d3 mosquitto_sub -V mqttv311 -h $SRV -i central-station-1 -u central -P Ck1Vn6Xs4Qa8Me3W \
        -t 'telemetry/ward3/+/vitals' -C 300 -W 30 >/dev/null &
    local sub=$!
    sleep 1
    in_d1 $PY telemetry $SRV 1883 MON-0042 mon-0042 Tq4Lm8Zr2Wx6Np1K 150 0.02 &
    local a=$!
    in_d2 $PY telemetry $SRV 1883 MON-0043 mon-0043 Hs7Jd3Fv9Bc5Gy2R 150 0.02
    wait $a
    wait $sub || true
    cap_stop
    srv_stop
    rw $n "$M_BROKER" "$M_MONITOR" "10.20.1.16,mac=00:09:fb:1e:01:10" "$M_NURSE"
}

scn_mqtt_tls() {
    local n=mqtt_tls c=$WORK/m.conf t=$WORK/tls
    mkdir -p "$t"
    make_tls "$t" mqtt.hopital.example
    mosq_passwd "$WORK/pw" mon-w3-12 Vb8nM3qT6wZ1xK4rP9sL2dF7hJ5gC0aE
    mosq_conf "$c" "listener 8883 0.0.0.0" "allow_anonymous false" "password_file $WORK/pw" \
        "cafile $t/ca.crt" "certfile $t/server.crt" "keyfile $t/server.key"
    srv_start 8883 "$WORK/$n.broker.log" mosquitto -c "$c"
    cap_start "$WORK/$n.raw"
    in_d2 mosquitto_sub -V mqttv311 -h mqtt.hopital.example -p 8883 --cafile "$t/ca.crt" -i NURSE-STN-W3 \
        -u mon-w3-12 -P Vb8nM3qT6wZ1xK4rP9sL2dF7hJ5gC0aE -t 'ward3/#' -C 2 -W 10 >/dev/null &
    local sub=$!
    sleep 1
    in_d1 mosquitto_pub -V mqttv311 -h mqtt.hopital.example -p 8883 --cafile "$t/ca.crt" -i MON-W3-BED12 \
        -u mon-w3-12 -P Vb8nM3qT6wZ1xK4rP9sL2dF7hJ5gC0aE -q 1 -t ward3/bed12/patient -m "$(phi jane 77 96 1)"
    in_d1 mosquitto_pub -V mqttv5 -h mqtt.hopital.example -p 8883 --cafile "$t/ca.crt" -i MON-W3-BED12 \
        -u mon-w3-12 -P Vb8nM3qT6wZ1xK4rP9sL2dF7hJ5gC0aE -q 1 -t ward3/bed12/patient -m "$(phi jane 78 96 2)"
    wait $sub || true
    cap_stop
    srv_stop
    rw $n "$M_BROKER" "$M_MONITOR" "$M_NURSE"
}

scn_mqtt_nonstd_port() {
    local n=mqtt_nonstd_port c=$WORK/m.conf
    mosq_passwd "$WORK/pw" mon-w3-12 Vb8nM3qT6wZ1xK4rP9sL2dF7hJ5gC0aE
    mosq_conf "$c" "listener 8080 0.0.0.0" "allow_anonymous false" "password_file $WORK/pw"
    srv_start 8080 "$WORK/$n.broker.log" mosquitto -c "$c"
    cap_start "$WORK/$n.raw"
    in_d2 mosquitto_sub -V mqttv311 -h $SRV -p 8080 -i NURSE-STN-W3 \
        -u mon-w3-12 -P Vb8nM3qT6wZ1xK4rP9sL2dF7hJ5gC0aE -t 'ward3/#' -C 2 -W 10 >/dev/null &
    local sub=$!
    sleep 1
    in_d1 mosquitto_pub -V mqttv311 -h $SRV -p 8080 -i MON-W3-BED12 \
        -u mon-w3-12 -P Vb8nM3qT6wZ1xK4rP9sL2dF7hJ5gC0aE -q 1 -t ward3/bed12/patient -m "$(phi jane 75 97 1)"
    in_d1 mosquitto_pub -V mqttv311 -h $SRV -p 8080 -i MON-W3-BED12 \
        -u mon-w3-12 -P Vb8nM3qT6wZ1xK4rP9sL2dF7hJ5gC0aE -q 0 -t ward3/bed12/patient -m "$(phi john 64 99 2)"
    wait $sub || true
    cap_stop
    srv_stop
    rw $n "$M_BROKER" "$M_MONITOR" "$M_NURSE"
}

scn_mqtt_large_split() {
    local n=mqtt_large_split c=$WORK/m.conf
    mosq_passwd "$WORK/pw" ecg-cart k3P9wQ2zR7vM5xN1 hub Rz5Kp2Wm8Qx4Lt7N central Ck1Vn6Xs4Qa8Me3W
    mosq_conf "$c" "listener 1883 0.0.0.0" "allow_anonymous false" "password_file $WORK/pw"
    srv_start 1883 "$WORK/$n.broker.log" mosquitto -c "$c"
    python3 -c '
for i in range(400):
    print("{\"hr\":%d,\"spo2\":%d,\"seq\":%d,\"device\":\"HUB-W3\"}" % (60 + i % 30, 94 + i % 5, i))
' >"$WORK/burst.txt"
    cap_start "$WORK/$n.raw"
    in_d3 mosquitto_sub -V mqttv311 -h $SRV -i central-station-1 -u central -P Ck1Vn6Xs4Qa8Me3W \
        -t 'ward3/#' -C 401 -W 30 >/dev/null &
    local sub=$!
    sleep 1
    in_d1 $PY bigpub $SRV 1883
    # 400 small messages written back to back: Nagle packs many per segment
    in_d2 mosquitto_pub -V mqttv311 -h $SRV -i vitals-hub-w3 -u hub -P Rz5Kp2Wm8Qx4Lt7N -q 0 \
        -t ward3/hub/vitals -l <"$WORK/burst.txt"
    wait $sub || true
    cap_stop
    srv_stop
    rw $n "$M_BROKER" "10.20.1.50,mac=00:09:fb:1e:01:32" "10.20.1.51,mac=00:09:fb:1e:01:33" "$M_NURSE"
}

# Patient location (pcaps/README.md, "Patient location"): positions in
# public places in Paris; lib/mqtt_clients.py holds the paths.
scn_mqtt_wearable_gps() {
    local n=mqtt_wearable_gps c=$WORK/m.conf
    mosq_passwd "$WORK/pw" wear-0007 Mz4Qh8Tn2Rw6Kp1X trk-0031 Lc7Wv3Nd9Gx5Hb2Q central Ck1Vn6Xs4Qa8Me3W
    mosq_conf "$c" "listener 1883 0.0.0.0" "allow_anonymous false" "password_file $WORK/pw"
    srv_start 1883 "$WORK/$n.broker.log" mosquitto -c "$c"
    cap_start "$WORK/$n.raw"
    in_d3 mosquitto_sub -V mqttv311 -h $SRV -i central-station-1 -u central -P Ck1Vn6Xs4Qa8Me3W \
        -q 1 -t 'rpm/#' -C 31 -W 30 >/dev/null &
    local sub=$!
    sleep 1
    in_d1 $PY wearable $SRV 1883
    in_d2 $PY tracker $SRV 1883
    wait $sub || true
    cap_stop
    srv_stop
    rw $n "$M_BROKER" "$M_WEARABLE" "$M_TRACKER" "$M_NURSE"
}

scn_mqtt_site_hub() {
    local n=mqtt_site_hub c=$WORK/m.conf
    mosq_passwd "$WORK/pw" hub-w3-12 Pf6Jx2Kq9Bz4Wm7T central Ck1Vn6Xs4Qa8Me3W
    mosq_conf "$c" "listener 1883 0.0.0.0" "allow_anonymous false" "password_file $WORK/pw"
    srv_start 1883 "$WORK/$n.broker.log" mosquitto -c "$c"
    cap_start "$WORK/$n.raw"
    in_d2 mosquitto_sub -V mqttv311 -h $SRV -i central-station-1 -u central -P Ck1Vn6Xs4Qa8Me3W \
        -t 'ward3/hub-w3-12/#' -C 21 -W 30 >/dev/null &
    local sub=$!
    sleep 1
    in_d1 $PY hub $SRV 1883
    wait $sub || true
    cap_stop
    srv_stop
    rw $n "$M_BROKER" "$M_HUB" "$M_NURSE"
}

# ================================================================= DICOM
DP="python3 $WW_LIB/dicom_peers.py"
dcm_files() { [ -f "$WORK/dcm/ct_jane.dcm" ] || { mkdir -p "$WORK/dcm" && python3 "$WW_LIB/make_dicom.py" "$WORK/dcm"; }; }

scn_dicom_echo() {
    local n=dicom_echo
    mkdir -p "$WORK/in"
    srv_start 11112 "$WORK/$n.scp.log" /usr/bin/storescp -aet STORESCP -od "$WORK/in" 11112
    cap_start "$WORK/$n.raw"
    in_d1 /usr/bin/echoscu -aet ECHOSCU -aec STORESCP $SRV 11112
    cap_stop
    srv_stop
    rw $n "$M_PACS" "$M_VIEWER"
}

scn_dicom_store_phi() {
    local n=dicom_store_phi
    dcm_files
    mkdir -p "$WORK/in"
    srv_start 104 "$WORK/$n.scp.log" /usr/bin/storescp -aet PACS +xe -od "$WORK/in" 104
    cap_start "$WORK/$n.raw"
    in_d1 /usr/bin/storescu -aet MODALITY1 -aec PACS -xe $SRV 104 "$WORK/dcm/ct_jane.dcm"
    in_d2 $DP store_implicit $SRV 104 "$WORK/dcm/mr_john.dcm"
    cap_stop
    srv_stop
    rw $n "$M_PACS" "$M_MODALITY" "$M_MR"
}

scn_dicom_store_large() {
    local n=dicom_store_large
    dcm_files
    mkdir -p "$WORK/in"
    srv_start 104 "$WORK/$n.scp.log" /usr/bin/storescp -aet PACS --max-pdu 16384 -od "$WORK/in" 104
    cap_start "$WORK/$n.raw"
    in_d1 /usr/bin/storescu -aet MODALITY1 -aec PACS --max-pdu 16384 --max-send-pdu 16384 \
        $SRV 104 "$WORK/dcm/ct_large.dcm"
    cap_stop
    srv_stop
    rw $n "$M_PACS" "$M_MODALITY"
}

scn_dicom_find() {
    local n=dicom_find
    srv_start 104 "$WORK/$n.scp.log" $DP find_scp 104
    cap_start "$WORK/$n.raw"
    in_d1 /usr/bin/findscu -P -aet VIEWER01 -aec PACS $SRV 104 \
        -k QueryRetrieveLevel=PATIENT -k 'PatientName=*' -k PatientID -k PatientBirthDate -k PatientSex 2>"$WORK/$n.find1.log"
    in_d1 /usr/bin/findscu -S -aet VIEWER01 -aec PACS $SRV 104 \
        -k QueryRetrieveLevel=STUDY -k PatientName -k PatientID=MRN-TEST-0001 -k StudyDate=19990101-20251231 \
        -k StudyInstanceUID -k AccessionNumber -k StudyDescription -k ModalitiesInStudy 2>"$WORK/$n.find2.log"
    cap_stop
    srv_stop
    rw $n "$M_PACS" "$M_VIEWER"
}

scn_dicom_userid() {
    local n=dicom_userid
    srv_start 104 "$WORK/$n.scp.log" $DP userid_scp 104
    cap_start "$WORK/$n.raw"
    in_d1 $DP userid_scu $SRV 104
    cap_stop
    srv_stop
    rw $n "$M_PACS" "$M_VIEWER"
}

scn_dicom_rejected() {
    local n=dicom_rejected
    srv_start 104 "$WORK/$n.scp.log" $DP strict_scp 104
    cap_start "$WORK/$n.raw"
    # unknown called AE -> A-ASSOCIATE-RJ (called AE title not recognised)
    in_d1 /usr/bin/echoscu -aet MODALITY1 -aec ANY-SCP $SRV 104 || true
    # unknown calling AE -> A-ASSOCIATE-RJ (calling AE title not recognised)
    in_d2 /usr/bin/echoscu -aet ECHOSCU -aec PACS $SRV 104 || true
    # accepted, C-ECHO, then A-ABORT instead of A-RELEASE
    in_d1 $DP abort_scu $SRV 104
    cap_stop
    srv_stop
    rw $n "$M_PACS" "$M_MODALITY" "10.20.9.66,mac=00:1e:4f:09:00:42"
}

scn_dicom_nonstd_port() {
    local n=dicom_nonstd_port
    mkdir -p "$WORK/in"
    srv_start 4242 "$WORK/$n.scp.log" /usr/bin/storescp -aet ORTHANC -od "$WORK/in" 4242
    cap_start "$WORK/$n.raw"
    in_d1 /usr/bin/echoscu -aet RADWS01 -aec ORTHANC $SRV 4242
    cap_stop
    srv_stop
    rw $n "$M_PACS" "$M_VIEWER"
}

scn_dicom_tls() {
    local n=dicom_tls t=$WORK/tls
    mkdir -p "$t" "$WORK/in"
    make_tls "$t" pacs.hopital.example
    srv_start 2762 "$WORK/$n.scp.log" /usr/bin/storescp -aet PACS +tls "$t/server.key" "$t/server.crt" \
        +cf "$t/ca.crt" -od "$WORK/in" 2762
    cap_start "$WORK/$n.raw"
    in_d1 /usr/bin/echoscu -aet MODALITY1 -aec PACS +tls "$t/client.key" "$t/client.crt" +cf "$t/ca.crt" \
        pacs.hopital.example 2762
    cap_stop
    srv_stop
    rw $n "$M_PACS" "$M_MODALITY"
}

# ================================================================= TLS handshakes
# OpenSSL 3 s_server / s_client: what the TLS parser reads (SNI, ALPN,
# versions, the TLS 1.2 certificate) from a real implementation. The server
# (the EHR's FHIR endpoint on 443) sends its chain (server + CA) in records
# of at most 512 bytes (-max_send_frag), so its Certificate message spans
# several records. Clients: TLS 1.2 with SNI and ALPN h2,http/1.1; TLS 1.3
# with SNI and ALPN; TLS 1.2 without SNI; TLS 1.2 saving its session, then
# resuming it (abbreviated handshake, no Certificate).
scn_tls_openssl() {
    local n=tls_openssl t=$WORK/tls c
    mkdir -p "$t"
    make_tls "$t" fhir.hopital.example
    srv_start 443 "$WORK/$n.srv.log" openssl s_server -accept 443 -www -cert "$t/server.crt" \
        -key "$t/server.key" -cert_chain "$t/ca.crt" -alpn h2,http/1.1 -max_send_frag 512
    cap_start "$WORK/$n.raw"
    c="openssl s_client -connect $SRV:443 -CAfile $t/ca.crt -ign_eof -quiet"
    printf 'GET / HTTP/1.0\r\n\r\n' | in_d1 $c -tls1_2 -servername fhir.hopital.example \
        -alpn h2,http/1.1 >/dev/null 2>&1 || true
    printf 'GET / HTTP/1.0\r\n\r\n' | in_d2 $c -tls1_3 -servername fhir.hopital.example \
        -alpn http/1.1 >/dev/null 2>&1 || true
    printf 'GET / HTTP/1.0\r\n\r\n' | in_d1 $c -tls1_2 -noservername >/dev/null 2>&1 || true
    printf 'GET / HTTP/1.0\r\n\r\n' | in_d2 $c -tls1_2 -servername fhir.hopital.example \
        -sess_out "$t/sess" >/dev/null 2>&1 || true
    printf 'GET / HTTP/1.0\r\n\r\n' | in_d2 $c -tls1_2 -servername fhir.hopital.example \
        -sess_in "$t/sess" >/dev/null 2>&1 || true
    cap_stop
    srv_stop
    rw $n "$M_EHR" "$M_VIEWER" "$M_NURSE"
}

# ================================================================= geography / known-bad
scn_cms8000_exfil() {
    local n=cms8000_exfil
    srv_start 515 "$WORK/$n.srv.log" python3 "$WW_LIB/hl7_mllp.py" server 515
    cap_start "$WORK/$n.raw"
    in_d1 python3 "$WW_LIB/hl7_mllp.py" client $SRV 515 3
    cap_stop
    srv_stop
    rw $n "$M_CMS8000_C2" "$M_MONITOR"
}

geo_broker() { # name broker-map
    local n=$1 c=$WORK/m.conf
    mosq_passwd "$WORK/pw" mon-0042 Tq4Lm8Zr2Wx6Np1K
    mosq_conf "$c" "listener 1883 0.0.0.0" "allow_anonymous false" "password_file $WORK/pw"
    srv_start 1883 "$WORK/$n.broker.log" mosquitto -c "$c"
    cap_start "$WORK/$n.raw"
    in_d1 $PY telemetry $SRV 1883 MON-0042 mon-0042 Tq4Lm8Zr2Wx6Np1K 20 0.1
    cap_stop
    srv_stop
    rw $n "$2" "$M_MONITOR"
}
scn_mqtt_foreign_broker() { geo_broker mqtt_foreign_broker "$M_KP_BROKER"; }

# The PACS reached from the internet: the committed dicom_echo.pcap (a real
# echoscu -> storescp C-ECHO) with its client moved to an internet scanner
# behind the edge router. Needs dicom_echo.pcap (run that scenario first;
# the default order does).
scn_dicom_internet_echo() {
    rewrite "$OUT/dicom_echo.pcap" "$OUT/dicom_internet_echo.pcap" \
        "10.10.7.20=10.10.7.20" "10.20.4.21=$M_SCANNER"
}
scn_mqtt_incountry() { geo_broker mqtt_incountry "$M_FR_BROKER"; }

# The broker reached from the internet: the committed mqtt_refused.pcap (real
# mosquitto refusing anonymous and bad logins) with its anonymous client, the
# monitor 10.20.1.15, moved to the same internet scanner. Needs
# mqtt_refused.pcap (the default order makes it first).
scn_mqtt_internet_refused() {
    rewrite "$OUT/mqtt_refused.pcap" "$OUT/mqtt_internet_refused.pcap" \
        "10.10.5.10=10.10.5.10" "10.20.2.40=10.20.2.40" "10.20.1.15=$M_SCANNER"
}

# ----------------------------------------------------------------- TLS material
make_tls() { # dir server-name
    local d=$1 cn=$2
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/O=CHU Exemple/CN=CHU Exemple Test CA" \
        -keyout "$d/ca.key" -out "$d/ca.crt" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/O=CHU Exemple/CN=$cn" \
        -keyout "$d/server.key" -out "$d/server.csr" 2>/dev/null
    printf 'subjectAltName=DNS:%s,IP:%s\nextendedKeyUsage=serverAuth,clientAuth\n' "$cn" "$WW_SRV_IP" >"$d/ext"
    openssl x509 -req -in "$d/server.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
        -days 3650 -extfile "$d/ext" -out "$d/server.crt" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/O=CHU Exemple/CN=modality-ct1" \
        -keyout "$d/client.key" -out "$d/client.csr" 2>/dev/null
    openssl x509 -req -in "$d/client.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
        -days 3650 -out "$d/client.crt" 2>/dev/null
}

# ----------------------------------------------------------------- driver
# ================================================================= HL7 v2
# python-hl7 (PyPI `hl7`) peers: its MLLP listener answering with
# Message.create_ack, its MLLP client, its `mllp_send` command line tool, and
# plain sockets for unframed HL7 (lib/hl7_peers.py).
HL7="python3 $WW_LIB/hl7_peers.py"

scn_hl7_mllp() {
    local n=hl7_mllp
    srv_start 2575 "$WORK/$n.srv.log" $HL7 server 2575 2
    cap_start "$WORK/$n.raw"
    in_d1 $HL7 adt $SRV 2575
    in_d2 $HL7 burst $SRV 2575
    cap_stop
    srv_stop
    rw $n "$M_HL7GW" "$M_EHR" "$M_MONITOR"
}

scn_hl7_nonstd_port() {
    local n=hl7_nonstd_port f=$WORK/adt.mllp   # one MLLP-framed message, as mllp_send reads it
    python3 -c "import sys; sys.path.insert(0, '$WW_LIB'); import hl7_peers as h, fakeids; sys.stdout.buffer.write(h.frame(h.adt('A01', fakeids.JOHN, 'ADT-TEST-0600')))" >"$f"
    srv_start 6661 "$WORK/$n.srv.log" $HL7 server 6661 1
    cap_start "$WORK/$n.raw"
    in_d1 mllp_send --port 6661 --file "$f" $SRV
    cap_stop
    srv_stop
    rw $n "$M_HL7GW" "$M_VIEWER"
}

scn_hl7_bare_515() {
    local n=hl7_bare_515
    srv_start 515 "$WORK/$n.srv.log" $HL7 bare-server 515
    cap_start "$WORK/$n.raw"
    in_d1 $HL7 bare $SRV 515 3
    cap_stop
    srv_stop
    rw $n "$M_CMS8000_C2" "$M_MONITOR"
}

scn_hl7_variants() {
    local n=hl7_variants
    srv_start 2575 "$WORK/$n.srv.log" $HL7 server 2575 2
    cap_start "$WORK/$n.raw"
    in_d1 $HL7 variants $SRV 2575
    in_d2 $HL7 split $SRV 2575
    cap_stop
    srv_stop
    rw $n "$M_HL7GW" "$M_EHR" "$M_MONITOR"
}

ALL_MQTT="mqtt_v311_anon_phi mqtt_v31_default_creds mqtt_v5_props mqtt_refused mqtt_telemetry_nophi
mqtt_tls mqtt_nonstd_port mqtt_large_split mqtt_wearable_gps mqtt_site_hub"
ALL_DICOM="dicom_echo dicom_store_phi dicom_store_large dicom_find dicom_userid dicom_rejected
dicom_nonstd_port dicom_tls"
ALL_GEO="cms8000_exfil mqtt_foreign_broker mqtt_incountry dicom_internet_echo
mqtt_internet_refused"
# FHIR Patients posted over plain HTTP to a French telemonitoring service:
# patient data leaving the network on a protocol wardwatch does not parse
# (the raw-TCP PHI rule's case).
scn_fhir_http_exfil() {
    local n=fhir_http_exfil
    srv_start 80 "$WORK/$n.srv.log" python3 "$WW_LIB/fhir_http.py" server 80
    cap_start "$WORK/$n.raw"
    in_d1 python3 "$WW_LIB/fhir_http.py" post $SRV 80
    cap_stop
    srv_stop
    rw $n "$M_FR_CLOUD" "$M_MONITOR"
}

ALL_HL7="hl7_mllp hl7_nonstd_port hl7_bare_515 hl7_variants fhir_http_exfil"
ALL_TLS="tls_openssl"
ALL="$ALL_MQTT $ALL_DICOM $ALL_GEO $ALL_HL7 $ALL_TLS"
if [ $# -eq 0 ]; then set -- $ALL; fi
[ "$(id -u)" -eq 0 ] || { echo "run as root" >&2; exit 1; }
ww_net_up
for s in "$@"; do
    log "=== $s"
    "scn_$s"
done
log "done"
