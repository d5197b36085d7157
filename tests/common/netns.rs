//! Network namespaces for the live-capture tests (tests/live.rs,
//! tests/live_pcap.rs): two namespaces joined by a veth pair, the processes
//! started in them, and stopping wardwatch with SIGTERM.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub fn have_cmd(cmd: &str, arg: &str) -> bool {
    Command::new(cmd)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

pub fn sh(args: &[&str]) -> bool {
    Command::new(args[0])
        .args(&args[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Two namespaces and the processes in them; dropping it kills the processes
/// and deletes the namespaces (which deletes the veth pair).
pub struct Lab {
    pub ns: [String; 2],
    pub children: Vec<Child>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in &self.ns {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}

pub const BROKER: &str = "10.213.7.1";
pub const CLIENT: &str = "10.213.7.2";

/// Builds the namespaces; `None` (with a printed reason) if that is not
/// possible here.
/// `tag` (one letter) keeps the names of tests running at once apart.
pub fn lab(tag: &str) -> Option<(Lab, String)> {
    let id = std::process::id();
    let lab = Lab {
        ns: [
            format!("ww_live_{id}{tag}_b"),
            format!("ww_live_{id}{tag}_c"),
        ],
        children: Vec::new(),
    };
    let (nb, nc) = (lab.ns[0].as_str(), lab.ns[1].as_str());
    let (vb, vc) = (format!("wwl{id}{tag}b"), format!("wwl{id}{tag}c"));
    if !sh(&["ip", "netns", "add", nb]) || !sh(&["ip", "netns", "add", nc]) {
        super::skip("live capture test: cannot create network namespaces here");
        return None;
    }
    let steps: Vec<Vec<&str>> = vec![
        vec![
            "ip", "link", "add", &vb, "type", "veth", "peer", "name", &vc,
        ],
        vec!["ip", "link", "set", &vb, "netns", nb],
        vec!["ip", "link", "set", &vc, "netns", nc],
        vec!["ip", "-n", nb, "addr", "add", "10.213.7.1/24", "dev", &vb],
        vec!["ip", "-n", nc, "addr", "add", "10.213.7.2/24", "dev", &vc],
        vec!["ip", "-n", nb, "link", "set", &vb, "mtu", "1500", "up"],
        vec!["ip", "-n", nc, "link", "set", &vc, "mtu", "1500", "up"],
        vec!["ip", "-n", nb, "link", "set", "lo", "up"],
        vec!["ip", "-n", nc, "link", "set", "lo", "up"],
    ];
    for s in &steps {
        if !sh(s) {
            super::skip(&format!("live capture test: `{}` failed", s.join(" ")));
            return None;
        }
    }
    // Offloads off, so the capture sees wire-sized frames (best effort:
    // without ethtool the frames may be larger, which the decoder handles).
    for (ns, dev) in [(nb, &vb), (nc, &vc)] {
        let _ = sh(&[
            "ip", "netns", "exec", ns, "ethtool", "-K", dev, "tso", "off", "gso", "off", "gro",
            "off", "tx", "off", "rx", "off",
        ]);
    }
    Some((lab, vb))
}

/// The EVE records written so far (a line still being written is left out).
pub fn read_eve(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

pub fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// SIGTERM, then the exit status must be 0 within 10 s; returns stderr.
pub fn stop_wardwatch(lab: &mut Lab, pid: u32) -> String {
    assert!(sh(&["kill", "-TERM", &pid.to_string()]));
    let start = Instant::now();
    let c = lab.children.iter_mut().find(|c| c.id() == pid).unwrap();
    let status = loop {
        if let Some(s) = c.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    if let Some(mut e) = c.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut err);
    }
    assert!(status.success(), "exit status {status}; stderr: {err}");
    err
}

/// `mosquitto_pub` (QoS 1) run in namespace `ns` to `broker:port`; true when
/// it succeeded.
pub fn mosquitto_pub(
    ns: &str,
    broker: &str,
    port: &str,
    client_id: &str,
    topic: &str,
    msg: &str,
) -> bool {
    Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            "mosquitto_pub",
            "-h",
            broker,
            "-p",
            port,
            "-q",
            "1",
        ])
        .args(["-i", client_id, "-t", topic, "-m", msg])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
