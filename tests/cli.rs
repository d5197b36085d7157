//! The command line as a user meets it: help, errors, exit codes, stdin,
//! damaged captures, and output that does not depend on the worker count.

mod common;

use std::io::Write;
use std::process::Stdio;

use common::*;

#[test]
fn help_lists_every_option() {
    let out = bin().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for opt in [
        "--read-file",
        "--log-dir",
        "--eve",
        "--workers",
        "--config",
        "--quiet",
        "Exit status",
    ] {
        assert!(text.contains(opt), "--help lacks {opt}");
    }
}

#[test]
fn missing_file_is_a_one_line_error_and_exit_1() {
    let out = run(&["-r", "/nonexistent/x.pcap"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("/nonexistent/x.pcap"), "{err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn not_a_capture_is_rejected_before_any_output() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("notes.txt");
    std::fs::write(&p, "this is not a capture file\n").unwrap();
    let out = run(&["-r", p.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("notes.txt"));
}

#[test]
fn bad_arguments_exit_2() {
    let out = bin()
        .args(["-r", "x.pcap", "--workers", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn bad_config_names_the_file_and_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("ww.yaml");
    std::fs::write(&cfg, "flow:\n  max_flowz: 3\n").unwrap();
    let cap = repo().join("pcaps/mqtt_v311_anon_phi.pcap");
    let out = run(&["-r", cap.to_str().unwrap(), "-c", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("ww.yaml") && err.contains("max_flowz"),
        "{err}"
    );
}

#[test]
fn log_dir_gets_eve_json() {
    let dir = tempfile::tempdir().unwrap();
    let cap = repo().join("pcaps/mqtt_v311_anon_phi.pcap");
    let out = bin()
        .args([
            "-r",
            cap.to_str().unwrap(),
            "-q",
            "-l",
            dir.path().to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let eve = std::fs::read(dir.path().join("eve.json")).unwrap();
    let recs = parse_lines(&eve);
    assert!(recs.iter().any(|r| r["event_type"] == "flow"));
    assert_eq!(recs.last().unwrap()["event_type"], "stats");
}

#[test]
fn summary_paragraph_on_stderr_unless_quiet() {
    let cap = repo().join("pcaps/mqtt_v311_anon_phi.pcap");
    let out = bin()
        .args(["-r", cap.to_str().unwrap(), "--eve", "-"])
        .output()
        .unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("flows") && err.contains("packets"), "{err}");
}

#[test]
fn stdin_gives_the_same_records_as_the_file() {
    let cap = repo().join("pcaps/mqtt_v5_props.pcap");
    let bytes = std::fs::read(&cap).unwrap();
    let mut child = bin()
        .args(["-r", "-", "--eve", "-", "-q", "--workers", "2"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        // Written in small pieces, as a pipe from tcpdump delivers it.
        for piece in bytes.chunks(1000) {
            stdin.write_all(piece).unwrap();
        }
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success());
    assert_eq!(
        normalised(&parse_lines(&out.stdout)),
        normalised(&eve(&cap, 1))
    );
}

#[test]
fn truncated_capture_keeps_earlier_events_says_where_and_exits_3() {
    let cap = repo().join("pcaps/damaged_truncated.pcap");
    let out = run(&["-r", cap.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("truncated") && err.contains("offset"), "{err}");
    let recs = parse_lines(&out.stdout);
    assert!(recs.iter().filter(|r| r["event_type"] == "flow").count() > 0);
    assert_eq!(recs.last().unwrap()["event_type"], "stats");
}

#[test]
fn corrupt_capture_exits_3_with_offset() {
    let cap = repo().join("pcaps/damaged_corrupt.pcap");
    let out = run(&["-r", cap.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("corrupt") && err.contains("offset"), "{err}");
}

#[test]
fn output_is_the_same_for_one_two_and_three_workers() {
    for cap in captures() {
        let one = normalised(&eve(&cap, 1));
        assert_eq!(
            one,
            normalised(&eve(&cap, 2)),
            "{}: 1 vs 2 workers",
            cap.display()
        );
        assert_eq!(
            one,
            normalised(&eve(&cap, 3)),
            "{}: 1 vs 3 workers",
            cap.display()
        );
    }
}

#[test]
fn a_pipe_and_a_mapped_file_give_the_same_output_with_several_workers() {
    // A file is walked by every worker (no reader thread); the same bytes
    // through a pipe go through the reader thread that dispatches them.
    for cap in captures() {
        let one = normalised(&eve(&cap, 1));
        for workers in ["2", "3"] {
            let out = bin()
                .args(["-r", "-", "--eve", "-", "-q", "--workers", workers])
                .stdin(std::fs::File::open(&cap).unwrap())
                .output()
                .unwrap();
            let code = out.status.code();
            assert!(code == Some(0) || code == Some(3), "{}", cap.display());
            assert_eq!(
                normalised(&parse_lines(&out.stdout)),
                one,
                "{}: a pipe with {workers} workers",
                cap.display()
            );
        }
    }
}

#[test]
fn several_files_are_read_as_one_capture() {
    let a = repo().join("pcaps/mqtt_v311_anon_phi.pcap");
    let b = repo().join("pcaps/dicom_echo.pcap");
    let both = eve_args(&["-r", a.to_str().unwrap(), "-r", b.to_str().unwrap()]);
    let flows = |v: &[serde_json::Value]| v.iter().filter(|r| r["event_type"] == "flow").count();
    assert_eq!(flows(&both), flows(&eve(&a, 1)) + flows(&eve(&b, 1)));
}

fn eve_args(args: &[&str]) -> Vec<serde_json::Value> {
    let out = run(args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    parse_lines(&out.stdout)
}

#[test]
fn output_is_the_same_for_any_worker_count_with_timeouts_mid_capture() {
    // Timeouts of one second make flows end, and the same tuples start new
    // flows, in the middle of the captures.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("short.yaml");
    std::fs::write(
        &cfg,
        "flow:\n  tcp: {new: 1, established: 1, closed: 0}\n  udp: {new: 1, established: 1}\n",
    )
    .unwrap();
    let mut timeouts = 0;
    for name in [
        "mqtt_telemetry_nophi.pcap",
        "demo.pcap",
        "tcp_netem_reorder.pcap",
        "tcp_ipv6.pcap",
    ] {
        let cap = repo().join("pcaps").join(name);
        let runs: Vec<_> = [1, 2, 3]
            .iter()
            .map(|w| {
                eve_args(&[
                    "-r",
                    cap.to_str().unwrap(),
                    "-c",
                    cfg.to_str().unwrap(),
                    "--workers",
                    &w.to_string(),
                ])
            })
            .collect();
        timeouts += runs[0]
            .iter()
            .filter(|r| r["flow"]["reason"] == "timeout")
            .count();
        assert_eq!(
            normalised(&runs[0]),
            normalised(&runs[1]),
            "{name}: 1 vs 2 workers"
        );
        assert_eq!(
            normalised(&runs[0]),
            normalised(&runs[2]),
            "{name}: 1 vs 3 workers"
        );
    }
    assert!(timeouts > 0, "the short timeouts must fire");
}

/// `-f` in a build without the `libpcap` feature (tests/bpf.rs covers it
/// with the feature).
#[cfg(not(feature = "libpcap"))]
#[test]
fn filter_without_libpcap_feature_says_how_to_rebuild() {
    let demo = repo().join("pcaps/demo.pcap");
    let out = run(&["-r", demo.to_str().unwrap(), "-f", "tcp port 1883"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("--features libpcap"), "{err}");
    assert!(out.stdout.is_empty());
}

/// `capture.method: libpcap` in a build without the feature: `-i` and `-T`
/// both refuse the configuration, saying how to rebuild.
#[cfg(all(not(feature = "libpcap"), target_os = "linux"))]
#[test]
fn libpcap_method_without_the_feature_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("ww.yaml");
    std::fs::write(&conf, "capture:\n  method: libpcap\n").unwrap();
    let conf = conf.to_str().unwrap();
    for args in [vec!["-i", "lo", "-c", conf], vec!["-T", "-c", conf]] {
        let out = run(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains("capture.method: libpcap"), "{err}");
        assert!(err.contains("--features libpcap"), "{err}");
    }
}

/// A method that does not exist is refused when the file is read.
#[test]
fn unknown_capture_method_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("ww.yaml");
    std::fs::write(&conf, "capture:\n  method: netmap\n").unwrap();
    let out = run(&["-T", "-c", conf.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("netmap"), "{err}");
}

#[test]
fn no_arguments_shows_the_four_ways_to_run_and_exits_2() {
    let out = bin().output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    for form in ["-r FILE", "-i IFACE", "--demo", "-T"] {
        assert!(err.contains(form), "{form} missing from:\n{err}");
    }
    assert!(!err.contains("required"), "{err}");
}

#[test]
fn missing_file_names_its_path_once() {
    let out = bin().args(["-r", "/nonexistent/x.pcap"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.matches("/nonexistent/x.pcap").count(), 1, "{err}");
    assert!(!err.contains("warning"), "{err}");
}

#[test]
fn empty_input_is_not_a_capture_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("empty.pcap");
    std::fs::write(&p, b"").unwrap();
    for input in [p.to_str().unwrap(), "/dev/null"] {
        let out = run(&["-r", input]);
        assert_eq!(out.status.code(), Some(1), "{input}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains("empty") && !err.contains("truncated"), "{err}");
        assert!(out.stdout.is_empty());
    }
    // Standard input closed at once is the same.
    let out = bin()
        .args(["-r", "-", "--eve", "-", "-q"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn closed_stdout_ends_the_run_quietly_with_success() {
    let mut child = bin()
        .args(["--demo", "--eve", "-"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read one line, then close the pipe, as `head -1` does.
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 64];
    std::io::Read::read_exact(&mut stdout, &mut first).unwrap();
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        !err.to_lowercase().contains("pipe") && !err.contains("error"),
        "{err}"
    );
}

#[test]
fn default_configuration_does_not_warn_and_t_notes_the_dataset_and_baseline_once() {
    let cap = repo().join("pcaps/mqtt_v311_anon_phi.pcap");
    let out = bin()
        .args(["-r", cap.to_str().unwrap(), "--eve", "/dev/null"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(!err.contains("warning"), "{err}");
    let t = bin().arg("-T").output().unwrap();
    assert!(t.status.success());
    let text = String::from_utf8(t.stdout).unwrap() + &String::from_utf8(t.stderr).unwrap();
    assert_eq!(text.matches("known-ae-titles").count(), 1, "{text}");
    assert!(!text.contains("warning"), "{text}");
    // The default asset drift rules wait for a baseline inventory: -T says
    // so once, and not when one is given.
    assert_eq!(
        text.matches("without a baseline inventory").count(),
        1,
        "{text}"
    );
    let dir = tempfile::tempdir().unwrap();
    let inv = dir.path().join("inv.json");
    let made = bin()
        .args([
            "-r",
            cap.to_str().unwrap(),
            "--eve",
            "/dev/null",
            "--inventory",
        ])
        .arg(&inv)
        .output()
        .unwrap();
    assert!(made.status.success());
    let t = bin()
        .arg("-T")
        .arg("--inventory-baseline")
        .arg(&inv)
        .output()
        .unwrap();
    assert!(t.status.success());
    let text = String::from_utf8(t.stdout).unwrap();
    assert!(!text.contains("baseline inventory"), "{text}");
}

#[test]
fn interface_help_says_sighup_reloads_rules() {
    let out = bin().arg("--help").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let i = text.find("--interface").unwrap();
    let para = &text[i..text[i..].find("\n\n").map_or(text.len(), |e| i + e)];
    assert!(
        para.contains("SIGHUP") && para.contains("reloads"),
        "{para}"
    );
}

#[test]
fn zero_flow_memcap_is_refused_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("ww.yaml");
    std::fs::write(&cfg, "flow:\n  memcap: 0\n").unwrap();
    for args in [vec!["-T"], vec!["--demo", "--eve", "/dev/null"]] {
        let out = bin()
            .args(&args)
            .args(["-c", cfg.to_str().unwrap()])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains("flow.memcap"), "{err}");
    }
}

#[test]
fn fail_on_exits_4_when_an_alert_that_severe_was_raised() {
    // The demo raises alerts of severity 1 (credentials, PHI): checked in
    // the records themselves, then against the exit status.
    let demo = run(&["--demo"]);
    let sev: Vec<u64> = parse_lines(&demo.stdout)
        .iter()
        .filter(|r| r["event_type"] == "alert")
        .map(|r| r["alert"]["severity"].as_u64().unwrap())
        .collect();
    let best = *sev.iter().min().unwrap();
    let code = |s: u64| run(&["--demo", "--fail-on", &s.to_string()]).status.code();
    assert_eq!(code(best), Some(4));
    assert_eq!(code(3), Some(4));
    // A capture without alerts: success whatever the threshold.
    let quiet = repo().join("pcaps/dicom_echo.pcap");
    let records = run(&["-r", quiet.to_str().unwrap()]);
    assert!(parse_lines(&records.stdout)
        .iter()
        .all(|r| r["event_type"] != "alert"));
    let out = run(&["-r", quiet.to_str().unwrap(), "--fail-on", "3"]);
    assert_eq!(out.status.code(), Some(0));
    if best > 1 {
        assert_eq!(code(best - 1), Some(0));
    }
}

#[test]
fn unsupported_link_type_warns_once_and_is_counted() {
    // Hand-built pcap of link type 105 (IEEE 802.11): a global header and
    // three 24-byte records of zeros; nothing else is needed to show that
    // such frames are not decoded.
    let mut f = Vec::new();
    f.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes()); // magic, microseconds
    f.extend_from_slice(&2u16.to_le_bytes()); // version major
    f.extend_from_slice(&4u16.to_le_bytes()); // version minor
    f.extend_from_slice(&[0; 8]); // thiszone, sigfigs
    f.extend_from_slice(&65535u32.to_le_bytes()); // snaplen
    f.extend_from_slice(&105u32.to_le_bytes()); // link type: 802.11
    for i in 0..3u32 {
        f.extend_from_slice(&(1_700_000_000 + i).to_le_bytes()); // ts sec
        f.extend_from_slice(&0u32.to_le_bytes()); // ts usec
        f.extend_from_slice(&24u32.to_le_bytes()); // caplen
        f.extend_from_slice(&24u32.to_le_bytes()); // origlen
        f.extend_from_slice(&[0; 24]); // an 802.11 header's worth of zeros
    }
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("wlan.pcap");
    std::fs::write(&p, &f).unwrap();
    let out = bin()
        .args(["-r", p.to_str().unwrap(), "--eve", "-"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.matches("link type 105").count(), 1, "{err}");
    let stats = parse_lines(&out.stdout)
        .into_iter()
        .find(|r| r["event_type"] == "stats")
        .unwrap();
    assert_eq!(stats["stats"]["decoder"]["unsupported_link"], 3);
}
