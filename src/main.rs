//! The `wardwatch` command: parses the command line and configuration,
//! wires the pipeline, prints a summary and maps errors to exit codes.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};

/// mimalloc: the EVE records of busy flows allocate many small strings and
/// maps; the system allocator spent a fifth of the run in malloc/free.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use clap::Parser;

use wardwatch::capture::{Buffer, Reader};
use wardwatch::config::Config;
use wardwatch::output::sink::Target;
use wardwatch::pipeline::{self, human_bytes, RunOptions, RunReport};

/// Exit status when a capture was damaged: events before the damage were
/// written, reading stopped there.
const EXIT_DAMAGED: u8 = 3;

/// The capture `--demo` analyses: real MQTT and DICOM exchanges of the
/// corpus, merged by `pcaps/generate.sh` (see `pcaps/README.md`).
const DEMO_CAPTURE: &[u8] = include_bytes!("../pcaps/demo.pcap");

/// Passive network sensor for hospital networks: reads pcap/pcapng captures,
/// tracks flows, reassembles TCP, recognises MQTT and DICOM, and writes
/// Suricata-compatible EVE JSON.
#[derive(Parser, Debug)]
#[command(
    name = "wardwatch",
    version,
    after_help = "Examples:\n  \
    wardwatch -r capture.pcap -l /var/log/wardwatch      EVE to /var/log/wardwatch/eve.json\n  \
    wardwatch -r a.pcap -r b.pcapng --eve -               EVE lines on stdout\n  \
    wardwatch -i eth1 -l /var/log/wardwatch                live capture on a mirror port\n  \
    tcpdump -i eth1 -w - | wardwatch -r - -l .            read a pipe\n\n\
    Exit status: 0 success; 1 error (unreadable input or config, output not writable);\n\
    2 bad command line; 3 a capture was truncated or corrupt (events before the damage\n\
    were written)."
)]
struct Cli {
    /// Capture file to read (pcap or pcapng; `-` for standard input). Repeat to
    /// read several files in order as one capture.
    #[arg(
        short = 'r',
        long = "read-file",
        value_name = "FILE",
        required_unless_present_any = ["demo", "interfaces"]
    )]
    read_files: Vec<PathBuf>,

    /// Capture live from this network interface (Linux AF_PACKET ring, needs
    /// CAP_NET_RAW). Repeat for several interfaces (both sides of a TAP).
    /// Runs until SIGINT or SIGTERM, then ends every flow, writes the final
    /// stats and exits 0; SIGHUP reopens the EVE file (logrotate).
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

    /// Where EVE goes instead of DIR/eve.json: a file path, `-` for stdout, or
    /// `unix:PATH` to connect to a listening Unix stream socket.
    #[arg(long = "eve", value_name = "FILE|-|unix:PATH")]
    eve: Option<PathBuf>,

    /// Worker threads; flows are spread over them by a symmetric hash.
    /// Default: the number of CPU cores.
    #[arg(long = "workers", value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    workers: Option<u16>,

    /// Configuration file (YAML). Every setting has a working default.
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    config: Option<PathBuf>,

    /// No progress lines and no summary on stderr.
    #[arg(short = 'q', long = "quiet")]
    quiet: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(report) => {
            if !cli.quiet {
                eprintln!("{}", summary(&report));
            }
            let mut code = ExitCode::SUCCESS;
            for i in &report.inputs {
                if let Some(e) = &i.error {
                    eprintln!(
                        "wardwatch: {}: {e}; stopped reading there",
                        i.path.display()
                    );
                    code = ExitCode::from(EXIT_DAMAGED);
                }
            }
            code
        }
        Err(e) => {
            eprintln!("wardwatch: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> Result<RunReport> {
    let cfg = match &cli.config {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    if cli
        .read_files
        .iter()
        .filter(|p| p.as_os_str() == "-")
        .count()
        > 1
    {
        bail!("standard input (`-r -`) can be read only once");
    }
    let eve = match &cli.eve {
        Some(p) if p.as_os_str() == "-" => Target::Stdout,
        Some(p) if p.to_string_lossy().starts_with("unix:") => Target::Unix(PathBuf::from(
            p.to_string_lossy().trim_start_matches("unix:").to_string(),
        )),
        Some(p) => Target::File(p.clone()),
        None => {
            std::fs::create_dir_all(&cli.log_dir).with_context(|| {
                format!("cannot create log directory {}", cli.log_dir.display())
            })?;
            Target::File(cli.log_dir.join("eve.json"))
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
    };
    if !cli.interfaces.is_empty() {
        return run_live(cli, &cfg, workers, opts.eve);
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

#[cfg(target_os = "linux")]
fn run_live(cli: &Cli, cfg: &Config, workers: usize, eve: Target) -> Result<RunReport> {
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // A second signal while shutting down exits at once (status 1).
        signal_hook::flag::register_conditional_shutdown(sig, 1, Arc::clone(&stop))
            .context("installing signal handlers")?;
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .context("installing signal handlers")?;
    }
    // SIGHUP reopens the EVE file (logrotate's postrotate).
    let reopen = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&reopen))
        .context("installing signal handlers")?;
    let opts = pipeline::live::LiveOptions {
        ifaces: cli.interfaces.clone(),
        workers,
        eve,
        stop,
        reopen: Some(reopen),
    };
    if !cli.quiet {
        eprintln!(
            "wardwatch: capturing on {} with {workers} worker{}; SIGINT or SIGTERM stops",
            cli.interfaces.join(", "),
            if workers == 1 { "" } else { "s" }
        );
    }
    Ok(pipeline::live::run_live(cfg, &opts)?)
}

#[cfg(not(target_os = "linux"))]
fn run_live(_: &Cli, _: &Config, _: usize, _: Target) -> Result<RunReport> {
    bail!("live capture (-i) needs Linux AF_PACKET; read a pipe instead: tcpdump -w - | wardwatch -r -")
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
    format!(
        "wardwatch: read {} input{} ({}, {packets} packets) in {:.2} s ({:.2} M packets/s); \
         {} flows (TCP {}, UDP {}, ICMP {}), app protocols: mqtt {}, dicom {}, tls {}, \
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
        s.app[0],
        s.app[1],
        s.app[2],
        s.app[3],
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
