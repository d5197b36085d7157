//! EVE to Redis against a real `redis-server` (Debian's), started by each
//! test on a free loopback port with no persistence and stopped after.
//!
//! - A file run with one worker writes the same records, in the same order,
//!   to a file and to Redis in each mode: `list` (LPUSH: read back with
//!   LRANGE reversed), `rpush`, `channel` (a subscriber connected before the
//!   run) and `stream` (XRANGE, field `eve`); `outputs.sensor_name` is the
//!   `host` of every record.
//! - Offline, Redis killed while the run waits on its input and restarted
//!   two seconds later: the run waits, then writes everything (exit 0);
//!   never restarted: the run fails after `timeout` with exit 1 naming the
//!   server.
//! - A wrong or missing password is a clear error (exit 1).
//! - Live (network namespaces, mosquitto, root): Redis killed and restarted
//!   mid-run; the records that arrived plus `output.eve.dropped_lines` of
//!   the final stats record equal what the traffic produced, counted from
//!   sessions that were delivered whole.
//!
//! Without redis-server (or, for the live test, root and mosquitto) a test
//! skips; under `CI` it fails (tests/common: skip).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// A `redis-server` on 127.0.0.1 (or inside a namespace); killed on drop.
struct Server {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    netns: Option<String>,
    password: Option<String>,
}

impl Server {
    fn start(password: Option<&str>) -> Option<Server> {
        Server::start_in(None, free_port(), password)
    }

    /// Starts a server on `port`, in namespace `netns` when given; `None`
    /// (after `skip`) when redis-server is not installed.
    fn start_in(netns: Option<&str>, port: u16, password: Option<&str>) -> Option<Server> {
        if !have("redis-server") {
            skip("redis-server is not installed (Debian package redis-server)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let mut s = Server {
            child: Command::new("true").spawn().unwrap(),
            port,
            dir,
            netns: netns.map(str::to_string),
            password: password.map(str::to_string),
        };
        s.restart();
        Some(s)
    }

    /// (Re)starts the server on the same port, empty.
    fn restart(&mut self) {
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "redis-server"]);
                c
            }
            None => Command::new("redis-server"),
        };
        cmd.args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(p) = &self.password {
            cmd.args(["--requirepass", p]);
        }
        self.child = cmd.spawn().unwrap();
        let start = Instant::now();
        while self.query(&["PING"]).is_none() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// One command through redis-cli (inside the namespace when there is
    /// one); its output lines, or `None` when the server does not answer.
    fn query(&self, args: &[&str]) -> Option<Vec<String>> {
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "redis-cli"]);
                c
            }
            None => Command::new("redis-cli"),
        };
        cmd.args(["-p", &self.port.to_string(), "--no-auth-warning"]);
        if let Some(p) = &self.password {
            cmd.args(["-a", p]);
        }
        let out = cmd.args(args).stderr(Stdio::null()).output().ok()?;
        let text = String::from_utf8(out.stdout).unwrap();
        if !out.status.success() || text.starts_with("Could not connect") {
            return None;
        }
        Some(text.lines().map(str::to_string).collect())
    }

    /// The records in list `key`, oldest first, for `mode` list (LPUSH) or
    /// rpush.
    fn list(&self, key: &str, lpush: bool) -> Vec<Value> {
        let mut v: Vec<Value> = self
            .query(&["LRANGE", key, "0", "-1"])
            .unwrap_or_default()
            .iter()
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        if lpush {
            v.reverse();
        }
        v
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A configuration file sending EVE to Redis on `port`.
fn config(dir: &Path, port: u16, redis_extra: &str, top: &str) -> std::path::PathBuf {
    let p = dir.join("ww.yaml");
    std::fs::write(
        &p,
        format!(
            "{top}outputs:\n  sensor_name: ward-7\n  eve:\n    filetype: redis\n    redis:\n      port: {port}\n{redis_extra}"
        ),
    )
    .unwrap();
    p
}

/// The records without `stats.uptime` and the tags of masked values, which
/// may differ between two runs (`common::untagged`).
fn comparable(records: &[Value]) -> Vec<String> {
    records
        .iter()
        .map(|r| {
            let mut r = r.clone();
            if let Some(s) = r.get_mut("stats").and_then(Value::as_object_mut) {
                s.remove("uptime");
            }
            untagged(&r.to_string())
        })
        .collect()
}

/// The demo's records written to stdout with the same configuration (its
/// `outputs.eve` is overridden by `--eve -`).
fn reference(cfg: &Path) -> Vec<Value> {
    let out = bin()
        .args(["--demo", "--workers", "1", "-q", "--eve", "-", "-c"])
        .arg(cfg)
        .output()
        .unwrap();
    assert!(out.status.success());
    parse_lines(&out.stdout)
}

fn run_demo(cfg: &Path) -> std::process::Output {
    bin()
        .args(["--demo", "--workers", "1", "-q", "-c"])
        .arg(cfg)
        .output()
        .unwrap()
}

#[test]
fn file_run_arrives_whole_and_in_order_in_every_mode() {
    let Some(server) = Server::start(None) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    for (mode, key) in [
        ("list", "ww-list"),
        ("rpush", "ww-rpush"),
        ("stream", "ww-stream"),
    ] {
        let cfg = config(
            dir.path(),
            server.port,
            &format!("      mode: {mode}\n      key: {key}\n      pipelining: {{enabled: true, batch-size: 7}}\n"),
            "",
        );
        let want = reference(&cfg);
        assert!(want.len() > 100, "the demo writes over 100 records");
        assert!(want.iter().all(|r| r["host"] == "ward-7"));
        let out = run_demo(&cfg);
        assert!(
            out.status.success(),
            "{mode}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let got = match mode {
            "stream" => {
                let lines = server.query(&["XRANGE", key, "-", "+"]).unwrap();
                // redis-cli prints id, field name, value for each entry.
                let eve: Vec<Value> = lines
                    .windows(2)
                    .filter(|w| w[0] == "eve")
                    .map(|w| serde_json::from_str(&w[1]).unwrap())
                    .collect();
                assert_eq!(lines.iter().filter(|l| *l == "eve").count(), want.len());
                eve
            }
            _ => server.list(key, mode == "list"),
        };
        same_records(&got, &want, mode);
    }
}

/// `got` equals `want` record for record; a difference names the first
/// record that differs rather than printing both runs whole.
fn same_records(got: &[Value], want: &[Value], what: &str) {
    let (got, want) = (comparable(got), comparable(want));
    if let Some(i) = (0..got.len().max(want.len())).find(|&i| got.get(i) != want.get(i)) {
        panic!(
            "{what}: {} records, {} wanted; first difference at {i}:\n got  {:?}\n want {:?}",
            got.len(),
            want.len(),
            got.get(i),
            want.get(i)
        );
    }
}

#[test]
fn channel_subscriber_started_first_gets_every_record_in_order() {
    let Some(server) = Server::start(None) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        server.port,
        "      mode: channel\n      key: ww-chan\n",
        "",
    );
    let want = reference(&cfg);
    let (tx_ready, rx_ready) = std::sync::mpsc::channel();
    // The redis crate's subscriber: subscribe() returns once Redis
    // confirmed the subscription, before the run starts.
    let client = redis::Client::open(format!("redis://127.0.0.1:{}/", server.port)).unwrap();
    let mut con = client.get_connection().unwrap();
    con.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let reader = std::thread::spawn(move || {
        let mut ps = con.as_pubsub();
        ps.subscribe("ww-chan").unwrap();
        let mut got = Vec::new();
        tx_ready.send(()).unwrap();
        loop {
            let payload: String = ps.get_message().unwrap().get_payload().unwrap();
            let record: Value = serde_json::from_str(&payload).unwrap();
            let last = record["event_type"] == "stats";
            got.push(record);
            if last {
                break got;
            }
        }
    });
    rx_ready.recv().unwrap();
    let out = run_demo(&cfg);
    assert!(out.status.success());
    let got = reader.join().unwrap();
    same_records(&got, &want, "channel");
}

#[test]
fn wrong_or_missing_password_is_a_clear_error() {
    let Some(server) = Server::start(Some("right-horse")) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    for extra in ["      password: wrong-horse\n", ""] {
        let cfg = config(dir.path(), server.port, extra, "");
        let out = run_demo(&cfg);
        assert_eq!(out.status.code(), Some(1), "{extra}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(
            err.contains("authentication failed")
                && err.contains(&format!("127.0.0.1:{}", server.port)),
            "{err}"
        );
        assert!(
            !err.contains("wrong-horse"),
            "the password is not printed: {err}"
        );
    }
    let cfg = config(
        dir.path(),
        server.port,
        "      password: right-horse\n      key: ok\n",
        "",
    );
    assert!(run_demo(&cfg).status.success());
    assert_eq!(server.list("ok", true).len(), reference(&cfg).len());
}

#[test]
fn offline_waits_for_a_restarted_redis_and_loses_nothing() {
    let Some(mut server) = Server::start(None) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        server.port,
        "      mode: rpush\n      key: ww\n      timeout: 30\n",
        "",
    );
    let want = reference(&cfg);
    // The run connects, then waits for its capture on stdin.
    let mut ww = bin()
        .args(["-r", "-", "--workers", "1", "-q", "-c"])
        .arg(&cfg)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    server.kill();
    std::io::Write::write_all(
        ww.stdin.as_mut().unwrap(),
        &std::fs::read(repo().join("pcaps/demo.pcap")).unwrap(),
    )
    .unwrap();
    drop(ww.stdin.take());
    // Redis is away for two seconds while the run has records to write.
    std::thread::sleep(Duration::from_secs(2));
    assert!(ww.try_wait().unwrap().is_none(), "the run waits for Redis");
    server.restart();
    let out = ww.wait_with_output().unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("unreachable") && err.contains("reachable again"),
        "{err}"
    );
    // The stdin run names its input differently from --demo: nothing in
    // the records depends on it.
    same_records(&server.list("ww", false), &want, "restart");
}

#[test]
fn offline_redis_gone_past_the_timeout_fails_naming_it() {
    let Some(mut server) = Server::start(None) else {
        return;
    };
    let port = server.port;
    server.kill();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), port, "      timeout: 1\n", "");
    let started = Instant::now();
    let out = run_demo(&cfg);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains(&format!("redis 127.0.0.1:{port} unreachable for 1 s")),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(15));
}

#[cfg(target_os = "linux")]
#[test]
fn live_run_survives_a_redis_restart_and_counts_its_losses_exactly() {
    use common::netns::*;
    if !is_root() {
        skip("live Redis test: needs root (network namespaces, AF_PACKET)");
        return;
    }
    for (cmd, arg) in [
        ("ip", "-V"),
        ("mosquitto", "-h"),
        ("mosquitto_pub", "--help"),
    ] {
        if !have_cmd(cmd, arg) {
            skip(&format!("live Redis test: `{cmd}` is not installed"));
            return;
        }
    }
    let Some((mut lab, veth)) = lab("r") else {
        return;
    };
    let (nb, nc) = (lab.ns[0].clone(), lab.ns[1].clone());
    // Redis on the broker namespace's own loopback, where wardwatch runs.
    let Some(mut server) = Server::start_in(Some(&nb), 6390, None) else {
        return;
    };
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
    // Flows end one second after their FIN; no periodic stats (only the
    // final one); a Redis buffer of 2 kB, so that records produced while
    // Redis is away overflow it.
    let cfg = config(
        dir.path(),
        6390,
        "      mode: rpush\n      key: ww\n      buffer: 2kb\n",
        "capture:\n  block_size: 65536\n  block_count: 8\n  stats_interval: 3600\n  allow_root: true\n\
         flow:\n  tcp: {new: 1, established: 1, closed: 1}\n",
    );
    // Only the sessions make records: no IPv6 neighbour chatter, and no
    // rule (an alert with a threshold would make the first session
    // differ from the others).
    for ns in [&nb, &nc] {
        assert!(sh(&[
            "ip",
            "netns",
            "exec",
            ns,
            "sysctl",
            "-qw",
            "net.ipv6.conf.all.disable_ipv6=1"
        ]));
    }
    let no_rules = dir.path().join("none.rules");
    std::fs::write(&no_rules, "").unwrap();
    let publish = |id: &str| mosquitto_pub(&nc, BROKER, "1883", id, "ward7/bed3/spo2", "97");
    // The broker is ready before wardwatch starts, so that no refused
    // attempt becomes a flow of its own.
    wait_for("the broker", Duration::from_secs(10), || publish("warmup"));
    let ww = Command::new("ip")
        .args(["netns", "exec", &nb, env!("CARGO_BIN_EXE_wardwatch")])
        .args(["-i", &veth, "--workers", "1", "-q", "-c"])
        .arg(&cfg)
        .arg("-S")
        .arg(&no_rules)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = ww.id();
    lab.children.push(ww);
    // No stats record before the final one: give the rings time to open.
    std::thread::sleep(Duration::from_secs(2));
    let flows = |server: &Server| {
        server
            .list("ww", false)
            .iter()
            .filter(|r| r["event_type"] == "flow")
            .count()
    };
    for i in 0..3 {
        assert!(publish(&format!("before-{i}")));
    }
    wait_for("3 sessions in Redis", Duration::from_secs(20), || {
        flows(&server) >= 3
    });
    std::thread::sleep(Duration::from_secs(2));
    let before = server.list("ww", false);
    let per_session = before.len() / 3;
    assert_eq!(
        before.len() % 3,
        0,
        "every session gives the same records: {before:?}"
    );
    assert!(per_session >= 3, "{before:?}");
    server.kill();
    for i in 0..6 {
        assert!(publish(&format!("while-down-{i}")));
    }
    // Every record of those sessions is made (their flows time out) while
    // Redis is away.
    std::thread::sleep(Duration::from_secs(4));
    server.restart();
    // What the buffer kept arrives once wardwatch has reconnected (its
    // backoff is at most 5 s); then two more sessions.
    wait_for("the held records", Duration::from_secs(15), || {
        !server.list("ww", false).is_empty()
    });
    for i in 0..2 {
        assert!(publish(&format!("after-{i}")));
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    wait_for("the last sessions", Duration::from_secs(21), || {
        if Instant::now() > deadline {
            panic!("{:#?}", server.list("ww", false));
        }
        server
            .list("ww", false)
            .iter()
            .filter(|r| r["event_type"] == "flow" && r["flow"]["pkts_toserver"].as_u64() > Some(0))
            .count()
            >= 2
            && server
                .list("ww", false)
                .iter()
                .filter(|r| {
                    r["mqtt"]["connect"]["client_id"]
                        .as_str()
                        .is_some_and(|c| c.starts_with("after-"))
                })
                .count()
                == 2
    });
    std::thread::sleep(Duration::from_secs(3));
    stop_wardwatch(&mut lab, pid);
    let after = server.list("ww", false);
    let stats: Vec<&Value> = after
        .iter()
        .filter(|r| r["event_type"] == "stats")
        .collect();
    assert_eq!(stats.len(), 1, "one final stats record");
    let dropped = stats[0]["stats"]["output"]["eve"]["dropped_lines"]
        .as_u64()
        .unwrap();
    let sessions = 3 + 6 + 2;
    // The final stats record and the final asset records (one snapshot or
    // change per host, written with it) are not per session.
    let assets = before
        .iter()
        .chain(&after)
        .filter(|r| r["event_type"] == "asset")
        .count();
    let arrived = before.len() + after.len() - 1 - assets;
    assert!(dropped > 0, "a 2 kB buffer overflows while Redis is away");
    let kinds = |v: &[Value]| {
        let mut m = std::collections::BTreeMap::new();
        for r in v {
            let k = match r["event_type"].as_str().unwrap() {
                "alert" => format!("alert {}", r["alert"]["signature_id"]),
                "mqtt" => format!(
                    "mqtt {:?}",
                    r["mqtt"]
                        .as_object()
                        .map(|o| o.keys().cloned().collect::<Vec<_>>())
                ),
                t => t.to_string(),
            };
            *m.entry(k).or_insert(0) += 1;
        }
        m
    };
    assert_eq!(
        arrived as u64 + dropped,
        (sessions * per_session) as u64,
        "before {:?}\nafter {:?}\ndropped {dropped}",
        kinds(&before),
        kinds(&after)
    );
    // Nothing arrived twice.
    let mut all = comparable(&before);
    all.extend(comparable(&after));
    let n = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), n);
    // The oldest held records are the ones dropped: every session after
    // the restart arrived whole.
    for i in 0..2 {
        let id = format!("after-{i}");
        assert!(
            after
                .iter()
                .any(|r| r["mqtt"]["connect"]["client_id"] == id.as_str()),
            "{id}"
        );
    }
}
