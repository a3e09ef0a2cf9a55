//! The durable file of a view-service Raft node: it makes the core's [`Persist`] requests
//! durable and replays them into a [`DiskState`] on restart. The meaning of the ops is the
//! protocol crate's ([`tandem_protocol::consensus::disk`]); this module owns only the bytes.
//!
//! [`Persist`]: tandem_protocol::consensus::Persist
//!
//! # Format
//! One file, `<dir>/raft.log` (integers big-endian):
//!
//! ```text
//! header:  [magic 8 bytes = "TNDMRAFT"][version u32 = 1]
//! records: [len u32][crc32 u32 of the payload][payload: postcard(DiskOp), len bytes]...
//! ```
//!
//! Replaying the records in order with [`DiskState::apply`] gives the node's state. A record
//! holds at most [`MAX_RECORD_BYTES`] of payload: a long `Entries` op is written as several
//! consecutive `Entries` records, which replay to the same state.
//!
//! # Sync rule
//! [`LogFile::append`] writes all records of one `Persist` in one `write` and, when the request
//! asks for it, `sync_data`s the file before it returns. The caller reports the request to the
//! core (`persisted`) only after `append` returned `Ok`, so a request the core saw completed is
//! on disk. Any `append` error is fatal for the node: the file stays consistent with what was
//! acknowledged, but the `LogFile` refuses further appends (it is "poisoned"), and the node must
//! stop and restart from the file.
//!
//! # Refuse to start
//! [`LogFile::open`] never guesses. A short or unknown header, a record whose length is zero or
//! above the limit, a checksum mismatch, an undecodable payload, trailing bytes after the
//! payload, an op that does not follow the stored state, or a partial record at the end of the
//! file: each is a [`DiskFileError`] naming the file, the byte offset of the record and what is
//! wrong, and the node does not start. A torn tail left by a crash in the middle of an
//! unacknowledged write is refused too: the operator decides (truncating the file at the
//! reported offset drops only writes that were never reported to the core).
//!
//! # Compaction
//! After an append that contains a `Snapshot` op, the file is rewritten from the live state
//! ([`DiskState::to_ops`]) when it is larger than [`COMPACT_MIN_BYTES`] (1 MiB) and more than
//! [`COMPACT_RATIO`] (2) times the size of that rewrite. The rewrite goes to `raft.log.tmp`,
//! which is synced, renamed over `raft.log`, and the directory synced: a crash at any point
//! leaves either the old or the new file complete under the name `raft.log`. A `raft.log.tmp`
//! found at open is the remains of an interrupted rewrite (or creation) and is deleted. A new
//! file is created the same way (header written to the `.tmp`, synced, renamed), so
//! `raft.log` never exists without its complete header.
//!
//! The I/O is blocking `std::fs`: the caller is the single task that owns the core, where a
//! few-millisecond fsync keeps ordering simple. Directory syncs assume a Unix file system.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use tandem_protocol::consensus::{DiskError, DiskOp, DiskState};

/// The file's first 8 bytes.
pub const MAGIC: [u8; 8] = *b"TNDMRAFT";
/// The only format version.
pub const VERSION: u32 = 1;
/// Bytes of the file header (magic and version).
pub const HEADER_BYTES: u64 = 12;
/// Bytes before each record's payload (length and checksum).
pub const RECORD_HEADER_BYTES: u64 = 8;
/// The largest record payload written or accepted: a corrupt length field cannot make `open`
/// allocate more than this.
pub const MAX_RECORD_BYTES: u32 = 64 << 20;
/// The file is never compacted below this size.
pub const COMPACT_MIN_BYTES: u64 = 1 << 20;
/// The file is compacted when larger than this many times its rewrite from the live state.
pub const COMPACT_RATIO: u64 = 2;

/// The log file's name inside the node's directory.
pub const FILE_NAME: &str = "raft.log";
/// The name a rewrite is prepared under before it replaces [`FILE_NAME`].
pub const TMP_FILE_NAME: &str = "raft.log.tmp";

/// Bound on the postcard overhead of an `Entries` op besides its entries (variant tag,
/// `first_index`, entry count) and of each entry (its length prefix): varints of at most 10
/// bytes each.
const ENTRIES_OVERHEAD: u64 = 32;
const ENTRY_OVERHEAD: u64 = 10;

/// Why the log file could not be opened or written. Every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum DiskFileError {
    /// A file system operation failed.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was being done ("write", "sync", "rename to raft.log", ...).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The file header is short, or not a supported raft log header.
    #[error("bad header in {path}: {reason}")]
    Header {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A complete record is wrong: bad length, checksum, payload or op.
    #[error("corrupt record at byte {offset} of {path}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Where the record starts.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// The file ends inside a record.
    #[error("truncated record at byte {offset} of {path}: {reason}")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Where the partial record starts.
        offset: u64,
        /// What is missing.
        reason: String,
    },
    /// An op to append cannot fit in a record (nothing was written).
    #[error("cannot append to {path}: {what} of {len} bytes exceeds the record limit of {max}")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// What is too large ("snapshot", "log entry", ...).
        what: &'static str,
        /// Its encoded size.
        len: u64,
        /// The limit.
        max: u32,
    },
    /// The core asked to append ops that do not follow the stored state (nothing was written;
    /// the file is poisoned).
    #[error("cannot append to {path}: {source}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Why the ops do not follow.
        source: DiskError,
    },
    /// An earlier append failed: the in-memory state may differ from the file, so nothing more
    /// is written and the node must restart from the file.
    #[error("{path} is unusable after an earlier failure; restart from the file")]
    Poisoned {
        /// The file.
        path: PathBuf,
    },
}

/// Tunables, fixed in production, small in tests.
#[derive(Clone, Copy, Debug)]
struct Limits {
    max_record_bytes: u32,
    compact_min_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_record_bytes: MAX_RECORD_BYTES,
            compact_min_bytes: COMPACT_MIN_BYTES,
        }
    }
}

/// The durable log of one view-service Raft node (see the module docs for the format and
/// rules).
#[derive(Debug)]
pub struct LogFile {
    dir: PathBuf,
    path: PathBuf,
    file: File,
    /// Bytes in the file (header included).
    len: u64,
    /// The live state: everything in the file, replayed.
    state: DiskState,
    limits: Limits,
    poisoned: bool,
}

impl LogFile {
    /// Opens (creating if missing) `dir/raft.log` and replays it. Any damage to the file is an
    /// error naming the file, the offset and the damage: the node must not start on it.
    pub fn open(dir: &Path) -> Result<(LogFile, DiskState), DiskFileError> {
        Self::open_with(dir, Limits::default())
    }

    fn open_with(dir: &Path, limits: Limits) -> Result<(LogFile, DiskState), DiskFileError> {
        fs::create_dir_all(dir).map_err(io_err("create directory", dir))?;
        let path = dir.join(FILE_NAME);
        let tmp = dir.join(TMP_FILE_NAME);
        match fs::remove_file(&tmp) {
            Ok(()) => {
                tracing::warn!(path = %tmp.display(), "removed an interrupted rewrite");
                sync_dir(dir)?;
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(io_err("remove", &tmp)(error)),
        }
        let exists = match fs::metadata(&path) {
            Ok(_) => true,
            Err(error) if error.kind() == io::ErrorKind::NotFound => false,
            Err(error) => return Err(io_err("stat", &path)(error)),
        };
        if !exists {
            let (file, len) = replace_file(dir, &path, &[])?;
            let log = LogFile {
                dir: dir.to_owned(),
                path,
                file,
                len,
                state: DiskState::default(),
                limits,
                poisoned: false,
            };
            return Ok((log, DiskState::default()));
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io_err("open", &path))?;
        let (state, len) = replay(&path, &file, limits)?;
        file.seek(SeekFrom::Start(len))
            .map_err(io_err("seek", &path))?;
        let log = LogFile {
            dir: dir.to_owned(),
            path,
            file,
            len,
            state: state.clone(),
            limits,
            poisoned: false,
        };
        Ok((log, state))
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's size in bytes (for metrics).
    pub fn len_bytes(&self) -> u64 {
        self.len
    }

    /// The live state: what a reopen would replay.
    pub fn state(&self) -> &DiskState {
        &self.state
    }

    /// Appends the ops of one `Persist` request in one write, then syncs the data if `sync`.
    /// Only after `Ok` may the request be reported to the core. May compact the file (see the
    /// module docs). On error the `LogFile` refuses further appends, except for
    /// [`DiskFileError::TooLarge`], which is refused before anything changes.
    pub fn append(&mut self, ops: &[DiskOp], sync: bool) -> Result<(), DiskFileError> {
        if self.poisoned {
            return Err(DiskFileError::Poisoned {
                path: self.path.clone(),
            });
        }
        let mut buf = Vec::new();
        for op in ops {
            encode_op(&self.path, op, self.limits.max_record_bytes, &mut buf)?;
        }
        // Applied before writing so that an op the state refuses leaves the file untouched;
        // the in-memory state may then be partly updated, hence the poison.
        for op in ops {
            if let Err(source) = self.state.apply(op) {
                self.poisoned = true;
                return Err(DiskFileError::Invalid {
                    path: self.path.clone(),
                    source,
                });
            }
        }
        self.poisoned = true; // until the write (and sync) succeed
        if let Err(error) = self.file.write_all(&buf) {
            // Best effort: drop the partial record so a restart does not refuse the file.
            let _ = self.file.set_len(self.len);
            return Err(io_err("write", &self.path)(error));
        }
        if sync {
            self.file.sync_data().map_err(io_err("sync", &self.path))?;
        }
        self.len += buf.len() as u64;
        self.poisoned = false;
        if ops.iter().any(|op| matches!(op, DiskOp::Snapshot { .. })) {
            self.maybe_compact()?;
        }
        Ok(())
    }

    /// Rewrites the file from the live state if it is large and mostly obsolete. A failure
    /// before the rename leaves the current file in use (logged, retried at the next
    /// snapshot); after the rename, an error poisons the `LogFile`.
    fn maybe_compact(&mut self) -> Result<(), DiskFileError> {
        if self.len <= self.limits.compact_min_bytes {
            return Ok(());
        }
        let mut buf = Vec::new();
        for op in self.state.to_ops() {
            encode_op(&self.path, &op, self.limits.max_record_bytes, &mut buf)?;
        }
        let new_len = HEADER_BYTES + buf.len() as u64;
        if self.len <= COMPACT_RATIO * new_len {
            return Ok(());
        }
        let tmp = self.dir.join(TMP_FILE_NAME);
        let file = match write_synced(&tmp, &buf) {
            Ok(file) => file,
            Err(error) => {
                tracing::warn!(%error, "log compaction failed; keeping the current file");
                let _ = fs::remove_file(&tmp);
                return Ok(());
            }
        };
        if let Err(error) = fs::rename(&tmp, &self.path) {
            tracing::warn!(%error, "log compaction failed; keeping the current file");
            let _ = fs::remove_file(&tmp);
            return Ok(());
        }
        // From here `raft.log` names the new file: appends must go to it, and only once the
        // rename is durable (else a crash could bring back the old file without them).
        self.poisoned = true;
        sync_dir(&self.dir)?;
        tracing::info!(
            path = %self.path.display(),
            from = self.len,
            to = new_len,
            "compacted the raft log"
        );
        self.file = file;
        self.len = new_len;
        self.poisoned = false;
        Ok(())
    }
}

/// Maps an I/O error to [`DiskFileError::Io`] naming `path`.
fn io_err<'a>(action: &'static str, path: &'a Path) -> impl Fn(io::Error) -> DiskFileError + 'a {
    move |source| DiskFileError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

/// Syncs a directory so that a rename or creation in it is durable.
fn sync_dir(dir: &Path) -> Result<(), DiskFileError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("sync directory", dir))
}

/// Writes the header and `records` to a fresh `path` and syncs it; the handle is positioned
/// at the end.
fn write_synced(path: &Path, records: &[u8]) -> Result<File, DiskFileError> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(io_err("create", path))?;
    let mut buf = Vec::with_capacity(HEADER_BYTES as usize + records.len());
    buf.extend_from_slice(&MAGIC);
    buf.extend_from_slice(&VERSION.to_be_bytes());
    buf.extend_from_slice(records);
    file.write_all(&buf).map_err(io_err("write", path))?;
    file.sync_all().map_err(io_err("sync", path))?;
    Ok(file)
}

/// Atomically makes `path` a file holding the header and `records`, through the `.tmp` name.
fn replace_file(dir: &Path, path: &Path, records: &[u8]) -> Result<(File, u64), DiskFileError> {
    let tmp = dir.join(TMP_FILE_NAME);
    let file = write_synced(&tmp, records)?;
    fs::rename(&tmp, path).map_err(io_err("rename into place", &tmp))?;
    sync_dir(dir)?;
    Ok((file, HEADER_BYTES + records.len() as u64))
}

/// Appends the records of `op` to `buf`: one record, or for an `Entries` op too large for one,
/// several consecutive `Entries` records that replay to the same state.
fn encode_op(path: &Path, op: &DiskOp, max: u32, buf: &mut Vec<u8>) -> Result<(), DiskFileError> {
    match op {
        DiskOp::Entries {
            first_index,
            entries,
        } if entries_bound(entries) > u64::from(max) => {
            let mut first = *first_index;
            let mut rest = entries.as_slice();
            while !rest.is_empty() {
                let mut size = ENTRIES_OVERHEAD;
                let mut take = 0;
                for entry in rest {
                    let next = size + ENTRY_OVERHEAD + entry.len() as u64;
                    if next > u64::from(max) {
                        break;
                    }
                    size = next;
                    take += 1;
                }
                if take == 0 {
                    return Err(DiskFileError::TooLarge {
                        path: path.to_owned(),
                        what: "log entry",
                        len: rest[0].len() as u64,
                        max,
                    });
                }
                let chunk = DiskOp::Entries {
                    first_index: first,
                    entries: rest[..take].to_vec(),
                };
                encode_record(path, &chunk, max, buf)?;
                first += take as u64;
                rest = &rest[take..];
            }
            Ok(())
        }
        _ => encode_record(path, op, max, buf),
    }
}

/// An upper bound on the encoded size of an `Entries` op holding `entries`.
fn entries_bound(entries: &[Bytes]) -> u64 {
    ENTRIES_OVERHEAD
        + entries
            .iter()
            .map(|e| ENTRY_OVERHEAD + e.len() as u64)
            .sum::<u64>()
}

/// Appends one record holding `op` to `buf`.
fn encode_record(
    path: &Path,
    op: &DiskOp,
    max: u32,
    buf: &mut Vec<u8>,
) -> Result<(), DiskFileError> {
    let start = buf.len();
    buf.extend_from_slice(&[0; RECORD_HEADER_BYTES as usize]);
    let payload_start = buf.len();
    let taken = std::mem::take(buf);
    *buf = postcard::to_extend(op, taken).map_err(|error| DiskFileError::Io {
        action: "encode a record for",
        path: path.to_owned(),
        source: io::Error::other(error.to_string()),
    })?;
    let len = (buf.len() - payload_start) as u64;
    if len > u64::from(max) {
        buf.truncate(start);
        return Err(DiskFileError::TooLarge {
            path: path.to_owned(),
            what: match op {
                DiskOp::HardState { .. } => "hard state",
                DiskOp::Entries { .. } => "log entries",
                DiskOp::Snapshot { .. } => "snapshot",
            },
            len,
            max,
        });
    }
    let crc = crc32fast::hash(&buf[payload_start..]);
    buf[start..start + 4].copy_from_slice(&(len as u32).to_be_bytes());
    buf[start + 4..payload_start].copy_from_slice(&crc.to_be_bytes());
    Ok(())
}

/// Reads and checks the whole file, returning the replayed state and the file's length.
fn replay(path: &Path, file: &File, limits: Limits) -> Result<(DiskState, u64), DiskFileError> {
    let file_len = file.metadata().map_err(io_err("stat", path))?.len();
    let mut reader = BufReader::new(file);
    let read_err = io_err("read", path);
    if file_len < HEADER_BYTES {
        return Err(DiskFileError::Header {
            path: path.to_owned(),
            reason: format!(
                "the file is {file_len} bytes, shorter than the {HEADER_BYTES}-byte header"
            ),
        });
    }
    let mut header = [0u8; HEADER_BYTES as usize];
    reader.read_exact(&mut header).map_err(&read_err)?;
    if header[..8] != MAGIC {
        return Err(DiskFileError::Header {
            path: path.to_owned(),
            reason: format!("not a tandem raft log (magic {:02x?})", &header[..8]),
        });
    }
    let version = u32::from_be_bytes(header[8..12].try_into().expect("4 bytes"));
    if version != VERSION {
        return Err(DiskFileError::Header {
            path: path.to_owned(),
            reason: format!("unsupported format version {version} (this build reads {VERSION})"),
        });
    }
    let corrupt = |offset: u64, reason: String| DiskFileError::Corrupt {
        path: path.to_owned(),
        offset,
        reason,
    };
    let truncated = |offset: u64, reason: String| DiskFileError::Truncated {
        path: path.to_owned(),
        offset,
        reason,
    };
    let mut state = DiskState::default();
    let mut offset = HEADER_BYTES;
    let mut payload = Vec::new();
    while offset < file_len {
        let remaining = file_len - offset;
        if remaining < RECORD_HEADER_BYTES {
            return Err(truncated(
                offset,
                format!(
                    "{remaining} bytes left, less than a {RECORD_HEADER_BYTES}-byte record header"
                ),
            ));
        }
        let mut head = [0u8; RECORD_HEADER_BYTES as usize];
        reader.read_exact(&mut head).map_err(&read_err)?;
        let len = u32::from_be_bytes(head[..4].try_into().expect("4 bytes"));
        let crc = u32::from_be_bytes(head[4..].try_into().expect("4 bytes"));
        // The length is checked before anything is allocated for it.
        if len == 0 {
            return Err(corrupt(offset, "record length is zero".to_owned()));
        }
        if len > limits.max_record_bytes {
            return Err(corrupt(
                offset,
                format!(
                    "record length {len} exceeds the limit of {}",
                    limits.max_record_bytes
                ),
            ));
        }
        let available = remaining - RECORD_HEADER_BYTES;
        if u64::from(len) > available {
            return Err(truncated(
                offset,
                format!("record of {len} bytes but only {available} bytes follow its header"),
            ));
        }
        payload.clear();
        payload.resize(len as usize, 0);
        reader.read_exact(&mut payload).map_err(&read_err)?;
        let actual = crc32fast::hash(&payload);
        if actual != crc {
            return Err(corrupt(
                offset,
                format!("checksum mismatch (stored {crc:08x}, computed {actual:08x})"),
            ));
        }
        let (op, rest) = postcard::take_from_bytes::<DiskOp>(&payload)
            .map_err(|error| corrupt(offset, format!("undecodable record: {error}")))?;
        if !rest.is_empty() {
            return Err(corrupt(
                offset,
                format!("{} bytes after the encoded op", rest.len()),
            ));
        }
        state.apply(&op).map_err(|error| {
            corrupt(
                offset,
                format!("op does not follow the stored state: {error}"),
            )
        })?;
        offset += RECORD_HEADER_BYTES + u64::from(len);
    }
    Ok((state, file_len))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            static NEXT: AtomicU64 = AtomicU64::new(0);
            let dir = std::env::temp_dir().join(format!(
                "tandem-disk-{}-{}-{name}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = fs::remove_dir_all(&dir);
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn entries(first_index: u64, n: u64, tag: &str) -> DiskOp {
        DiskOp::Entries {
            first_index,
            entries: (first_index..first_index + n)
                .map(|i| Bytes::from(format!("{tag}-{i}")))
                .collect(),
        }
    }

    fn hard(term: u64, vote: u64, commit: u64) -> DiskOp {
        DiskOp::HardState { term, vote, commit }
    }

    fn replayed(ops: &[DiskOp]) -> DiskState {
        let mut state = DiskState::default();
        for op in ops {
            state.apply(op).unwrap();
        }
        state
    }

    /// Writes a few records and returns the offsets where each record starts.
    fn write_sample(dir: &Path) -> Vec<u64> {
        let (mut log, _) = LogFile::open(dir).unwrap();
        let mut offsets = Vec::new();
        for i in 0..4 {
            offsets.push(log.len_bytes());
            log.append(&[entries(1 + i * 3, 3, "e")], true).unwrap();
        }
        offsets
    }

    fn flip_byte(path: &Path, at: u64) {
        let mut bytes = fs::read(path).unwrap();
        bytes[at as usize] ^= 0x40;
        fs::write(path, bytes).unwrap();
    }

    #[test]
    fn new_directory_gets_an_empty_log_with_a_header() {
        let tmp = TempDir::new("new");
        let dir = tmp.0.join("nested");
        let (log, state) = LogFile::open(&dir).unwrap();
        assert!(state.is_empty());
        assert_eq!(log.path(), dir.join(FILE_NAME));
        assert_eq!(log.len_bytes(), HEADER_BYTES);
        assert_eq!(fs::metadata(log.path()).unwrap().len(), HEADER_BYTES);
        drop(log);
        let (_, state) = LogFile::open(&dir).unwrap();
        assert!(state.is_empty());
    }

    #[test]
    fn many_appends_reopen_to_the_replayed_state() {
        let tmp = TempDir::new("roundtrip");
        let mut all = Vec::new();
        {
            let (mut log, _) = LogFile::open(&tmp.0).unwrap();
            for i in 0..200u64 {
                let ops = vec![entries(1 + i * 2, 2, "a"), hard(1 + i / 50, 1, i * 2)];
                log.append(&ops, i % 3 != 0).unwrap();
                all.extend(ops);
            }
            assert_eq!(log.len_bytes(), fs::metadata(log.path()).unwrap().len());
            assert_eq!(log.state(), &replayed(&all));
        }
        let (mut log, state) = LogFile::open(&tmp.0).unwrap();
        assert_eq!(state, replayed(&all));
        assert_eq!(state.entries.len(), 400);
        assert_eq!(state.hard_state, (4, 1, 398));
        assert_eq!(log.state(), &state);
        // Appending after a reopen continues the same file.
        log.append(&[entries(401, 1, "b")], true).unwrap();
        drop(log);
        let (_, state) = LogFile::open(&tmp.0).unwrap();
        assert_eq!(state.entries.len(), 401);
        assert_eq!(state.entries[400], Bytes::from("b-401"));
    }

    #[test]
    fn suffix_overwritten_by_a_new_leader_survives_reopen() {
        let tmp = TempDir::new("overwrite");
        {
            let (mut log, _) = LogFile::open(&tmp.0).unwrap();
            log.append(&[entries(1, 10, "old"), hard(1, 1, 4)], true)
                .unwrap();
            // A new leader in term 2 replaces entries 6.. with its own, shorter suffix.
            log.append(&[hard(2, 2, 4), entries(6, 2, "new")], true)
                .unwrap();
        }
        let (_, state) = LogFile::open(&tmp.0).unwrap();
        assert_eq!(state.hard_state, (2, 2, 4));
        assert_eq!(state.entries.len(), 7);
        assert_eq!(state.entries[4], Bytes::from("old-5"));
        assert_eq!(state.entries[5], Bytes::from("new-6"));
        assert_eq!(state.entries[6], Bytes::from("new-7"));
    }

    #[test]
    fn snapshot_compacts_the_file_and_reopen_gives_the_same_state() {
        let tmp = TempDir::new("compact");
        let limits = Limits {
            compact_min_bytes: 4096,
            ..Limits::default()
        };
        let (mut log, _) = LogFile::open_with(&tmp.0, limits).unwrap();
        for i in 0..100u64 {
            log.append(&[entries(1 + i * 4, 4, "x"), hard(1, 1, i * 4)], true)
                .unwrap();
        }
        let before = log.len_bytes();
        assert!(before > 4096);
        // Below the size threshold nothing is compacted; a snapshot covering most of the log
        // makes the file mostly obsolete.
        log.append(
            &[DiskOp::Snapshot {
                index: 390,
                term: 1,
                snapshot: Bytes::from_static(b"view table"),
            }],
            true,
        )
        .unwrap();
        let after = log.len_bytes();
        assert!(after * COMPACT_RATIO < before, "{after} vs {before}");
        assert_eq!(fs::metadata(log.path()).unwrap().len(), after);
        assert!(!tmp.0.join(TMP_FILE_NAME).exists());
        let live = log.state().clone();
        assert_eq!(live.first_index, 391);
        assert_eq!(live.entries.len(), 10);
        // Appends after the rewrite go to the new file.
        log.append(&[entries(401, 1, "y"), hard(2, 1, 400)], true)
            .unwrap();
        let live = log.state().clone();
        drop(log);
        let (log, state) = LogFile::open(&tmp.0).unwrap();
        assert_eq!(state, live);
        assert_eq!(state.snapshot.as_ref().unwrap().0, 390);
        assert_eq!(state.entries.last().unwrap(), &Bytes::from("y-401"));
        assert_eq!(log.len_bytes(), fs::metadata(log.path()).unwrap().len());
    }

    #[test]
    fn small_file_is_not_compacted() {
        let tmp = TempDir::new("nocompact");
        let (mut log, _) = LogFile::open(&tmp.0).unwrap();
        log.append(&[entries(1, 50, "x")], true).unwrap();
        let before = log.len_bytes();
        let snapshot = DiskOp::Snapshot {
            index: 49,
            term: 1,
            snapshot: Bytes::new(),
        };
        log.append(std::slice::from_ref(&snapshot), true).unwrap();
        assert!(log.len_bytes() > before, "below 1 MiB the file only grows");
    }

    #[test]
    fn long_entries_op_is_split_into_records_that_replay_the_same() {
        let tmp = TempDir::new("split");
        let limits = Limits {
            max_record_bytes: 1000,
            ..Limits::default()
        };
        let op = DiskOp::Entries {
            first_index: 1,
            entries: (0..100).map(|i| Bytes::from(vec![i as u8; 90])).collect(),
        };
        let (mut log, _) = LogFile::open_with(&tmp.0, limits).unwrap();
        log.append(std::slice::from_ref(&op), true).unwrap();
        // 100 entries of ~91 encoded bytes under a 1000-byte limit: at least 10 records, none
        // above the limit.
        let bytes = fs::read(log.path()).unwrap();
        let mut at = HEADER_BYTES as usize;
        let mut records = 0;
        while at < bytes.len() {
            let len = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
            assert!(len <= 1000, "record of {len} bytes");
            at += RECORD_HEADER_BYTES as usize + len as usize;
            records += 1;
        }
        assert!(records >= 10, "{records} records");
        let too_big = DiskOp::Entries {
            first_index: 101,
            entries: vec![Bytes::from(vec![0u8; 2000])],
        };
        let err = log.append(&[too_big], true).unwrap_err();
        assert!(matches!(err, DiskFileError::TooLarge { .. }), "{err}");
        drop(log);
        let (_, state) = LogFile::open_with(&tmp.0, limits).unwrap();
        assert_eq!(state, replayed(&[op]));
    }

    #[test]
    fn flipped_byte_is_refused_with_path_and_offset() {
        let tmp = TempDir::new("flip");
        let offsets = write_sample(&tmp.0);
        let path = tmp.0.join(FILE_NAME);
        // A byte inside the payload of the third record.
        flip_byte(&path, offsets[2] + RECORD_HEADER_BYTES + 3);
        let err = LogFile::open(&tmp.0).unwrap_err();
        assert!(
            matches!(err, DiskFileError::Corrupt { offset, .. } if offset == offsets[2]),
            "{err}"
        );
        let msg = err.to_string();
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(msg.contains(&format!("byte {}", offsets[2])), "{msg}");
        assert!(msg.contains("checksum mismatch"), "{msg}");
    }

    #[test]
    fn file_truncated_mid_record_is_refused() {
        let tmp = TempDir::new("truncated");
        let offsets = write_sample(&tmp.0);
        let path = tmp.0.join(FILE_NAME);
        let len = fs::metadata(&path).unwrap().len();
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        // Inside the last payload, then inside the last record header.
        for cut in [len - 2, offsets[3] + 3] {
            file.set_len(cut).unwrap();
            let err = LogFile::open(&tmp.0).unwrap_err();
            assert!(
                matches!(err, DiskFileError::Truncated { offset, .. } if offset == offsets[3]),
                "{err}"
            );
            let msg = err.to_string();
            assert!(msg.contains(&path.display().to_string()), "{msg}");
            assert!(msg.contains(&format!("byte {}", offsets[3])), "{msg}");
        }
        // Cut exactly at a record boundary, the shorter log is a valid one.
        file.set_len(offsets[3]).unwrap();
        let (_, state) = LogFile::open(&tmp.0).unwrap();
        assert_eq!(state.entries.len(), 9);
    }

    #[test]
    fn garbage_or_short_header_is_refused() {
        let tmp = TempDir::new("header");
        fs::create_dir_all(&tmp.0).unwrap();
        let path = tmp.0.join(FILE_NAME);
        for (bytes, what) in [
            (&b"GARBAGE!\0\0\0\x01more"[..], "not a tandem raft log"),
            (&b"TNDMRAFT\0\0\0\x07"[..], "unsupported format version 7"),
            (&b"TNDMRA"[..], "shorter than the 12-byte header"),
            (&b""[..], "shorter than the 12-byte header"),
        ] {
            fs::write(&path, bytes).unwrap();
            let err = LogFile::open(&tmp.0).unwrap_err();
            assert!(matches!(err, DiskFileError::Header { .. }), "{err}");
            let msg = err.to_string();
            assert!(msg.contains(what), "{msg}");
            assert!(msg.contains(&path.display().to_string()), "{msg}");
        }
    }

    #[test]
    fn stale_tmp_from_an_interrupted_rewrite_is_removed() {
        let tmp = TempDir::new("staletmp");
        write_sample(&tmp.0);
        let stale = tmp.0.join(TMP_FILE_NAME);
        // What a crash in the middle of a rewrite leaves: a partial file.
        fs::write(&stale, b"TNDMRAFT\0\0\0\x01\0\0\0\x09").unwrap();
        let (_, state) = LogFile::open(&tmp.0).unwrap();
        assert_eq!(state.entries.len(), 12);
        assert!(!stale.exists());
    }

    #[test]
    fn huge_length_field_is_refused_before_allocating() {
        let tmp = TempDir::new("hugelen");
        let offsets = write_sample(&tmp.0);
        let path = tmp.0.join(FILE_NAME);
        let mut bytes = fs::read(&path).unwrap();
        let at = offsets[1] as usize;
        bytes[at..at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
        fs::write(&path, bytes).unwrap();
        let err = LogFile::open(&tmp.0).unwrap_err();
        assert!(
            matches!(err, DiskFileError::Corrupt { offset, .. } if offset == offsets[1]),
            "{err}"
        );
        assert!(err.to_string().contains("exceeds the limit"), "{err}");
    }

    #[test]
    fn zero_length_and_undecodable_records_are_refused() {
        let tmp = TempDir::new("zero");
        fs::create_dir_all(&tmp.0).unwrap();
        let path = tmp.0.join(FILE_NAME);
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&VERSION.to_be_bytes());
        let mut zeroed = bytes.clone();
        zeroed.extend_from_slice(&[0; 16]); // a zero-filled tail
        fs::write(&path, &zeroed).unwrap();
        let err = LogFile::open(&tmp.0).unwrap_err();
        assert!(err.to_string().contains("length is zero"), "{err}");
        // A well-checksummed payload that is no DiskOp (variant 9 does not exist).
        let payload = [9u8, 1, 2];
        bytes.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        bytes.extend_from_slice(&crc32fast::hash(&payload).to_be_bytes());
        bytes.extend_from_slice(&payload);
        fs::write(&path, &bytes).unwrap();
        let err = LogFile::open(&tmp.0).unwrap_err();
        assert!(
            matches!(
                err,
                DiskFileError::Corrupt {
                    offset: HEADER_BYTES,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("undecodable"), "{err}");
    }

    #[test]
    fn ops_that_do_not_follow_are_refused_without_writing() {
        let tmp = TempDir::new("gap");
        let (mut log, _) = LogFile::open(&tmp.0).unwrap();
        log.append(&[entries(1, 3, "a")], true).unwrap();
        let len = log.len_bytes();
        let err = log.append(&[hard(2, 1, 0), entries(9, 1, "b")], true);
        assert!(matches!(err, Err(DiskFileError::Invalid { .. })), "{err:?}");
        assert_eq!(fs::metadata(log.path()).unwrap().len(), len);
        let err = log.append(&[hard(3, 1, 0)], true);
        assert!(
            matches!(err, Err(DiskFileError::Poisoned { .. })),
            "{err:?}"
        );
        drop(log);
        let (_, state) = LogFile::open(&tmp.0).unwrap();
        assert_eq!(state, replayed(&[entries(1, 3, "a")]));
    }

    #[test]
    fn op_that_does_not_follow_in_the_file_is_refused_at_open() {
        let tmp = TempDir::new("gapfile");
        fs::create_dir_all(&tmp.0).unwrap();
        let path = tmp.0.join(FILE_NAME);
        let mut records = Vec::new();
        encode_record(&path, &entries(1, 2, "a"), MAX_RECORD_BYTES, &mut records).unwrap();
        let second = HEADER_BYTES + records.len() as u64;
        encode_record(&path, &entries(7, 1, "a"), MAX_RECORD_BYTES, &mut records).unwrap();
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&VERSION.to_be_bytes());
        bytes.extend_from_slice(&records);
        fs::write(&path, bytes).unwrap();
        let err = LogFile::open(&tmp.0).unwrap_err();
        assert!(
            matches!(err, DiskFileError::Corrupt { offset, .. } if offset == second),
            "{err}"
        );
        assert!(err.to_string().contains("does not follow"), "{err}");
    }
}
