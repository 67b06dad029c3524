//! `JsonlSpanExporter`: each export call appends one line holding one OTLP/JSON `TracesData`.
//!
//! - the file is created `0600` (parent dirs `0700`), opened for appending; opening errors are
//!   start-up errors naming the path;
//! - each batch is serialised first (into a buffer reused across batches) and written with one
//!   `write_all`, then flushed, so a crash (even SIGKILL) loses at most the batch being written
//!   and leaves at worst one torn last line, which [`crate::reader::JsonlReader`] skips and
//!   counts;
//! - a failed write (disk full) fails that batch (counted by the sink), is logged once, and
//!   any partial bytes are truncated away so the next line starts clean;
//! - size-based rotation: before a write that would push the file past `max_bytes`,
//!   `traces.jsonl` → `traces.jsonl.1` → … → `traces.jsonl.<keep_files>` (oldest removed);
//! - a torn last line left by a crash (no final `\n`) is repaired on open: the next line starts
//!   on a line of its own, and the torn one stays for the reader to skip and count;
//! - before each batch the path is checked (one `stat`) to still name the open file: a file
//!   deleted or moved away by someone else is noticed, a new one is opened at the path and a
//!   warning logged, instead of writing on into a file nobody can see;
//! - shutdown is idempotent; exports after it return `AlreadyShutdown`. Nothing here panics.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

use llmtap_core::settings;

use crate::config::BatchSettings;
use crate::error::JsonlError;
use crate::otlp_json;

/// Default file, relative to the working directory ([`settings::DEFAULT_JSONL_PATH`]).
pub const DEFAULT_JSONL_PATH: &str = settings::DEFAULT_JSONL_PATH;
/// Default rotation threshold: 100 MiB ([`settings::JSONL_MAX_BYTES`]).
pub const DEFAULT_MAX_BYTES: u64 = settings::DEFAULT_JSONL_MAX_BYTES;
/// Default number of rotated files kept ([`settings::JSONL_KEEP`]).
pub const DEFAULT_KEEP_FILES: usize = settings::DEFAULT_JSONL_KEEP as usize;
/// Most rotated files [`parse_keep`] accepts: each rotation renames every kept file.
pub const MAX_KEEP_FILES: usize = settings::MAX_JSONL_KEEP as usize;
/// `LLMTAP_JSONL`: the JSONL file, or `off` (see [`parse_jsonl_path`]).
pub const ENV_JSONL: &str = settings::JSONL.env;
/// `LLMTAP_JSONL_MAX_BYTES`: rotate before the file would pass this size (`off`: never).
pub const ENV_JSONL_MAX_BYTES: &str = settings::JSONL_MAX_BYTES.env;
/// `LLMTAP_JSONL_KEEP`: rotated files kept (`0`: the old file is discarded on rotation).
pub const ENV_JSONL_KEEP: &str = settings::JSONL_KEEP.env;

/// A path-or-off setting (`LLMTAP_JSONL`, `--jsonl`): `off`, `none` or `false` in any case mean
/// no file; anything else is the path ([`settings::parse_path_or_off`]).
pub fn parse_jsonl_path(raw: &str) -> Option<PathBuf> {
    settings::parse_path_or_off(raw)
}

/// An `LLMTAP_JSONL_MAX_BYTES` value: `Some(None)` for `off` (never rotate), `Some(Some(n))`
/// for a size of at least 1 byte (`100MiB`, `500MB`, `1048576`), `None` when unusable.
pub fn parse_max_bytes(raw: &str) -> Option<Option<u64>> {
    settings::parse_size_or_off(raw)
}

/// An `LLMTAP_JSONL_KEEP` value: `0` to [`MAX_KEEP_FILES`]; `None` when unusable.
pub fn parse_keep(raw: &str) -> Option<usize> {
    settings::JSONL_KEEP
        .read_count(Some(raw), &[("", ""); 0])
        .ok()
}

/// Line buffer capacity kept between batches (512 proxy spans with content, the most
/// `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` usually asks for, is about 1 MiB; the default 64 far less).
const MAX_KEPT_LINE_CAPACITY: usize = 8 * 1024 * 1024;

/// Where and how the JSONL sink writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonlConfig {
    /// The live file; rotated files get `.1`, `.2`, … appended.
    pub path: PathBuf,
    /// Rotate before a write would make the file larger than this; `None` never rotates.
    pub max_bytes: Option<u64>,
    /// Rotated files kept (`0` = discard the old file on rotation).
    pub keep_files: usize,
    /// Batch processor settings (short delay: a span is on disk within 1 s of ending).
    pub batch: BatchSettings,
}

impl JsonlConfig {
    /// Defaults for `path`: 100 MiB rotation, 5 files kept, 500 ms schedule delay.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            max_bytes: Some(DEFAULT_MAX_BYTES),
            keep_files: DEFAULT_KEEP_FILES,
            batch: BatchSettings::jsonl_default(),
        }
    }

    /// The same, rotating at `max_bytes` (`None`: never) and keeping `keep_files` old files.
    pub fn with_rotation(mut self, max_bytes: Option<u64>, keep_files: usize) -> Self {
        self.max_bytes = max_bytes;
        self.keep_files = keep_files;
        self
    }
}

/// Span exporter writing OTLP/JSON lines; see the module docs for the guarantees.
#[derive(Debug)]
pub struct JsonlSpanExporter {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    path: PathBuf,
    file: Option<File>,
    /// Bytes in the live file (for rotation).
    size: u64,
    max_bytes: Option<u64>,
    keep_files: usize,
    /// Rotation only for regular files: never rename `/dev/stdout` or `/dev/full`.
    rotatable: bool,
    resource: Resource,
    /// The encoded line, kept between batches so a steady stream allocates nothing.
    line: Vec<u8>,
    shut_down: bool,
    write_error_logged: bool,
    rotate_error_logged: bool,
    reopen_error_logged: bool,
    /// A failed write left bytes we could not truncate, or the file ended in a torn line when
    /// opened: start the next write on a new line.
    needs_newline: bool,
    /// Device and inode of the open file, to notice the path naming another file (or none).
    identity: Option<FileId>,
}

/// A file's device and inode number.
type FileId = (u64, u64);

#[cfg(unix)]
fn file_id(meta: &fs::Metadata) -> Option<FileId> {
    use std::os::unix::fs::MetadataExt;
    Some((meta.dev(), meta.ino()))
}

#[cfg(not(unix))]
fn file_id(_meta: &fs::Metadata) -> Option<FileId> {
    None
}

/// Whether the regular file at `path`, `size` bytes long, ends in something other than `\n`
/// (a line torn by a crash mid-write).
fn ends_in_torn_line(path: &Path, size: u64) -> bool {
    if size == 0 {
        return false;
    }
    let mut last = [0u8; 1];
    File::open(path)
        .and_then(|mut f| {
            f.seek(SeekFrom::Start(size - 1))?;
            f.read_exact(&mut last)
        })
        .is_ok_and(|()| last[0] != b'\n')
}

/// What the sink needs to know about a file it just opened.
struct Opened {
    file: File,
    size: u64,
    rotatable: bool,
    torn: bool,
    identity: Option<FileId>,
}

fn open_checked(path: &Path) -> Result<Opened, JsonlError> {
    let file = open_append(path)?;
    let meta = file.metadata().ok();
    let size = meta.as_ref().map_or(0, fs::Metadata::len);
    let rotatable = meta.as_ref().is_some_and(fs::Metadata::is_file);
    Ok(Opened {
        torn: rotatable && ends_in_torn_line(path, size),
        identity: meta.as_ref().and_then(file_id),
        file,
        size,
        rotatable,
    })
}

impl JsonlSpanExporter {
    /// Creates parent directories and opens (or creates, mode 0600) the file for appending.
    /// A torn last line (a crash mid-write) is repaired by the first write.
    pub fn new(config: &JsonlConfig) -> Result<Self, JsonlError> {
        let opened = open_checked(&config.path)?;
        if opened.torn {
            tracing::warn!(path = %config.path.display(), "the JSONL file ends in a torn line (a crash mid-write?); new lines start after it");
        }
        Ok(Self {
            state: Mutex::new(State {
                path: config.path.clone(),
                file: Some(opened.file),
                size: opened.size,
                max_bytes: config.max_bytes,
                keep_files: config.keep_files,
                rotatable: opened.rotatable,
                resource: Resource::builder_empty().build(),
                line: Vec::new(),
                shut_down: false,
                write_error_logged: false,
                rotate_error_logged: false,
                reopen_error_logged: false,
                needs_newline: opened.torn,
                identity: opened.identity,
            }),
        })
    }

    /// The file this exporter appends to.
    pub fn path(&self) -> PathBuf {
        self.lock().path.clone()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // No code path panics while holding the lock; recover the state regardless.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_batch(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let mut state = self.lock();
        if state.shut_down {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        if batch.is_empty() {
            return Ok(());
        }
        let mut line = std::mem::take(&mut state.line);
        line.clear();
        let result = match otlp_json::encode_batch(&batch, &state.resource, &mut line) {
            Ok(()) => {
                state.reopen_if_replaced();
                state.rotate_if_needed(line.len() as u64);
                state.append(&line)
            }
            Err(e) => Err(OTelSdkError::InternalFailure(format!(
                "encode OTLP/JSON: {e}"
            ))),
        };
        // Keep a normal batch's buffer; give back the memory of an outsized one.
        if line.capacity() <= MAX_KEPT_LINE_CAPACITY {
            state.line = line;
        }
        result
    }
}

impl State {
    /// Switches to a freshly opened file at the path.
    fn adopt(&mut self, opened: Opened) {
        self.file = Some(opened.file);
        self.size = opened.size;
        self.needs_newline = opened.torn;
        self.identity = opened.identity;
    }

    /// One `stat` per batch: when the path no longer names the open file (deleted, moved away,
    /// replaced by someone else), open the file at the path again, so spans land where readers
    /// look. If that fails, keep the file we have (the spans are not lost, only misplaced).
    fn reopen_if_replaced(&mut self) {
        let Some(open_id) = self.identity.filter(|_| self.rotatable) else {
            return;
        };
        let path_id = fs::metadata(&self.path).ok().and_then(|m| file_id(&m));
        if path_id == Some(open_id) {
            return;
        }
        match open_checked(&self.path) {
            Ok(opened) => {
                tracing::warn!(path = %self.path.display(), "the JSONL file was deleted, moved or replaced by someone else; writing to the file now at its path");
                self.adopt(opened);
            }
            Err(e) => {
                if !self.reopen_error_logged {
                    self.reopen_error_logged = true;
                    tracing::warn!(path = %self.path.display(), error = %e, "the JSONL file was deleted or moved and cannot be created again; still appending to the old file");
                }
            }
        }
    }

    fn rotate_if_needed(&mut self, incoming: u64) {
        let Some(max) = self.max_bytes else { return };
        if !self.rotatable || self.size == 0 || self.size.saturating_add(incoming) <= max {
            return;
        }
        match rotate(&self.path, self.keep_files) {
            Ok(()) => match open_checked(&self.path) {
                Ok(opened) => self.adopt(opened),
                Err(e) => self.log_rotate_error(&e.to_string()),
            },
            Err(e) => self.log_rotate_error(&e.to_string()),
        }
    }

    fn log_rotate_error(&mut self, error: &str) {
        // Keep appending to the file we have: a missed rotation must not lose spans.
        if !self.rotate_error_logged {
            self.rotate_error_logged = true;
            tracing::warn!(path = %self.path.display(), error, "JSONL rotation failed; still appending to the current file");
        }
    }

    fn append(&mut self, line: &[u8]) -> OTelSdkResult {
        let Some(file) = self.file.as_mut() else {
            return Err(OTelSdkError::InternalFailure("JSONL file not open".into()));
        };
        if self.needs_newline {
            if file.write_all(b"\n").and_then(|()| file.flush()).is_ok() {
                self.size += 1;
                self.needs_newline = false;
            } else {
                return Err(self.write_failed("terminating a torn line failed"));
            }
        }
        match file.write_all(line).and_then(|()| file.flush()) {
            Ok(()) => {
                self.size += line.len() as u64;
                Ok(())
            }
            Err(e) => {
                // Cut off whatever part of the line made it, so the file stays line-clean.
                let truncated = self.rotatable && file.set_len(self.size).is_ok();
                if !truncated {
                    self.needs_newline = self.rotatable;
                }
                Err(self.write_failed(&e.to_string()))
            }
        }
    }

    fn write_failed(&mut self, error: &str) -> OTelSdkError {
        if !self.write_error_logged {
            self.write_error_logged = true;
            tracing::warn!(path = %self.path.display(), error, "writing the JSONL trace file failed; spans are counted as failed, further errors are not logged");
        }
        OTelSdkError::InternalFailure(format!("write {}: {error}", self.path.display()))
    }
}

impl SpanExporter for JsonlSpanExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.write_batch(batch)
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        let mut state = self.lock();
        if !state.shut_down {
            state.shut_down = true;
            if let Some(mut file) = state.file.take() {
                let _ = file.flush();
            }
        }
        Ok(())
    }

    fn force_flush(&self) -> OTelSdkResult {
        // Every export already flushed; this only reports a closed sink.
        if self.lock().shut_down {
            Err(OTelSdkError::AlreadyShutdown)
        } else {
            Ok(())
        }
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.lock().resource = resource.clone();
    }
}

/// `path.N` for rotation index `n`.
fn rotated_name(path: &Path, n: usize) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// Shifts `path.(k-1)` → `path.k` … `path` → `path.1`, dropping what falls off the end.
fn rotate(path: &Path, keep_files: usize) -> std::io::Result<()> {
    if keep_files == 0 {
        return fs::remove_file(path);
    }
    let oldest = rotated_name(path, keep_files);
    match fs::remove_file(&oldest) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    for n in (1..keep_files).rev() {
        let from = rotated_name(path, n);
        if from.exists() {
            fs::rename(&from, rotated_name(path, n + 1))?;
        }
    }
    fs::rename(path, rotated_name(path, 1))
}

fn open_append(path: &Path) -> Result<File, JsonlError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_private_dir(parent).map_err(|source| JsonlError::CreateDir {
            path: parent.to_path_buf(),
            source,
        })?;
    }
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path).map_err(|source| JsonlError::Open {
        path: path.to_path_buf(),
        source,
    })
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

#[cfg(test)]
mod setting_tests {
    use super::*;

    #[test]
    fn off_in_any_case_is_no_file() {
        for off in ["off", "OFF", "Off", "none", "FALSE"] {
            assert_eq!(parse_jsonl_path(off), None, "{off}");
        }
        assert_eq!(
            parse_jsonl_path(" traces.jsonl "),
            Some(PathBuf::from("traces.jsonl"))
        );
    }

    #[test]
    fn rotation_values() {
        assert_eq!(parse_max_bytes("100MiB"), Some(Some(DEFAULT_MAX_BYTES)));
        assert_eq!(parse_max_bytes("1000"), Some(Some(1000)));
        assert_eq!(parse_max_bytes("OFF"), Some(None));
        assert_eq!(parse_max_bytes("0"), None);
        assert_eq!(parse_max_bytes("big"), None);
        assert_eq!(parse_keep("0"), Some(0));
        assert_eq!(parse_keep("20"), Some(20));
        assert_eq!(parse_keep("-1"), None);
        assert_eq!(parse_keep("1001"), None);
    }
}
