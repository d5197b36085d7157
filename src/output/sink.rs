//! Where EVE lines go: a file in the log directory, stdout, or a Unix
//! stream socket. The writer
//! thread receives whole lines already serialised by the workers, so
//! writing is a plain copy; the channel in front of it is bounded, so a
//! slow disk slows the readers down (offline) instead of growing memory.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// An EVE destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Stdout,
    /// Appended to, as Suricata does with `eve.json`.
    File(PathBuf),
    /// A listening Unix stream socket that wardwatch connects to (Suricata's
    /// `unix_stream` EVE output): `--eve unix:/run/x.sock`. Live capture
    /// drops (and counts) lines while the reader is absent or too slow
    /// rather than growing memory or stalling the capture.
    Unix(PathBuf),
}

/// How long a write to a Unix-socket reader may block before the reader
/// counts as stalled (the connection is dropped and retried later).
pub const UNIX_WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// An open destination.
pub struct Sink {
    w: BufWriter<Box<dyn Write + Send>>,
    lines: u64,
}

impl Sink {
    /// Opens the target (creating the file, appending to an existing one).
    ///
    /// # Errors
    /// The file cannot be created or opened for appending.
    pub fn open(target: &Target) -> io::Result<Sink> {
        let w: Box<dyn Write + Send> = match target {
            Target::Stdout => Box::new(io::stdout()),
            Target::File(p) => Box::new(open_append(p)?),
            Target::Unix(p) => {
                let c = std::os::unix::net::UnixStream::connect(p)
                    .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", p.display())))?;
                c.set_write_timeout(Some(UNIX_WRITE_TIMEOUT))?;
                Box::new(c)
            }
        };
        Ok(Sink {
            w: BufWriter::with_capacity(1 << 20, w),
            lines: 0,
        })
    }

    /// Writes a block of complete lines.
    ///
    /// # Errors
    /// The underlying write failed (disk full, closed pipe).
    pub fn write_lines(&mut self, block: &[u8]) -> io::Result<()> {
        self.lines += block.iter().filter(|&&b| b == b'\n').count() as u64;
        self.w.write_all(block)
    }

    /// Lines written so far.
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// # Errors
    /// The final write failed.
    pub fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }
}

fn open_append(p: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(p)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", p.display())))
}
