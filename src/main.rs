//! The `wardwatch` command: parses the command line and configuration,
//! wires the pipeline, prints a summary and maps errors to exit codes.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context, Result};

/// mimalloc: the EVE records of busy flows allocate many small strings and
/// maps; the system allocator spent a fifth of the run in malloc/free
/// ([`wardwatch::alloc`]).
#[global_allocator]
static GLOBAL: wardwatch::alloc::Alloc = wardwatch::alloc::Alloc;
use clap::Parser;

use wardwatch::app::{AppProto, PROTOCOLS};
use wardwatch::capture::bpf::Filter;
use wardwatch::capture::{Buffer, Reader};
use wardwatch::config::Config;
use wardwatch::detect::{Engine, LoadReport};
use wardwatch::output::redis::RedisTarget;
use wardwatch::output::sink::{self, Target};
use wardwatch::pipeline::rules::load_engine;
use wardwatch::pipeline::{self, human_bytes, RunOptions, RunReport};

/// Exit status when a capture was damaged: events before the damage were
/// written, reading stopped there.
const EXIT_DAMAGED: u8 = 3;
/// Exit status when `--fail-on` saw an alert of its severity or worse.
const EXIT_ALERTED: u8 = 4;

/// What `wardwatch` alone prints (the four ways to run it), and clap's
/// usage line.
const USAGE: &str = "\
wardwatch -r FILE [-r FILE…] [OPTIONS]   analyse captures (pcap, pcapng; - for stdin)
       wardwatch -i IFACE [OPTIONS]             capture live on a mirror port
       wardwatch --demo [OPTIONS]               analyse the built-in demo capture
       wardwatch -T [-c FILE] [-S RULES]        check the configuration and rules";

/// The capture `--demo` analyses: real MQTT, TLS, DICOM and HL7 exchanges
/// of the corpus, merged by `pcaps/generate.sh` (see `pcaps/README.md`).
const DEMO_CAPTURE: &[u8] = include_bytes!("../pcaps/demo.pcap");

/// Passive network sensor for hospital networks: reads pcap/pcapng captures,
/// tracks flows, reassembles TCP, recognises MQTT, DICOM, HL7 and TLS, and
/// writes Suricata-compatible EVE JSON.
#[derive(Parser, Debug)]
#[command(
    name = "wardwatch",
    version,
    override_usage = USAGE,
    after_help = "Examples:\n  \
    wardwatch -r capture.pcap -l /var/log/wardwatch      EVE to /var/log/wardwatch/eve.json\n  \
    wardwatch -r a.pcap -r b.pcapng --eve -               EVE lines on stdout\n  \
    wardwatch -i eth1 -l /var/log/wardwatch                live capture on a mirror port\n  \
    wardwatch -i eth1 --eve redis://10.0.0.5:6379/suricata live, EVE to a central Redis\n  \
    tcpdump -i eth1 -w - | wardwatch -r - -l .            read a pipe\n\n\
    Exit status: 0 success (also when the EVE reader closed standard output);\n\
    1 error (unreadable or empty input, bad configuration, output not writable,\n\
    Redis unreachable past outputs.eve.redis.timeout or refusing the password);\n\
    2 bad command line; 3 a capture was truncated or corrupt (events before the damage\n\
    were written); 4 --fail-on: an alert of that severity or worse was raised."
)]
struct Cli {
    /// Capture file to read (pcap or pcapng; `-` for standard input). Repeat to
    /// read several files in order as one capture.
    #[arg(
        short = 'r',
        long = "read-file",
        value_name = "FILE",
        required_unless_present_any = ["demo", "interfaces", "test_config"]
    )]
    read_files: Vec<PathBuf>,

    /// Capture live from this network interface (Linux AF_PACKET ring, needs
    /// CAP_NET_RAW; or libpcap: `capture.method: libpcap`, builds with
    /// `--features libpcap`, the only method off Linux). Repeat for several interfaces (both sides of a TAP).
    /// Runs until SIGINT or SIGTERM, then ends every flow, writes the final
    /// stats and exits 0; SIGHUP reopens the EVE file (logrotate) and reloads
    /// the rules and lists (a ruleset with errors is refused, the running one
    /// kept).
    #[arg(
        short = 'i',
        long = "interface",
        value_name = "IFACE",
        conflicts_with_all = ["read_files", "demo"]
    )]
    interfaces: Vec<String>,

    /// Analyse the capture built into the binary (MQTT and DICOM traffic of a
    /// modelled hospital, from pcaps/demo.pcap) instead of reading files.
    #[arg(long = "demo", conflicts_with = "read_files")]
    demo: bool,

    /// Directory for `eve.json` (appended to, created if missing).
    #[arg(short = 'l', long = "log-dir", value_name = "DIR", default_value = ".")]
    log_dir: PathBuf,

    /// Where EVE goes instead of DIR/eve.json (or outputs.eve in the
    /// configuration): a file path, `-` for stdout, `unix:PATH` to connect to
    /// a listening Unix stream socket, or `redis://HOST[:PORT][/KEY]` (mode,
    /// password… from outputs.eve.redis).
    #[arg(
        long = "eve",
        value_name = "FILE|-|unix:PATH|redis://HOST[:PORT][/KEY]"
    )]
    eve: Option<PathBuf>,

    /// Worker threads; flows are spread over them by a symmetric hash.
    /// Default: the number of CPU cores.
    #[arg(long = "workers", value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    workers: Option<u16>,

    /// Configuration file (YAML). Every setting has a working default.
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    config: Option<PathBuf>,

    /// Rule file (Suricata syntax) to use instead of the configured ones or
    /// the built-in rules/medical.rules. Repeat for several files.
    #[arg(short = 'S', long = "rules", value_name = "FILE")]
    rules: Vec<PathBuf>,

    /// Check the configuration and ruleset, report every bad rule with its
    /// file and line, and exit (0: all rules load; 1: some do not).
    #[arg(short = 'T', long = "test-config")]
    test_config: bool,

    /// Capture filter in tcpdump syntax (`-f "tcp port 1883"`), compiled by
    /// libpcap: live, the kernel drops what it rejects; reading files, the
    /// reader does (counted as capture.filtered). Needs a build with
    /// `--features libpcap`.
    #[arg(short = 'f', long = "filter", value_name = "EXPR")]
    filter: Option<String>,

    /// No progress lines and no summary on stderr.
    #[arg(short = 'q', long = "quiet")]
    quiet: bool,

    /// Write the asset inventory (one entry per host of the home network)
    /// to FILE at the end: CSV when FILE ends in `.csv`, else JSON
    /// (outputs.asset.inventory).
    #[arg(long = "inventory", value_name = "FILE.json|FILE.csv")]
    inventory: Option<PathBuf>,

    /// A previous inventory (JSON or CSV) to compare with: asset records
    /// and the inventory say which hosts are new, which AE titles moved,
    /// which devices changed (asset.baseline).
    #[arg(long = "inventory-baseline", value_name = "FILE")]
    inventory_baseline: Option<PathBuf>,

    /// Exit with status 4 when an alert of this severity or worse was
    /// raised (1 is the worst; 3 is an alert without classtype), for
    /// scripted assessments.
    #[arg(long = "fail-on", value_name = "SEVERITY", value_parser = clap::value_parser!(u8).range(1..))]
    fail_on: Option<u8>,
}

/// The configuration `--demo` uses unless `-c` names one: the modelled
/// hospital of the demo capture (address groups, allowed countries, known
/// AE titles).
const DEMO_CONFIG: &str = include_str!("../pcaps/demo.yaml");

fn main() -> ExitCode {
    wardwatch::alloc::tune();
    wardwatch::memcap::no_transparent_huge_pages();
    if std::env::args_os().len() == 1 {
        eprintln!("Usage: {USAGE}\n\nwardwatch --help lists every option.");
        return ExitCode::from(2);
    }
    let cli = Cli::parse();
    if cli.test_config {
        return match test_config(&cli) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::FAILURE,
            Err(e) => {
                eprintln!("wardwatch: error: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    match run(&cli) {
        Ok(report) => {
            if !cli.quiet {
                eprintln!("{}", summary(&report));
            }
            let mut code = ExitCode::SUCCESS;
            let d = &report.stats.decode;
            if d.unsupported_link > 0 {
                eprintln!(
                    "wardwatch: warning: {} packet{} of link type {} (and maybe others) not decoded: \
                     wardwatch reads Ethernet, Linux SLL/SLL2, raw IP and BSD loopback captures \
                     (counted as decoder.unsupported_link)",
                    d.unsupported_link,
                    if d.unsupported_link == 1 { "" } else { "s" },
                    d.unsupported_link_type
                );
            }
            for i in &report.inputs {
                if let Some(e) = &i.error {
                    eprintln!(
                        "wardwatch: {}: {e}; stopped reading there",
                        i.path.display()
                    );
                    code = ExitCode::from(EXIT_DAMAGED);
                }
            }
            // A finding outranks damage: that is what --fail-on asks about.
            if let Some(sev) = cli.fail_on {
                let n = sink::alerts_written(sev);
                if n > 0 {
                    if !cli.quiet {
                        eprintln!(
                            "wardwatch: {n} alert{} of severity {sev} or worse (--fail-on {sev})",
                            if n == 1 { "" } else { "s" }
                        );
                    }
                    code = ExitCode::from(EXIT_ALERTED);
                }
            }
            code
        }
        // A reader that stops reading (`--eve - | head -1`) ends the run
        // quietly, as it does for grep or tshark.
        Err(e) if format!("{e:#}").contains(sink::STDOUT_CLOSED) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wardwatch: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The configuration and the directory its relative paths start from.
fn load_config(cli: &Cli) -> Result<(Config, PathBuf)> {
    Ok(match &cli.config {
        Some(p) => {
            let base = p
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
            (Config::load(p)?, base)
        }
        None if cli.demo => (
            Config::parse(DEMO_CONFIG).context("built-in demo configuration")?,
            PathBuf::from("."),
        ),
        None => (Config::default(), PathBuf::from(".")),
    })
}

/// Loads the ruleset, printing every bad rule (and, unless quiet, the
/// warnings) on stderr. A dataset the built-in rules use but no
/// configuration names (`known-ae-titles` on a default setup) is not a
/// warning: `-T` notes it once on stdout.
fn load_rules(cli: &Cli, cfg: &Config, base: &Path) -> Result<(Engine, LoadReport)> {
    let (engine, report) = load_engine(cfg, base, &cli.rules).context("loading detection")?;
    for e in &report.errors {
        eprintln!("wardwatch: rule not loaded: {e}");
    }
    if !cli.quiet {
        for w in &report.warnings {
            if unconfigured_dataset(cfg, w) {
                continue;
            }
            eprintln!("wardwatch: warning: {w}");
        }
    }
    Ok((engine, report))
}

/// A warning about a dataset that rules use and the configuration does not
/// define, while the configuration defines no dataset at all (a default
/// setup: the built-in rule for known AE titles waits for a list).
fn unconfigured_dataset(cfg: &Config, warning: &str) -> bool {
    cfg.detect.datasets.is_empty() && warning.contains("is not configured (detect.datasets)")
}

/// `-T`: true when every rule loads.
fn test_config(cli: &Cli) -> Result<bool> {
    let (cfg, base) = load_config(cli)?;
    cfg.capture
        .check()
        .map_err(|e| anyhow::anyhow!("configuration: {e}"))?;
    let (engine, report) = load_rules(cli, &cfg, &base)?;
    for w in report
        .warnings
        .iter()
        .filter(|w| unconfigured_dataset(&cfg, w))
    {
        println!("wardwatch: note: {w}");
    }
    if engine.has_tx_rules(wardwatch::app::AppProto::Asset) {
        if !cfg.outputs.asset.enabled {
            println!("wardwatch: note: rules on the asset hook never match: the inventory is off (outputs.asset.enabled)");
        } else if cli.inventory_baseline.is_none() && cfg.asset.baseline.is_none() {
            println!("wardwatch: note: rules on the asset hook that test asset.drift or asset.status never match without a baseline inventory (--inventory-baseline or asset.baseline)");
        }
    }
    println!(
        "wardwatch: {} rule{} loaded, {} not loaded; {}",
        engine.rule_count(),
        if engine.rule_count() == 1 { "" } else { "s" },
        report.errors.len(),
        if report.errors.is_empty() {
            "configuration OK"
        } else {
            "ruleset has errors"
        }
    );
    Ok(report.errors.is_empty())
}

fn run(cli: &Cli) -> Result<RunReport> {
    let (mut cfg, base) = load_config(cli)?;
    if let Some(p) = &cli.inventory {
        cfg.outputs.asset.inventory = Some(p.clone());
    }
    if let Some(p) = &cli.inventory_baseline {
        cfg.asset.baseline = Some(p.clone());
    } else if let Some(b) = cfg.asset.baseline.take() {
        cfg.asset.baseline = Some(base.join(b));
    }
    // The inventory's settings are checked (and a baseline read) before
    // any packet is.
    wardwatch::asset::Hub::new(&cfg).map_err(|e| anyhow::anyhow!("asset inventory: {e}"))?;
    let filter = cli
        .filter
        .as_deref()
        .map(|e| Filter::new(e, cfg.capture.snaplen))
        .transpose()?;
    let (engine, _) = load_rules(cli, &cfg, &base)?;
    let engine = Arc::new(engine);
    if cli
        .read_files
        .iter()
        .filter(|p| p.as_os_str() == "-")
        .count()
        > 1
    {
        bail!("standard input (`-r -`) can be read only once");
    }
    let live = !cli.interfaces.is_empty();
    let eve = match &cli.eve {
        Some(p) if p.as_os_str() == "-" => Target::Stdout,
        Some(p) if p.to_string_lossy().starts_with("unix:") => Target::Unix(PathBuf::from(
            p.to_string_lossy().trim_start_matches("unix:").to_string(),
        )),
        Some(p) if p.to_string_lossy().starts_with("redis://") => {
            let mut config = cfg.outputs.eve.redis.clone();
            redis_url(&p.to_string_lossy(), &mut config)?;
            Target::Redis(Box::new(RedisTarget { config, live }))
        }
        Some(p) => Target::File(p.clone()),
        None => {
            let t = cfg.outputs.eve.target(&cli.log_dir, live);
            if matches!(t, Target::File(_)) {
                std::fs::create_dir_all(&cli.log_dir).with_context(|| {
                    format!("cannot create log directory {}", cli.log_dir.display())
                })?;
            }
            t
        }
    };
    let workers = match cli.workers {
        Some(n) => usize::from(n),
        None => std::thread::available_parallelism().map_or(1, usize::from),
    };
    let mut opts = RunOptions {
        inputs: cli.read_files.clone(),
        workers,
        eve,
        progress: !cli.quiet,
        engine,
        filter,
        exiting: true,
    };
    if !cli.interfaces.is_empty() {
        return run_live(cli, &cfg, &base, workers, opts);
    }
    let readers = if cli.demo {
        let demo = Reader::from_buffer(Buffer::Owned(DEMO_CAPTURE.to_vec()))
            .map_err(|e| anyhow::anyhow!("built-in demo capture: {e}"))?;
        opts.inputs = vec![PathBuf::from("(built-in demo capture)")];
        vec![demo]
    } else {
        pipeline::open_inputs(&opts.inputs)?
    };
    Ok(pipeline::run(&cfg, &opts, readers)?)
}

/// `redis://HOST[:PORT][/KEY]` (an IPv6 host in brackets) into `config`.
fn redis_url(url: &str, config: &mut wardwatch::output::redis::RedisConfig) -> Result<()> {
    let rest = url.trim_start_matches("redis://");
    let (hostport, key) = rest.split_once('/').unwrap_or((rest, ""));
    let (host, port) = match hostport.strip_prefix('[') {
        Some(v6) => {
            let (h, after) = v6
                .split_once(']')
                .with_context(|| format!("--eve {url}: missing `]` after the IPv6 address"))?;
            (h, after.strip_prefix(':'))
        }
        None => match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        },
    };
    if host.is_empty() || host.contains('@') {
        bail!("--eve {url}: expected redis://HOST[:PORT][/KEY] (a password goes in outputs.eve.redis.password)");
    }
    config.server = host.to_string();
    if let Some(p) = port {
        config.port = p
            .parse()
            .with_context(|| format!("--eve {url}: bad port {p:?}"))?;
    }
    if !key.is_empty() {
        config.key = key.to_string();
    }
    Ok(())
}

#[cfg(any(target_os = "linux", all(feature = "libpcap", unix)))]
fn run_live(
    cli: &Cli,
    cfg: &Config,
    base: &Path,
    workers: usize,
    opts: RunOptions,
) -> Result<RunReport> {
    use std::sync::atomic::AtomicBool;
    use wardwatch::pipeline::live::Reload;
    use wardwatch::pipeline::rules::SharedEngine;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // A second signal while shutting down exits at once (status 1).
        signal_hook::flag::register_conditional_shutdown(sig, 1, Arc::clone(&stop))
            .context("installing signal handlers")?;
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .context("installing signal handlers")?;
    }
    // SIGHUP reopens the EVE file (logrotate's postrotate) and reloads the
    // rules and lists.
    let reopen = Arc::new(AtomicBool::new(false));
    let reload_flag = Arc::new(AtomicBool::new(false));
    for flag in [&reopen, &reload_flag] {
        signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(flag))
            .context("installing signal handlers")?;
    }
    let (config_path, rule_files) = (cli.config.clone(), cli.rules.clone());
    let base = base.to_path_buf();
    let load = move || -> std::result::Result<(Engine, LoadReport), String> {
        // The configuration is read again for its detection part only: the
        // rest (rings, workers) cannot change without a restart.
        let cfg = match &config_path {
            Some(p) => Config::load(p).map_err(|e| e.to_string())?,
            None => Config::default(),
        };
        load_engine(&cfg, &base, &rule_files).map_err(|e| e.to_string())
    };
    let opts = pipeline::live::LiveOptions {
        ifaces: cli.interfaces.clone(),
        workers,
        eve: opts.eve,
        stop,
        reopen: Some(reopen),
        engine: Arc::new(SharedEngine::new(opts.engine)),
        reload: Some(Reload {
            flag: reload_flag,
            load: Arc::new(load),
        }),
        filter: opts.filter,
    };
    if !cli.quiet {
        eprintln!(
            "wardwatch: capturing on {} ({:?}) with {workers} worker{}; SIGINT or SIGTERM stops",
            cli.interfaces.join(", "),
            cfg.capture.method.name(),
            if workers == 1 { "" } else { "s" }
        );
    }
    Ok(pipeline::live::run_live(cfg, &opts)?)
}

#[cfg(not(any(target_os = "linux", all(feature = "libpcap", unix))))]
fn run_live(_: &Cli, _: &Config, _: &Path, _: usize, _: RunOptions) -> Result<RunReport> {
    bail!(
        "live capture (-i) needs Linux AF_PACKET or a build with --features libpcap; \
         read a pipe instead: tcpdump -w - | wardwatch -r -"
    )
}

/// The one-paragraph account of a run printed on stderr.
fn summary(r: &RunReport) -> String {
    let s = &r.stats;
    let packets: u64 = r.inputs.iter().map(|i| i.packets).sum();
    let bytes: u64 = r.inputs.iter().map(|i| i.bytes).sum();
    let secs = r.elapsed.as_secs_f64().max(1e-6);
    let decode_errors: u64 = s
        .decode
        .counters()
        .iter()
        .filter(|(k, _)| k.starts_with("decoder.event.") || *k == "decoder.invalid")
        .map(|(_, n)| n)
        .sum();
    let f = &s.flow;
    let apps = PROTOCOLS
        .iter()
        .map(|p| format!("{} {}", p.name(), s.app_flows(p.proto())))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "wardwatch: read {} input{} ({}, {packets} packets) in {:.2} s ({:.2} M packets/s); \
         {} flows (TCP {}, UDP {}, ICMP {}), app protocols: {apps}, \
         unrecognised {}; {decode_errors} malformed packets; {} reassembly gaps, {} out-of-order \
         segments; {} flows evicted at the flow cap; {} EVE records written.",
        r.inputs.len(),
        if r.inputs.len() == 1 { "" } else { "s" },
        human_bytes(bytes),
        secs,
        packets as f64 / secs / 1e6,
        f.total,
        f.tcp,
        f.udp,
        f.icmpv4 + f.icmpv6,
        s.app_flows(AppProto::Failed),
        s.stream.gaps,
        s.stream.ooo_segments,
        f.memcap,
        r.eve_lines
    ) + &r
        .capture
        .map(|c| {
            format!(
                " Kernel: {} packets, {} dropped.",
                c.kernel_packets, c.kernel_drops
            )
        })
        .unwrap_or_default()
}
