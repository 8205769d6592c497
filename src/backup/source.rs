//! What rustic archives for one service: its dumps (each a command's
//! output, streamed) and its volumes (listed by the agent, each file's
//! content sent only when rustic asks for it). The engine side is async;
//! rustic reads on its own threads: the two meet through channels.

use std::ffi::OsStr;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

use rustic_core::jiff::Timestamp;
use rustic_core::repofile::{Metadata, Node, NodeType};
use rustic_core::{ReadSource, ReadSourceEntry, RusticResult};

use super::agent::{self, Entry, frame};

/// What went wrong while rustic read: a dump that failed, a file that
/// could not be sent. rustic skips what it cannot read and still saves the
/// snapshot, so these decide whether that snapshot is kept.
#[derive(Debug, Clone, Default)]
pub struct Problems(Arc<Mutex<Vec<String>>>);

impl Problems {
    /// Notes a problem.
    pub fn push(&self, what: String) {
        if let Ok(mut list) = self.0.lock() {
            list.push(what);
        }
    }

    /// Every problem so far.
    pub fn list(&self) -> Vec<String> {
        self.0.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

/// Reads what an async task sends through a channel; an `Err` item ends the
/// stream with that error.
pub struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<io::Result<bytes::Bytes>>,
    chunk: bytes::Bytes,
    failed: Option<io::Error>,
}

impl ChannelReader {
    /// Reads from `rx`.
    pub fn new(rx: tokio::sync::mpsc::Receiver<io::Result<bytes::Bytes>>) -> Self {
        Self {
            rx,
            chunk: bytes::Bytes::new(),
            failed: None,
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.chunk.is_empty() {
            if let Some(e) = &self.failed {
                return Err(io::Error::new(e.kind(), e.to_string()));
            }
            match self.rx.blocking_recv() {
                None => return Ok(0),
                Some(Ok(chunk)) => self.chunk = chunk,
                Some(Err(e)) => self.failed = Some(e),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk[..n]);
        let _ = self.chunk.split_to(n);
        Ok(n)
    }
}

/// The agent's stream of a service's volumes, shared by the readers of
/// the files rustic opens. The agent sends files in the order they were
/// asked for, so each reader waits for its turn.
pub struct Volumes {
    requests: tokio::sync::mpsc::UnboundedSender<usize>,
    state: Mutex<Turns>,
    turn: Condvar,
    problems: Problems,
}

struct Turns {
    frames: ChannelReader,
    asked: u64,
    serving: u64,
    broken: Option<String>,
}

impl Volumes {
    /// Reads the agent's listing from `frames`; files are then asked for
    /// through `requests`.
    pub fn list(
        mut frames: ChannelReader,
        requests: tokio::sync::mpsc::UnboundedSender<usize>,
        problems: Problems,
    ) -> io::Result<(Arc<Self>, Vec<Entry>)> {
        let mut entries = Vec::new();
        loop {
            match agent::read_frame(&mut frames)? {
                Some((frame::ENTRY, payload)) => entries.push(serde_json::from_slice(&payload)?),
                Some((frame::LISTED, _)) => break,
                Some((frame::FATAL, text)) => {
                    return Err(io::Error::other(
                        String::from_utf8_lossy(&text).into_owned(),
                    ));
                }
                Some((kind, _)) => {
                    return Err(io::Error::other(format!(
                        "unexpected frame `{}` while listing",
                        kind as char
                    )));
                }
                None => return Err(io::Error::other("the agent stopped while listing")),
            }
        }
        let volumes = Arc::new(Self {
            requests,
            state: Mutex::new(Turns {
                frames,
                asked: 0,
                serving: 0,
                broken: None,
            }),
            turn: Condvar::new(),
            problems,
        });
        Ok((volumes, entries))
    }

    fn ask(self: &Arc<Self>, index: usize, path: PathBuf) -> io::Result<FileReader> {
        let mut state = self
            .state
            .lock()
            .map_err(|_| io::Error::other("poisoned"))?;
        let ticket = state.asked;
        state.asked += 1;
        // Asked under the lock, so tickets and the agent's order agree.
        self.requests
            .send(index)
            .map_err(|_| io::Error::other("the agent is gone"))?;
        Ok(FileReader {
            volumes: self.clone(),
            ticket,
            path,
            leftover: Vec::new(),
            at: 0,
            done: false,
        })
    }
}

/// One file's content, read from the agent's stream when its turn comes.
pub struct FileReader {
    volumes: Arc<Volumes>,
    ticket: u64,
    path: PathBuf,
    leftover: Vec<u8>,
    at: usize,
    done: bool,
}

impl FileReader {
    /// Reads the next frame of this file, waiting for its turn. `None` when
    /// the file is complete.
    fn next_piece(&mut self) -> io::Result<Option<Vec<u8>>> {
        let v = &self.volumes;
        let mut state = v.state.lock().map_err(|_| io::Error::other("poisoned"))?;
        while state.serving != self.ticket && state.broken.is_none() {
            state = v
                .turn
                .wait(state)
                .map_err(|_| io::Error::other("poisoned"))?;
        }
        if let Some(why) = &state.broken {
            self.done = true;
            return Err(io::Error::other(why.clone()));
        }
        let finish = |state: &mut Turns| {
            state.serving += 1;
            v.turn.notify_all();
        };
        match agent::read_frame(&mut state.frames) {
            Ok(Some((frame::DATA, data))) => Ok(Some(data)),
            Ok(Some((frame::FILE_END, _))) => {
                self.done = true;
                finish(&mut state);
                Ok(None)
            }
            Ok(Some((frame::FILE_ERROR, text))) => {
                self.done = true;
                finish(&mut state);
                let text = String::from_utf8_lossy(&text).into_owned();
                // A file a running service moved away (a mail read) is no
                // longer data at this path; anything else is a failure.
                if !text.contains("No such file") {
                    v.problems.push(format!(
                        "`{}` could not be read: {text}",
                        self.path.display()
                    ));
                }
                Err(io::Error::other(text))
            }
            other => {
                let why = match other {
                    Ok(Some((frame::FATAL, text))) => String::from_utf8_lossy(&text).into_owned(),
                    Ok(Some((kind, _))) => format!("unexpected frame `{}`", kind as char),
                    Ok(None) => "the agent stopped".into(),
                    Err(e) => e.to_string(),
                };
                v.problems.push(format!("reading the volumes: {why}"));
                state.broken = Some(why.clone());
                self.done = true;
                v.turn.notify_all();
                Err(io::Error::other(why))
            }
        }
    }
}

impl Read for FileReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at >= self.leftover.len() {
            if self.done {
                return Ok(0);
            }
            match self.next_piece()? {
                None => return Ok(0),
                Some(piece) => {
                    self.leftover = piece;
                    self.at = 0;
                }
            }
        }
        let n = buf.len().min(self.leftover.len() - self.at);
        buf[..n].copy_from_slice(&self.leftover[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

impl Drop for FileReader {
    fn drop(&mut self) {
        // A file rustic stopped reading still occupies its place in the
        // stream: read it to the end so the next one can be read.
        while !self.done {
            if !matches!(self.next_piece(), Ok(Some(_))) {
                break;
            }
        }
    }
}

/// How rustic opens an entry.
pub enum Opener {
    /// A dump: the command's output, already flowing.
    Dump(ChannelReader),
    /// A volume file: asked for when opened.
    File(Arc<Volumes>, usize, PathBuf),
}

/// An open entry.
pub enum Reader {
    /// A dump.
    Dump(ChannelReader),
    /// A volume file.
    File(FileReader),
}

impl Read for Reader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Dump(r) => r.read(buf),
            Self::File(r) => r.read(buf),
        }
    }
}

impl rustic_core::ReadSourceOpen for Opener {
    type Reader = Reader;

    fn open(self) -> RusticResult<Reader> {
        match self {
            Self::Dump(r) => Ok(Reader::Dump(r)),
            Self::File(volumes, index, path) => {
                volumes.ask(index, path).map(Reader::File).map_err(|e| {
                    rustic_core::RusticError::with_source(
                        rustic_core::ErrorKind::InputOutput,
                        "cannot ask the agent for a file",
                        e,
                    )
                })
            }
        }
    }
}

/// Everything one service's snapshot holds, in the order rustic stores it.
pub struct ServiceSource {
    entries: Mutex<Vec<ReadSourceEntry<Opener>>>,
    size: u64,
}

impl ServiceSource {
    /// Dumps under `/dumps`, then volumes under `/volumes`.
    pub fn new(
        dumps: Vec<(String, ChannelReader)>,
        volumes: Option<(Arc<Volumes>, Vec<Entry>)>,
    ) -> Self {
        let mut entries = Vec::new();
        let now = Timestamp::now();
        let mut size = 0;
        if !dumps.is_empty() {
            let meta = Metadata {
                mode: Some(go_mode(0o040_700)),
                mtime: Some(now),
                ..Default::default()
            };
            entries.push(entry("/dumps", NodeType::Dir, meta, None));
            let mut dumps = dumps;
            dumps.sort_by(|a, b| a.0.cmp(&b.0));
            for (file, reader) in dumps {
                let meta = Metadata {
                    mode: Some(go_mode(0o100_600)),
                    mtime: Some(now),
                    ..Default::default()
                };
                entries.push(entry(
                    &format!("/dumps/{file}"),
                    NodeType::File,
                    meta,
                    Some(Opener::Dump(reader)),
                ));
            }
        }
        if let Some((volumes, listed)) = volumes {
            for (index, e) in listed.iter().enumerate() {
                let rel = e.path_bytes();
                let mut path = PathBuf::from("/volumes");
                if !rel.is_empty() {
                    path.push(OsStr::from_bytes(&rel));
                }
                size += e.size;
                let opener =
                    (e.kind == "file").then(|| Opener::File(volumes.clone(), index, path.clone()));
                entries.push(node_entry(path, e, opener));
            }
        }
        Self {
            entries: Mutex::new(entries),
            size,
        }
    }
}

fn entry(
    path: &str,
    kind: NodeType,
    meta: Metadata,
    open: Option<Opener>,
) -> ReadSourceEntry<Opener> {
    let path = PathBuf::from(path);
    let name = path.file_name().unwrap_or_default().to_os_string();
    ReadSourceEntry {
        node: Node::new_node(&name, kind, meta),
        path,
        open,
    }
}

fn timestamp((secs, nanos): (i64, i64)) -> Option<Timestamp> {
    Timestamp::new(secs, i32::try_from(nanos).unwrap_or(0)).ok()
}

fn node_entry(path: PathBuf, e: &Entry, open: Option<Opener>) -> ReadSourceEntry<Opener> {
    let kind = match e.kind.as_str() {
        "dir" => NodeType::Dir,
        "symlink" => {
            let target = e.target_bytes().unwrap_or_default();
            NodeType::from_link(Path::new(OsStr::from_bytes(&target)))
        }
        "chardev" => NodeType::Chardev { device: e.rdev },
        "blockdev" => NodeType::Dev { device: e.rdev },
        "fifo" => NodeType::Fifo,
        "socket" => NodeType::Socket,
        _ => NodeType::File,
    };
    let meta = Metadata {
        mode: Some(go_mode(e.mode)),
        mtime: timestamp(e.mtime),
        atime: timestamp(e.atime),
        ctime: timestamp(e.ctime),
        uid: Some(e.uid),
        gid: Some(e.gid),
        inode: e.ino,
        device_id: e.dev,
        size: e.size,
        links: e.nlink,
        // rustic does not export the attribute's type; its serialised form
        // (name, base64 value) is restic's, and builds it.
        extended_attributes: serde_json::from_value(serde_json::Value::Array(
            e.xattrs
                .iter()
                .map(|(name, value)| serde_json::json!({ "name": name, "value": value }))
                .collect(),
        ))
        .unwrap_or_default(),
        ..Default::default()
    };
    let name = path.file_name().unwrap_or_default().to_os_string();
    ReadSourceEntry {
        node: Node::new_node(&name, kind, meta),
        path,
        open,
    }
}

impl ReadSource for ServiceSource {
    type Open = Opener;
    type Iter = std::vec::IntoIter<RusticResult<ReadSourceEntry<Opener>>>;

    fn size(&self) -> RusticResult<Option<u64>> {
        Ok(Some(self.size))
    }

    fn entries(&self) -> Self::Iter {
        let taken = self
            .entries
            .lock()
            .map(|mut e| std::mem::take(&mut *e))
            .unwrap_or_default();
        taken.into_iter().map(Ok).collect::<Vec<_>>().into_iter()
    }
}

// Go's `os.FileMode` bits, the mode restic stores.
const GO_DIR: u32 = 1 << 31;
const GO_SYMLINK: u32 = 1 << 27;
const GO_DEVICE: u32 = 1 << 26;
const GO_PIPE: u32 = 1 << 25;
const GO_SOCKET: u32 = 1 << 24;
const GO_SETUID: u32 = 1 << 23;
const GO_SETGID: u32 = 1 << 22;
const GO_CHARDEV: u32 = 1 << 21;
const GO_STICKY: u32 = 1 << 20;

/// A Unix `st_mode` as restic stores it (Go's `os.FileMode`).
pub fn go_mode(mode: u32) -> u32 {
    let mut go = mode & 0o777;
    go |= match mode & 0o170_000 {
        0o040_000 => GO_DIR,
        0o120_000 => GO_SYMLINK,
        0o060_000 => GO_DEVICE,
        0o020_000 => GO_DEVICE | GO_CHARDEV,
        0o010_000 => GO_PIPE,
        0o140_000 => GO_SOCKET,
        _ => 0,
    };
    if mode & 0o4000 != 0 {
        go |= GO_SETUID;
    }
    if mode & 0o2000 != 0 {
        go |= GO_SETGID;
    }
    if mode & 0o1000 != 0 {
        go |= GO_STICKY;
    }
    go
}

/// Permission bits (with set-uid, set-gid, sticky) of a mode restic stored.
pub fn unix_permissions(go: u32) -> u32 {
    let mut mode = go & 0o777;
    if go & GO_SETUID != 0 {
        mode |= 0o4000;
    }
    if go & GO_SETGID != 0 {
        mode |= 0o2000;
    }
    if go & GO_STICKY != 0 {
        mode |= 0o1000;
    }
    mode
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_survive_the_go_encoding() {
        for mode in [
            0o100_644, 0o104_755, 0o040_700, 0o102_750, 0o041_777, 0o120_777,
        ] {
            assert_eq!(unix_permissions(go_mode(mode)), mode & 0o7777, "{mode:o}");
        }
        assert_eq!(go_mode(0o040_755), GO_DIR | 0o755);
        assert_eq!(go_mode(0o104_755), GO_SETUID | 0o755);
    }
}
