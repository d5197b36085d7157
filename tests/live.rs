//! Live capture end to end: two network namespaces joined by a veth pair, a
//! real mosquitto broker in one, real `mosquitto_pub` clients in the other,
//! and the built `wardwatch -i` capturing on the broker's veth inside its
//! namespace. Halfway, the EVE file is moved away and SIGHUP must make
//! wardwatch write a new one (logrotate) and load the rewritten rule file;
//! a second SIGHUP with a broken rule file must keep the rules it has. The
//! alerts show which ruleset saw which client. Stopped with SIGTERM, it must exit
//! 0 having written the MQTT records (client ids and topics we chose), the
//! flows and a final `stats` record with the kernel's counters.
//!
//! The same for DICOM: dcmtk's `storescp` and `echoscu` (C-ECHO), checking
//! the association and DIMSE records (AE titles we chose, status), with EVE
//! sent to a Unix stream socket the test listens on.
//!
//! Needs root (namespaces, AF_PACKET), `ip`, `mosquitto` and
//! `mosquitto_pub` (dcmtk for the DICOM test); without them a test prints
//! why and passes without checking anything. `.ci/run` runs as root and installs mosquitto.
//! Traffic stays inside the namespaces this test creates and always deletes.

#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::netns::*;
use serde_json::Value;

#[test]
fn mqtt_between_namespaces_is_captured_live_sighup_reopens_and_sigterm_stops_cleanly() {
    if !is_root() {
        common::skip("live capture test: needs root (network namespaces, AF_PACKET)");
        return;
    }
    for (cmd, arg) in [
        ("ip", "-V"),
        ("mosquitto", "-h"),
        ("mosquitto_pub", "--help"),
    ] {
        if !have_cmd(cmd, arg) {
            common::skip(&format!("live capture test: `{cmd}` is not installed"));
            return;
        }
    }
    let Some((mut lab, veth)) = lab("m") else {
        return;
    };
    let (nb, nc) = (lab.ns[0].clone(), lab.ns[1].clone());
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("mosquitto.conf");
    std::fs::write(&conf, "listener 1883 0.0.0.0\nallow_anonymous true\n").unwrap();
    lab.children.push(
        Command::new("ip")
            .args(["netns", "exec", &nb, "mosquitto", "-c"])
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Small rings (2 workers x 8 x 64 KiB), a stats event every second, and
    // privileges dropped to nobody (who must be able to reopen the file).
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    // Rules: the first set fires on the first client's CONNECT; SIGHUP
    // swaps in the second (an mqtt.* keyword); a broken third set must be
    // refused and the second kept.
    let rules = dir.path().join("live.rules");
    std::fs::write(
        &rules,
        "alert tcp any any -> any 1883 (msg:\"v1\"; flow:to_server; content:\"ward7-monitor\"; sid:1000001; rev:1;)\n",
    )
    .unwrap();
    let (ww_pid, eve) = start_wardwatch(&mut lab, &veth, dir.path(), "  user: nobody\n", None);
    // Running as nobody with no capability left.
    let status = std::fs::read_to_string(format!("/proc/{ww_pid}/status")).unwrap();
    let field = |k: &str| {
        status
            .lines()
            .find(|l| l.starts_with(k))
            .unwrap_or_default()
            .split_whitespace()
            .skip(1)
            .collect::<Vec<_>>()
    };
    assert_eq!(field("Uid:"), ["65534"; 4], "{status}");
    for cap in ["CapEff:", "CapPrm:", "CapAmb:"] {
        assert_eq!(field(cap), ["0000000000000000"], "{cap} in {status}");
    }

    let publish = |client_id: &str, topic: &str, msg: &str| {
        mosquitto_pub(&nc, BROKER, "1883", client_id, topic, msg)
    };
    // The broker may still be starting: retry the first publish.
    wait_for("the broker", Duration::from_secs(10), || {
        publish("ward7-monitor", "ward7/bed3/spo2", "97")
    });
    // logrotate: move the file away, SIGHUP; the writer opens a new one and
    // the rules are read again.
    std::fs::write(
        &rules,
        "alert mqtt any any -> any any (msg:\"v2\"; mqtt.connect.clientid; content:\"icu-pump\"; sid:1000002; rev:1;)\n",
    )
    .unwrap();
    let rotated = dir.path().join("eve.json.1");
    std::fs::rename(&eve, &rotated).unwrap();
    assert!(sh(&["kill", "-HUP", &ww_pid.to_string()]));
    wait_for(
        "the EVE file reopened after SIGHUP",
        Duration::from_secs(10),
        || eve.exists(),
    );
    // The main thread looks at the reload flag every 200 ms.
    std::thread::sleep(Duration::from_millis(600));
    assert!(publish("icu-pump-12", "icu/pump12/rate", "4.5 ml/h"));
    assert!(publish("ward7-monitor", "ward7/bed3/spo2", "96"));
    std::fs::write(
        &rules,
        "alert mqtt any any -> any any (msg:\"v3\"; mqtt.connect.clientid; content:\"icu-pump\"; sid:1000003; rev:1;)\nalert tcp any any -> (broken\n",
    )
    .unwrap();
    assert!(sh(&["kill", "-HUP", &ww_pid.to_string()]));
    std::thread::sleep(Duration::from_millis(600));
    assert!(publish("icu-pump-13", "icu/pump13/rate", "2 ml/h"));
    std::thread::sleep(Duration::from_millis(300));

    let stderr = stop_wardwatch(&mut lab, ww_pid);
    assert!(stderr.contains("rules reloaded: 1 rules"), "{stderr}");
    assert!(stderr.contains("reload refused (1 bad rule)"), "{stderr}");

    // Everything from before the rotation is in the old file, the rest in
    // the new one; together they are the whole run.
    let old_text = std::fs::read_to_string(&rotated).unwrap();
    let text = std::fs::read_to_string(&eve).unwrap();
    let parse = |t: &str| -> Vec<Value> {
        t.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let (old_recs, new_recs) = (parse(&old_text), parse(&text));
    assert!(old_recs.iter().any(|r| r["event_type"] == "stats"));
    assert!(!new_recs.is_empty());
    let recs: Vec<Value> = old_recs.into_iter().chain(new_recs).collect();
    // Alerts by rule and client: v1 once (the second ward7-monitor login
    // came after the reload), v2 for both pump clients (the broken v3 was
    // refused), v3 never.
    let mut alerts: Vec<(u64, String)> = recs
        .iter()
        .filter(|r| r["event_type"] == "alert")
        .map(|a| {
            let id = a["mqtt"]["connect"]["client_id"].as_str().unwrap_or("");
            (a["alert"]["signature_id"].as_u64().unwrap(), id.to_string())
        })
        .collect();
    alerts.sort();
    assert_eq!(
        alerts,
        [
            (1000001, String::new()),
            (1000002, "icu-pump-12".to_string()),
            (1000002, "icu-pump-13".to_string())
        ]
    );
    let mqtt: Vec<&Value> = recs.iter().filter(|r| r["event_type"] == "mqtt").collect();
    for (client, topic) in [
        ("ward7-monitor", "ward7/bed3/spo2"),
        ("icu-pump-12", "icu/pump12/rate"),
    ] {
        let conn = mqtt
            .iter()
            .find(|r| r["mqtt"]["connect"]["client_id"] == client)
            .unwrap_or_else(|| panic!("no CONNECT of {client} in {mqtt:?}"));
        assert_eq!(conn["src_ip"], CLIENT);
        assert_eq!(conn["dest_ip"], BROKER);
        assert_eq!(conn["dest_port"], 1883);
        assert_eq!(conn["mqtt"]["connect"]["accepted"], true);
        let publ = mqtt
            .iter()
            .find(|r| r["flow_id"] == conn["flow_id"] && r["mqtt"]["publish"].is_object())
            .unwrap_or_else(|| panic!("no PUBLISH in the flow of {client}"));
        assert_eq!(publ["mqtt"]["publish"]["topic"], topic);
        assert_eq!(publ["mqtt"]["publish"]["qos"], 1);
        let flow = recs
            .iter()
            .find(|r| r["event_type"] == "flow" && r["flow_id"] == conn["flow_id"])
            .unwrap_or_else(|| panic!("no flow record for {client}"));
        assert_eq!(flow["app_proto"], "mqtt");
        assert_eq!(flow["tcp"]["syn"], true);
        assert_eq!(flow["tcp"]["fin"], true);
        assert!(flow["flow"]["pkts_toserver"].as_u64().unwrap() >= 4);
        assert!(flow["flow"]["pkts_toclient"].as_u64().unwrap() >= 3);
    }

    let stats: Vec<&Value> = recs.iter().filter(|r| r["event_type"] == "stats").collect();
    assert!(
        stats.len() >= 2,
        "periodic and final stats: {}",
        stats.len()
    );
    let last = recs.last().unwrap();
    assert_eq!(last["event_type"], "stats", "the final record is stats");
    let s = &last["stats"];
    let kernel = s["capture"]["kernel_packets"].as_u64().unwrap();
    let ring = s["capture"]["ring"]["packets"].as_u64().unwrap();
    assert_eq!(s["capture"]["kernel_drops"], 0);
    assert_eq!(s["capture"]["ring"]["bad_headers"], 0);
    // Every packet the kernel accepted reached a worker, except those of a
    // block still being filled at the stop (a stray IPv6 neighbour
    // solicitation at worst); every one the workers got reached the decoder.
    assert!(
        ring <= kernel && kernel - ring <= 4,
        "kernel {kernel}, ring {ring}"
    );
    assert_eq!(s["decoder"]["pkts"].as_u64().unwrap(), ring);
    // Two MQTT conversations: at least 2 x (3 handshake + connect, connack,
    // publish, puback, disconnect + 4 teardown) packets.
    assert!(ring >= 20, "only {ring} packets captured");
    assert!(s["app_layer"]["flow"]["mqtt"].as_u64().unwrap() >= 2);
    // Live stats carry the run's budgets and inventory, as offline ones
    // do, periodic records included.
    for r in &stats {
        let s = &r["stats"];
        for path in [
            ["flow", "memuse"],
            ["tcp", "reassembly_memuse"],
            ["app_layer", "memuse"],
            ["asset", "hosts"],
        ] {
            assert!(s[path[0]][path[1]].is_u64(), "{path:?} in {r}");
        }
    }
}

#[test]
fn interface_conflicts_with_read_file_and_demo() {
    for other in [["-r", "x.pcap"], ["--demo", "-q"]] {
        let out = Command::new(env!("CARGO_BIN_EXE_wardwatch"))
            .args(["-i", "lo"])
            .args(other)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{other:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("cannot be used with"), "{err}");
    }
}

#[test]
fn missing_interface_is_a_one_line_error_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_wardwatch"))
        .args(["-i", "ww-no-such0", "-q", "--eve"])
        .arg(dir.path().join("eve.json"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("ww-no-such0"), "{err}");
}

/// Starts `wardwatch -i` on the broker side; returns once it is capturing
/// (its first periodic stats record is written).
/// `extra` is more of the `capture:` section, e.g. `"  user: nobody\n"`.
fn start_wardwatch(
    lab: &mut Lab,
    veth: &str,
    dir: &Path,
    extra: &str,
    eve_arg: Option<&str>,
) -> (u32, std::path::PathBuf) {
    let ww_conf = dir.join("wardwatch.yaml");
    // Rules from `live.rules` beside the configuration when the test wrote one.
    let detect = if dir.join("live.rules").exists() {
        "detect:\n  rule_files: [live.rules]\n"
    } else {
        ""
    };
    std::fs::write(
        &ww_conf,
        format!(
            "capture:\n  block_size: 65536\n  block_count: 8\n  stats_interval: 1\n{extra}{detect}"
        ),
    )
    .unwrap();
    let eve = dir.join("eve.json");
    let ww = Command::new("ip")
        .args(["netns", "exec", &lab.ns[0], env!("CARGO_BIN_EXE_wardwatch")])
        .args(["-i", veth, "--workers", "2", "-q", "-c"])
        .arg(&ww_conf)
        .arg("--eve")
        .arg(eve_arg.map_or(eve.clone().into_os_string(), Into::into))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = ww.id();
    lab.children.push(ww);
    wait_for(
        "wardwatch's first stats event",
        Duration::from_secs(15),
        || read_eve(&eve).iter().any(|r| r["event_type"] == "stats"),
    );
    (pid, eve)
}

#[test]
fn dicom_echo_between_namespaces_is_captured_live_into_a_unix_socket() {
    if !is_root() {
        common::skip("live DICOM test: needs root (network namespaces, AF_PACKET)");
        return;
    }
    // Full paths: pynetdicom installs scripts of the same names.
    for tool in ["/usr/bin/storescp", "/usr/bin/echoscu"] {
        if !Path::new(tool).exists() || !have_cmd("ip", "-V") {
            common::skip(&format!(
                "live DICOM test: {tool} (dcmtk) or ip is not installed"
            ));
            return;
        }
    }
    let Some((mut lab, veth)) = lab("d") else {
        return;
    };
    let nc = lab.ns[1].clone();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    std::fs::create_dir(&store).unwrap();
    lab.children.push(
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &lab.ns[0],
                "/usr/bin/storescp",
                "-aet",
                "PACS",
            ])
            .arg("--output-directory")
            .arg(&store)
            .arg("11112")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // EVE goes to a Unix stream socket (`--eve unix:PATH`); this reader
    // copies what arrives into eve.json.
    let sock = dir.path().join("eve.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let copy_to = dir.path().join("eve.json");
    let reader = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut out = std::fs::File::create(&copy_to).unwrap();
        std::io::copy(&mut conn, &mut out).unwrap()
    });
    let eve_arg = format!("unix:{}", sock.display());
    let (pid, eve) = start_wardwatch(
        &mut lab,
        &veth,
        dir.path(),
        "  allow_root: true\n",
        Some(&eve_arg),
    );
    wait_for("storescp", Duration::from_secs(10), || {
        Command::new("ip")
            .args(["netns", "exec", &nc, "/usr/bin/echoscu", "-aet", "WARD7WS"])
            .args(["-aec", "PACS", BROKER, "11112"])
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    });
    std::thread::sleep(Duration::from_millis(300));
    stop_wardwatch(&mut lab, pid);
    // wardwatch closed the socket at exit: the reader saw the end.
    assert!(reader.join().unwrap() > 0);

    let recs: Vec<Value> = std::fs::read_to_string(&eve)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let dicom: Vec<&Value> = recs.iter().filter(|r| r["event_type"] == "dicom").collect();
    let echo = dicom
        .iter()
        .find(|r| r["dicom"]["dimse"]["command"] == "C-ECHO")
        .unwrap_or_else(|| panic!("no C-ECHO record in {dicom:?}"));
    let d = &echo["dicom"]["dimse"];
    assert_eq!(d["calling_ae_title"], "WARD7WS");
    assert_eq!(d["called_ae_title"], "PACS");
    assert_eq!(d["response"]["status"], 0);
    assert_eq!(echo["src_ip"], CLIENT);
    assert_eq!(echo["dest_port"], 11112);
    let assoc = dicom
        .iter()
        .find(|r| r["flow_id"] == echo["flow_id"] && r["dicom"]["association"].is_object())
        .unwrap_or_else(|| panic!("no association record in {dicom:?}"));
    assert_eq!(assoc["dicom"]["association"]["outcome"], "released");
    let last = recs.last().unwrap();
    assert_eq!(last["event_type"], "stats");
    assert!(
        last["stats"]["app_layer"]["flow"]["dicom"]
            .as_u64()
            .unwrap()
            >= 1
    );
    assert_eq!(last["stats"]["capture"]["kernel_drops"], 0);
    assert_eq!(last["stats"]["output"]["eve"]["dropped_lines"], 0);
}

#[test]
fn capturing_on_as_root_without_a_user_is_refused() {
    if !is_root() || !have_cmd("ip", "-V") {
        common::skip("root refusal test: needs root and ip");
        return;
    }
    let ns = format!("ww_live_{}r", std::process::id());
    if !sh(&["ip", "netns", "add", &ns]) {
        common::skip("root refusal test: cannot create a network namespace");
        return;
    }
    let lab = Lab {
        ns: [ns.clone(), ns.clone()],
        children: Vec::new(),
    };
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new("ip")
        .args(["netns", "exec", &lab.ns[0], env!("CARGO_BIN_EXE_wardwatch")])
        .args(["-i", "lo", "-q", "--eve"])
        .arg(dir.path().join("eve.json"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refusing to keep capturing as root"), "{err}");
    assert!(err.contains("capture.user"), "{err}");
}
