//! Writes the evasion variants of a capture (`tests/common/evasion.rs`,
//! described in `pcaps/README.md`, "Evasion variants") to a directory, for
//! inspection with tshark or a replay with wardwatch.
//!
//! Usage: `cargo run --example evasion -- IN.pcap OUTDIR [--split-cap BYTES]
//! [--seed N] [VARIANT...]` — writes `OUTDIR/<capture>.<variant>.pcap` for
//! every variant, or only those named.

#[path = "../tests/common/evasion.rs"]
mod evasion;

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use evasion::{Options, Pcap, Variant};

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let mut opts = Options::default();
    let mut pos: Vec<String> = Vec::new();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--split-cap" => {
                opts.split_cap = args.next().context("--split-cap BYTES")?.parse()?;
            }
            "--seed" => opts.seed = args.next().context("--seed N")?.parse()?,
            _ => pos.push(a),
        }
    }
    if pos.len() < 2 {
        bail!("usage: evasion IN.pcap OUTDIR [--split-cap BYTES] [--seed N] [VARIANT...]");
    }
    let input = PathBuf::from(&pos[0]);
    let outdir = PathBuf::from(&pos[1]);
    let mut variants = Vec::new();
    for name in &pos[2..] {
        match Variant::from_name(name) {
            Some(v) => variants.push(v),
            None => bail!("unknown variant {name}"),
        }
    }
    if variants.is_empty() {
        variants = Variant::ALL.to_vec();
    }
    let bytes = std::fs::read(&input).with_context(|| input.display().to_string())?;
    let cap = Pcap::parse(&bytes).map_err(anyhow::Error::msg)?;
    std::fs::create_dir_all(&outdir)?;
    let stem = input
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("capture");
    for v in variants {
        let out = v.apply(&cap, &opts);
        let path = outdir.join(format!("{stem}.{}.pcap", v.name()));
        std::fs::write(&path, out.write()).with_context(|| path.display().to_string())?;
        println!("{} packets -> {}", out.packets.len(), path.display());
    }
    Ok(())
}
