//! EVE to Redis, as Suricata's `eve-log` `filetype: redis` does it: one
//! command per record — `LPUSH key record` (`mode: list`, alias `lpush`),
//! `RPUSH` (`rpush`), `PUBLISH key record` (`channel`, alias `publish`) or
//! `XADD key [MAXLEN ~|= n] * eve record` (`stream`, alias `xadd`) — so
//! Logstash's redis input, Security Onion and Malcolm read wardwatch's
//! records exactly as they read Suricata's.
//!
//! Commands are pipelined: up to `pipelining.batch-size` records are sent
//! in one write and their replies read together.
//!
//! Invariants:
//! - A record leaves the buffer only when Redis acknowledged it (a reply
//!   that is not an error) or when it is dropped and counted. After a broken
//!   connection the records of the unacknowledged batch are sent again: a
//!   record Redis stored just before the connection broke may arrive twice,
//!   none is lost unnoticed.
//! - Offline (`live == false`), nothing is dropped: a write waits for Redis,
//!   reconnecting with backoff, and fails with an error naming the server
//!   once it has been unreachable for `timeout` seconds; a record Redis
//!   refuses (`WRONGTYPE`, `OOM`…) fails the run.
//! - Live, a write never waits for an absent Redis: records are held in a
//!   buffer of at most `buffer` bytes while reconnection is tried with
//!   exponential backoff (0.1 s doubling to 5 s); when the buffer is full
//!   the oldest records are dropped first, and every dropped or refused
//!   record is counted (the writer adds them to `output.eve.dropped_lines`).
//! - A wrong password is an error when the output is opened, offline and
//!   live alike.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo, RedisConnectionInfo, Value};
use serde::Deserialize;

use crate::memcap::ByteSize;

/// `outputs.eve.redis`: Suricata's names (`server`, `port`, `mode`, `key`,
/// `pipelining.batch-size`, `stream-maxlen`, `stream-trim-exact`) plus the
/// ones Suricata lacks (`password`, `timeout`, `buffer`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// Host name or address; a path (anything with a `/`) is a Unix socket,
    /// as in Suricata.
    pub server: String,
    pub port: u16,
    pub mode: RedisMode,
    /// The list, channel or stream name.
    pub key: String,
    /// `AUTH` password (Redis `requirepass`); none by default.
    pub password: Option<Secret>,
    pub pipelining: Pipelining,
    /// `stream` mode: `MAXLEN` of the stream, approximate (`~`) unless
    /// `stream-trim-exact`; 0 leaves the stream untrimmed.
    #[serde(rename = "stream-maxlen", alias = "stream_maxlen")]
    pub stream_maxlen: u64,
    #[serde(rename = "stream-trim-exact", alias = "stream_trim_exact")]
    pub stream_trim_exact: bool,
    /// Offline: seconds to wait for an unreachable Redis before the run
    /// fails. Also the connect and reply timeout of each attempt (at most
    /// 5 s).
    pub timeout: u64,
    /// Live: the most record bytes held while Redis is unreachable or slow;
    /// beyond it the oldest are dropped and counted.
    pub buffer: ByteSize,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            server: "127.0.0.1".into(),
            port: 6379,
            mode: RedisMode::List,
            key: "suricata".into(),
            password: None,
            pipelining: Pipelining::default(),
            stream_maxlen: 100_000,
            stream_trim_exact: false,
            timeout: 60,
            buffer: ByteSize::mib(16),
        }
    }
}

/// Suricata's modes and their aliases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RedisMode {
    /// `LPUSH` (Suricata's default; consumers pop from the other end).
    #[serde(alias = "lpush")]
    List,
    /// `RPUSH`.
    Rpush,
    /// `PUBLISH`: only subscribers connected at that moment get the record.
    #[serde(alias = "publish")]
    Channel,
    /// `XADD … * eve record`.
    #[serde(alias = "xadd")]
    Stream,
}

/// `pipelining:` — Suricata's `enabled` and `batch-size`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Pipelining {
    pub enabled: bool,
    /// Records per round trip.
    #[serde(rename = "batch-size", alias = "batch_size")]
    pub batch_size: usize,
}

impl Default for Pipelining {
    fn default() -> Self {
        // 256 records per round trip. Measured on mqtt_v311_anon_phi
        // multiplied 2000 times (104,001 records, one worker, Redis 7.0 on
        // loopback, single runs on a shared machine): batch 10 (Suricata's
        // default) 4.32 s, 64 3.13 s, 256 3.09 s, 1024 3.36 s; the same run
        // to /dev/null 2.50 s.
        Pipelining {
            enabled: true,
            batch_size: 256,
        }
    }
}

/// A password: never printed by `Debug`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

/// Where and how a sink writes to Redis: the configuration and whether the
/// run is live (drop and count) or offline (wait, never drop).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisTarget {
    pub config: RedisConfig,
    pub live: bool,
}

impl RedisTarget {
    /// `127.0.0.1:6379` or the socket path, for messages.
    pub fn address(&self) -> String {
        let c = &self.config;
        if c.server.contains('/') {
            c.server.clone()
        } else {
            format!("{}:{}", c.server, c.port)
        }
    }
}

/// Longest wait between two connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// An open Redis output. See the module doc for its guarantees.
pub struct RedisSink {
    target: RedisTarget,
    client: redis::Client,
    conn: Option<redis::Connection>,
    /// Records not yet acknowledged, each ending in `\n`, from `head` on.
    pending: Vec<u8>,
    head: usize,
    delivered: u64,
    /// Dropped or refused since the last [`RedisSink::take_dropped`].
    dropped: u64,
    backoff: Duration,
    next_try: Instant,
    /// Since when Redis has been unreachable, and why.
    down: Option<(Instant, String)>,
    /// A refusal was reported on stderr (live says it once).
    refusal_reported: bool,
}

impl RedisSink {
    /// Connects. Offline an unreachable Redis is waited for (see
    /// [`RedisSink::write_lines`]); live the sink starts disconnected and
    /// keeps trying.
    ///
    /// # Errors
    /// Authentication failed (offline and live); offline, Redis stayed
    /// unreachable for `timeout` seconds.
    pub fn open(target: &RedisTarget) -> io::Result<RedisSink> {
        let c = &target.config;
        let addr = if c.server.contains('/') {
            ConnectionAddr::Unix(PathBuf::from(&c.server))
        } else {
            ConnectionAddr::Tcp(c.server.clone(), c.port)
        };
        let mut settings = RedisConnectionInfo::default().set_skip_set_lib_name();
        if let Some(p) = &c.password {
            settings = settings.set_password(&p.0);
        }
        let info: ConnectionInfo = addr
            .into_connection_info()
            .map_err(|e| io::Error::other(format!("redis {}: {e}", target.address())))?
            .set_redis_settings(settings);
        let client = redis::Client::open(info)
            .map_err(|e| io::Error::other(format!("redis {}: {e}", target.address())))?;
        let now = Instant::now();
        let mut sink = RedisSink {
            target: target.clone(),
            client,
            conn: None,
            pending: Vec::new(),
            head: 0,
            delivered: 0,
            dropped: 0,
            backoff: FIRST_BACKOFF,
            next_try: now,
            down: None,
            refusal_reported: false,
        };
        // Connect now, so a wrong password or an absent server is said at
        // start; offline this waits like a write.
        sink.drain()?;
        Ok(sink)
    }

    /// Queues a block of complete lines and sends what can be sent: offline
    /// everything (waiting for Redis if needed), live whatever the
    /// connection takes now.
    ///
    /// # Errors
    /// Offline only: Redis unreachable past the timeout, a record refused,
    /// or authentication failed after a reconnection.
    pub fn write_lines(&mut self, block: &[u8]) -> io::Result<()> {
        self.pending.extend_from_slice(block);
        self.drain()?;
        // Live, what Redis did not take now waits within the budget.
        if self.target.live {
            self.evict_over_budget();
        }
        Ok(())
    }

    /// Sends what is held (live: one attempt if the backoff allows it).
    ///
    /// # Errors
    /// As [`RedisSink::write_lines`].
    pub fn flush(&mut self) -> io::Result<()> {
        self.drain()
    }

    /// Records acknowledged by Redis so far.
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// Records dropped (buffer full) or refused by Redis since the last
    /// call.
    pub fn take_dropped(&mut self) -> u64 {
        std::mem::take(&mut self.dropped)
    }

    /// Records still waiting for Redis.
    pub fn held(&self) -> u64 {
        lines(&self.pending[self.head..])
    }

    /// Live: drops the oldest held records until the buffer fits its
    /// budget (never the newest evidence first).
    fn evict_over_budget(&mut self) {
        let budget = usize::try_from(self.target.config.buffer.0).unwrap_or(usize::MAX);
        while self.pending.len() - self.head > budget {
            let rest = &self.pending[self.head..];
            let end = memchr::memchr(b'\n', rest).map_or(rest.len(), |i| i + 1);
            self.head += end;
            self.dropped += 1;
        }
        self.compact();
    }

    fn compact(&mut self) {
        if self.head == self.pending.len() {
            self.pending.clear();
            self.head = 0;
        } else if self.head > self.pending.len() / 2 {
            self.pending.drain(..self.head);
            self.head = 0;
        }
    }

    /// Sends held records batch by batch until none is left, or (live) the
    /// connection is down and the backoff says wait.
    fn drain(&mut self) -> io::Result<()> {
        loop {
            if self.conn.is_none() {
                if self.target.live && Instant::now() < self.next_try {
                    return Ok(());
                }
                match self.connect() {
                    Ok(c) => self.conn = Some(c),
                    Err(e) => {
                        self.wait_or_fail(e)?;
                        if self.target.live {
                            return Ok(());
                        }
                        continue;
                    }
                }
            }
            if self.head == self.pending.len() {
                self.compact();
                return Ok(());
            }
            self.send_batch()?;
        }
    }

    /// Sends one batch from `head`; advances past what Redis answered.
    fn send_batch(&mut self) -> io::Result<()> {
        let c = &self.target.config;
        let max = if c.pipelining.enabled {
            c.pipelining.batch_size.max(1)
        } else {
            1
        };
        let mut pipe = redis::pipe();
        let mut end = self.head;
        let mut n = 0usize;
        while n < max && end < self.pending.len() {
            let rest = &self.pending[end..];
            let len = memchr::memchr(b'\n', rest).unwrap_or(rest.len());
            let record = &rest[..len];
            end += (len + 1).min(rest.len());
            if record.is_empty() {
                continue;
            }
            let cmd = pipe.cmd(c.mode.command()).arg(&c.key);
            if c.mode == RedisMode::Stream {
                if c.stream_maxlen > 0 {
                    cmd.arg("MAXLEN")
                        .arg(if c.stream_trim_exact { "=" } else { "~" })
                        .arg(c.stream_maxlen);
                }
                cmd.arg("*").arg("eve");
            }
            cmd.arg(record);
            n += 1;
        }
        let Some(conn) = self.conn.as_mut() else {
            return Ok(());
        };
        match pipe
            .ignore_errors()
            .query::<Vec<redis::RedisResult<Value>>>(conn)
        {
            Ok(replies) => {
                self.up();
                self.head = end;
                let mut refused = 0u64;
                let mut first = None;
                for r in replies {
                    match r {
                        Ok(_) => self.delivered += 1,
                        Err(e) => {
                            refused += 1;
                            first.get_or_insert(e);
                        }
                    }
                }
                if let Some(e) = first {
                    let msg = format!(
                        "redis {} refused {refused} EVE record{}: {e}",
                        self.target.address(),
                        if refused == 1 { "" } else { "s" }
                    );
                    if !self.target.live {
                        return Err(io::Error::other(msg));
                    }
                    self.dropped += refused;
                    if !std::mem::replace(&mut self.refusal_reported, true) {
                        eprintln!("wardwatch: {msg}; counting them as dropped");
                    }
                }
                Ok(())
            }
            // The batch stays held and is sent again after reconnecting.
            Err(e) => {
                self.conn = None;
                self.wait_or_fail(e)
            }
        }
    }

    /// Connects and checks the server answers `PING`, so that a missing
    /// password (`NOAUTH`) is found before any record is sent.
    fn connect(&self) -> redis::RedisResult<redis::Connection> {
        let t = Duration::from_secs(self.target.config.timeout.clamp(1, 5));
        let mut conn = self.client.get_connection_with_timeout(t)?;
        conn.set_read_timeout(Some(t))?;
        conn.set_write_timeout(Some(t))?;
        redis::cmd("PING").query::<Value>(&mut conn)?;
        Ok(conn)
    }

    /// Redis answered a batch: it is back, if it was away.
    fn up(&mut self) {
        self.backoff = FIRST_BACKOFF;
        if let Some((since, _)) = self.down.take() {
            eprintln!(
                "wardwatch: redis {} reachable again after {:.1} s; {} EVE record{} held",
                self.target.address(),
                since.elapsed().as_secs_f64(),
                self.held(),
                if self.held() == 1 { "" } else { "s" }
            );
        }
    }

    /// After a failed connection or exchange: an authentication failure is
    /// an error; otherwise remember since when Redis is down, and offline
    /// sleep the backoff, or fail once down for longer than `timeout`.
    fn wait_or_fail(&mut self, e: redis::RedisError) -> io::Result<()> {
        let addr = self.target.address();
        if is_auth_failure(&e) {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "redis {addr}: authentication failed ({e}); check outputs.eve.redis.password"
                ),
            ));
        }
        let now = Instant::now();
        let since = match &self.down {
            Some((since, _)) => *since,
            None => {
                eprintln!(
                    "wardwatch: redis {addr} unreachable ({e}); {}",
                    if self.target.live {
                        "holding EVE records and retrying"
                    } else {
                        "waiting for it"
                    }
                );
                now
            }
        };
        self.down = Some((since, e.to_string()));
        let limit = Duration::from_secs(self.target.config.timeout);
        if !self.target.live {
            if now.duration_since(since) >= limit {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "redis {addr} unreachable for {} s ({e}); {} EVE record{} not written \
                         (outputs.eve.redis.timeout)",
                        limit.as_secs(),
                        self.held(),
                        if self.held() == 1 { "" } else { "s" }
                    ),
                ));
            }
            std::thread::sleep(self.backoff);
        }
        self.next_try = now + self.backoff;
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        Ok(())
    }
}

impl RedisMode {
    fn command(self) -> &'static str {
        match self {
            RedisMode::List => "LPUSH",
            RedisMode::Rpush => "RPUSH",
            RedisMode::Channel => "PUBLISH",
            RedisMode::Stream => "XADD",
        }
    }
}

fn is_auth_failure(e: &redis::RedisError) -> bool {
    e.kind() == redis::ErrorKind::AuthenticationFailed
        || matches!(e.code(), Some("WRONGPASS" | "NOAUTH" | "NOPERM"))
}

fn lines(b: &[u8]) -> u64 {
    memchr::memchr_iter(b'\n', b).count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_take_suricata_names_and_aliases() {
        for (text, mode) in [
            ("list", RedisMode::List),
            ("lpush", RedisMode::List),
            ("rpush", RedisMode::Rpush),
            ("channel", RedisMode::Channel),
            ("publish", RedisMode::Channel),
            ("stream", RedisMode::Stream),
            ("xadd", RedisMode::Stream),
        ] {
            let c: RedisConfig = serde_norway::from_str(&format!("mode: {text}")).unwrap();
            assert_eq!(c.mode, mode, "{text}");
        }
        assert!(serde_norway::from_str::<RedisConfig>("mode: lpop").is_err());
    }

    #[test]
    fn suricata_hyphenated_names_parse() {
        let c: RedisConfig = serde_norway::from_str(
            "server: /run/redis.sock\npipelining: {enabled: true, batch-size: 10}\n\
             stream-maxlen: 5\nstream-trim-exact: true\npassword: s3cret\n",
        )
        .unwrap();
        assert_eq!(c.pipelining.batch_size, 10);
        assert_eq!(c.stream_maxlen, 5);
        assert!(c.stream_trim_exact);
        let t = RedisTarget {
            config: c,
            live: true,
        };
        assert_eq!(t.address(), "/run/redis.sock");
        assert!(!format!("{t:?}").contains("s3cret"));
    }

    #[test]
    fn live_buffer_over_budget_drops_oldest_records_and_counts_them() {
        // Nothing listens on port 1 of loopback: the sink stays disconnected.
        let mut s = RedisSink::open(&RedisTarget {
            config: RedisConfig {
                port: 1,
                buffer: ByteSize(20),
                ..RedisConfig::default()
            },
            live: true,
        })
        .unwrap();
        s.write_lines(b"{\"n\":1}\n{\"n\":2}\n").unwrap();
        assert_eq!((s.held(), s.take_dropped()), (2, 0));
        s.write_lines(b"{\"n\":3}\n").unwrap();
        assert_eq!((s.held(), s.take_dropped()), (2, 1));
        assert_eq!(&s.pending[s.head..], b"{\"n\":2}\n{\"n\":3}\n");
    }

    #[test]
    fn offline_unreachable_past_timeout_is_an_error_naming_the_server() {
        let e = RedisSink::open(&RedisTarget {
            config: RedisConfig {
                port: 1,
                timeout: 0,
                ..RedisConfig::default()
            },
            live: false,
        })
        .err()
        .unwrap();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(
            e.to_string().contains("redis 127.0.0.1:1 unreachable"),
            "{e}"
        );
    }
}
