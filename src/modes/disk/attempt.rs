//! The disk mode's files and attempts.
//!
//! Before the round, a target's folder is checked (a folder, writable, on a file system
//! that is not read-only, with room for its files) and files a killed run left are
//! removed. Each file is created, locked and at once unlinked: nothing is left behind
//! whatever ends the process, SIGKILL included, and the space returns when it exits. The
//! lock marks a file as in use between its creation and its unlink, so a later run only
//! removes a name nobody holds (a crash in that window).
//!
//! The measures run one after another, each for its share of the round's duration, one
//! I/O at a time ([`Phase`]). Reads go past the page cache: with O_DIRECT where the file
//! system takes it, else by dropping the pages read (`POSIX_FADV_DONTNEED`). Writes are
//! durable: each is followed by fdatasync, as etcd's WAL does.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::plan::*;
use crate::judge::bytes_text;
use crate::modes::{Press, Pressed};
use crate::pressure::{self, Attempt, ErrorKind, ErrorSamples, Live, Load, Outcome, Stop};
use crate::probe::SetupError;

/// The prefix of every file a run creates in a target's folder.
pub const FILE_PREFIX: &str = ".kpatrol-disk-";

/// A target's files, open and already unlinked.
pub struct Files {
    /// The data file of the sequential and random measures (written in full before the
    /// round when a measure reads it).
    data: Option<Data>,
    /// The file fdatasync appends to, as a WAL grows.
    wal: Option<File>,
    size: u64,
    wal_size: u64,
}

struct Data {
    file: File,
    /// The same file opened with O_DIRECT, where the file system takes it.
    direct: Option<File>,
    /// Cleared when an O_DIRECT read is refused after all: reads fall back to the cache
    /// dropped after each.
    direct_ok: AtomicBool,
}

/// Why a target's folder cannot take the round's files. Shown with the field it is about.
#[derive(Debug, thiserror::Error)]
pub enum FolderError {
    #[error("{} does not exist", .0.display())]
    Missing(PathBuf),
    #[error("{} is not a folder", .0.display())]
    NotFolder(PathBuf),
    #[error("{} is on a read-only file system", .0.display())]
    ReadOnly(PathBuf),
    #[error("{} is not writable by this process (uid {uid}): {source}", path.display())]
    NotWritable {
        path: PathBuf,
        uid: u32,
        #[source]
        source: io::Error,
    },
    #[error("the round's files need {} free, and {} has {} free", bytes_text(*need as f64), path.display(), bytes_text(*free as f64))]
    NoRoom { path: PathBuf, need: u64, free: u64 },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl FolderError {
    /// The error about `field` (at `line`) of the task, for the round.
    fn at(self, (pos, field): &(crate::diag::Pos, String)) -> SetupError {
        SetupError::Invalid(format!("line {}, {field}: {self}", pos.line))
    }
}

/// Checks `t`'s folder, removes what killed runs left there, and creates its files (the
/// data file written in full when a measure reads it). Blocking: run it off the runtime.
pub fn open(t: &DiskTarget) -> Result<Files, SetupError> {
    let dir = Path::new(&t.path);
    check_folder(dir, space_needed(t)).map_err(|e| match e {
        FolderError::NoRoom { .. } => e.at(&t.at.size),
        e => e.at(&t.at.path),
    })?;
    clean_up(dir);
    let measures: Vec<DiskMeasure> = t.measures.iter().map(|m| m.measure).collect();
    let io_err = |source| FolderError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let wal = if measures.contains(&DiskMeasure::Fdatasync) {
        Some(create(dir, "wal").map_err(io_err).map_err(|e| e.at(&t.at.path))?.0)
    } else {
        None
    };
    let data = if measures.iter().any(|m| *m != DiskMeasure::Fdatasync) {
        let (file, direct) = create(dir, "data").map_err(io_err).map_err(|e| e.at(&t.at.path))?;
        if measures.iter().any(|m| m.reads() || *m == DiskMeasure::RandWrite) {
            lay_out(&file, t.size).map_err(io_err).map_err(|e| e.at(&t.at.path))?;
        }
        Some(Data {
            direct_ok: AtomicBool::new(direct.is_some()),
            file,
            direct,
        })
    } else {
        None
    };
    Ok(Files {
        data,
        wal,
        size: t.size,
        wal_size: wal_size(t.size),
    })
}

/// What stops a round from writing `need` bytes in `dir`.
pub fn check_folder(dir: &Path, need: u64) -> Result<(), FolderError> {
    let path = dir.to_path_buf();
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(FolderError::NotFolder(path)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(FolderError::Missing(path)),
        Err(source) => return Err(FolderError::Io { path, source }),
    }
    let st = rustix::fs::statvfs(dir).map_err(|e| FolderError::Io {
        path: path.clone(),
        source: e.into(),
    })?;
    if st.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY) {
        return Err(FolderError::ReadOnly(path));
    }
    if let Err(e) = rustix::fs::access(dir, rustix::fs::Access::WRITE_OK | rustix::fs::Access::EXEC_OK) {
        return Err(FolderError::NotWritable {
            path,
            uid: rustix::process::getuid().as_raw(),
            source: e.into(),
        });
    }
    let free = st.f_bavail.saturating_mul(st.f_frsize);
    if free < need {
        return Err(FolderError::NoRoom { path, need, free });
    }
    Ok(())
}

/// Removes the files of runs that are gone: those whose lock nobody holds. Best effort.
pub fn clean_up(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for e in entries.flatten() {
        if !e.file_name().to_string_lossy().starts_with(FILE_PREFIX) {
            continue;
        }
        let Ok(f) = File::open(e.path()) else { continue };
        if rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_ok()
            && std::fs::remove_file(e.path()).is_ok()
        {
            removed += 1;
        }
    }
    removed
}

/// Creates a file of this run in `dir`, locked, and unlinks it: the file (and its O_DIRECT
/// twin, when the file system takes O_DIRECT) stays open, its name is gone.
fn create(dir: &Path, what: &str) -> io::Result<(File, Option<File>)> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    let path = dir.join(format!("{FILE_PREFIX}{}-{nanos}-{what}", std::process::id()));
    let file = OpenOptions::new().read(true).write(true).create_new(true).open(&path)?;
    let locked = rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive);
    let direct = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(&path)
        .ok();
    let removed = std::fs::remove_file(&path);
    locked.map_err(io::Error::from)?;
    removed?;
    Ok((file, direct))
}

/// Writes `size` bytes of data that does not compress into `file`, syncs, and drops it
/// from the page cache, so reads measure the disk.
fn lay_out(file: &File, size: u64) -> io::Result<()> {
    let block = noise(SEQ_BYTES as usize, size);
    let mut at = 0;
    while at < size {
        let n = (size - at).min(block.len() as u64) as usize;
        file.write_all_at(block.get(..n).unwrap_or(&block), at)?;
        at += n as u64;
    }
    file.sync_data()?;
    drop_cache(file, 0, size);
    Ok(())
}

/// `n` bytes of a xorshift sequence seeded by `seed`.
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(n);
    out
}

fn drop_cache(file: &File, at: u64, len: u64) {
    let _ = rustix::fs::fadvise(file, at, std::num::NonZeroU64::new(len), rustix::fs::Advice::DontNeed);
}

/// One measure's attempt: one I/O (and fdatasync where it writes), on a blocking thread.
pub struct DiskAttempt(Arc<Op>);

struct Op {
    measure: DiskMeasure,
    files: Arc<Files>,
    /// The next block of a sequential measure; the random state of a random one.
    cursor: AtomicU64,
    /// What the I/O writes from or reads into (one I/O at a time: never contended).
    buffer: Mutex<Vec<u8>>,
    samples: ErrorSamples,
}

/// O_DIRECT's alignment of offsets, lengths and buffers.
const ALIGN: usize = 4096;

impl DiskAttempt {
    pub fn new(measure: DiskMeasure, files: Arc<Files>) -> Self {
        let len = measure.bytes() as usize;
        // room to align the window of each I/O to 4 KiB for O_DIRECT
        let buffer = noise(len + ALIGN, len as u64 + measure as u64);
        DiskAttempt(Arc::new(Op {
            measure,
            files,
            cursor: AtomicU64::new(0x9E37_79B9_7F4A_7C15),
            buffer: Mutex::new(buffer),
            samples: ErrorSamples::default(),
        }))
    }
}

impl Op {
    /// The next offset: sequential ones go block by block and wrap at the file's end,
    /// random ones are whole blocks anywhere in it.
    fn next(&self, len: u64, span: u64) -> u64 {
        let blocks = (span / len).max(1);
        match self.measure {
            DiskMeasure::RandRead | DiskMeasure::RandWrite => {
                let mut x = self.cursor.load(Ordering::Relaxed);
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                self.cursor.store(x, Ordering::Relaxed);
                (x % blocks) * len
            }
            _ => (self.cursor.fetch_add(1, Ordering::Relaxed) % blocks) * len,
        }
    }

    fn run(&self) -> io::Result<u16> {
        let len = self.measure.bytes();
        let mut buffer = self.buffer.lock().unwrap_or_else(PoisonError::into_inner);
        let start = buffer.as_ptr().align_offset(ALIGN).min(ALIGN);
        let window = buffer
            .get_mut(start..start + len as usize)
            .ok_or_else(|| io::Error::other("the I/O buffer is too small"))?;
        let none = || io::Error::other("the file this measure needs was not created");
        match self.measure {
            DiskMeasure::Fdatasync => {
                let wal = self.files.wal.as_ref().ok_or_else(none)?;
                let at = self.next(len, self.files.wal_size);
                wal.write_all_at(window, at)?;
                wal.sync_data()?;
            }
            DiskMeasure::SeqWrite | DiskMeasure::RandWrite => {
                let data = self.files.data.as_ref().ok_or_else(none)?;
                let at = self.next(len, self.files.size);
                data.file.write_all_at(window, at)?;
                data.file.sync_data()?;
            }
            DiskMeasure::SeqRead | DiskMeasure::RandRead => {
                let data = self.files.data.as_ref().ok_or_else(none)?;
                let at = self.next(len, self.files.size);
                if let Some(d) = data.direct.as_ref().filter(|_| data.direct_ok.load(Ordering::Relaxed)) {
                    match d.read_exact_at(window, at) {
                        Ok(()) => return Ok(READ),
                        // refused after all (some file systems open O_DIRECT, then refuse it)
                        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                            data.direct_ok.store(false, Ordering::Relaxed);
                        }
                        Err(e) => return Err(e),
                    }
                }
                data.file.read_exact_at(window, at)?;
                drop_cache(&data.file, at, len);
            }
        }
        Ok(self.measure.code())
    }
}

impl Attempt for DiskAttempt {
    async fn attempt(&self) -> Outcome {
        let op = self.0.clone();
        match tokio::task::spawn_blocking(move || op.run()).await {
            Ok(Ok(code)) => Outcome::Answered(code),
            Ok(Err(e)) => {
                let kind = if e.kind() == io::ErrorKind::TimedOut {
                    ErrorKind::Timeout
                } else {
                    ErrorKind::Other
                };
                let measure = self.0.measure.as_str();
                self.0.samples.note(kind, || format!("{measure}: {e}"));
                Outcome::Failed(kind)
            }
            // the runtime is shutting down
            Err(_) => Outcome::Failed(ErrorKind::Other),
        }
    }

    fn error_samples(&self) -> Vec<(ErrorKind, String)> {
        self.0.samples.all()
    }
}

/// One measure of a target as the round presses it: after the measure before it ended
/// (the target's measures never overlap), for its share of the round's duration, at the
/// maximum rate with one I/O in flight.
pub struct Phase {
    attempt: Arc<DiskAttempt>,
    /// How many measures share the round's duration.
    of: u32,
    /// Opens when the measure before this one ended (none for the first).
    after: Mutex<Option<tokio::sync::oneshot::Receiver<()>>>,
    /// Opens the next measure's gate when dropped.
    then: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
}

impl Phase {
    /// The phases of one target's measures, chained in order.
    pub fn chain(attempts: Vec<DiskAttempt>) -> Vec<Phase> {
        let of = attempts.len().max(1) as u32;
        let mut gate: Option<tokio::sync::oneshot::Receiver<()>> = None;
        let n = attempts.len();
        attempts
            .into_iter()
            .enumerate()
            .map(|(i, a)| {
                let (tx, rx) = tokio::sync::oneshot::channel();
                let after = gate.take();
                let then = (i + 1 < n).then_some(tx);
                gate = Some(rx);
                Phase {
                    attempt: Arc::new(a),
                    of,
                    after: Mutex::new(after),
                    then: Mutex::new(then),
                }
            })
            .collect()
    }
}

impl Press for Phase {
    fn press(self: Arc<Self>, load: Load, _start: Instant, stop: Stop, live: Arc<Live>) -> JoinHandle<Pressed> {
        tokio::spawn(async move {
            let after = self.after.lock().unwrap_or_else(PoisonError::into_inner).take();
            if let Some(gate) = after {
                tokio::select! {
                    _ = gate => {}
                    _ = stop.stopped() => {}
                }
            }
            let share = Load {
                rate: crate::plan::Rate::Max,
                duration: load.duration / self.of,
                timeout: load.timeout,
                max_in_flight: 1,
            };
            let stats = pressure::press(&share, self.attempt.clone(), Instant::now(), stop, live).await;
            let mut samples = self.attempt.error_samples();
            if stats.error(ErrorKind::Timeout) > 0 && !samples.iter().any(|(k, _)| *k == ErrorKind::Timeout) {
                let t = crate::duration::format_duration(load.timeout);
                samples.push((ErrorKind::Timeout, format!("no I/O ended within the timeout of {t}")));
            }
            // the next measure may start
            drop(self.then.lock().unwrap_or_else(PoisonError::into_inner).take());
            (stats, samples)
        })
    }
}
