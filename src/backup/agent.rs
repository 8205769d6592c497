//! The side of a backup or a restore that runs inside the engine: `voisin
//! agent`, in a helper container built from the voisin executable with the
//! service's volumes mounted. It talks to the voisin on the admin's side
//! over the exec's standard input and output, so that volume contents travel
//! through the Docker API and never through a shared disk.
//!
//! Backing up (`agent serve ROOT`): the agent first lists every entry under
//! ROOT (owner, mode, times, inode, links, extended attributes), then sends
//! the contents of the files it is asked for, in the order asked. Files that
//! the previous snapshot already holds unchanged are never asked for, so an
//! unchanged re-backup moves only the listing.
//!
//! Restoring (`agent clean ROOT`): empties a volume, into which the engine
//! then extracts the snapshot's tar through its archive endpoint, keeping
//! owners, modes, set-uid bits, links and extended attributes.
//!
//! `agent digest ROOT` prints one line per entry with a hash of its content:
//! what `backup verify` compares a test restore against.

use std::ffi::OsStr;
use std::fs;
use std::io::{self, BufRead, Read, Write};
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
use std::path::Path;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// A frame's kind, its first byte. After it, a big-endian `u32` length and
/// that many bytes.
pub mod frame {
    /// One listed entry, as JSON.
    pub const ENTRY: u8 = b'E';
    /// The listing is complete.
    pub const LISTED: u8 = b'L';
    /// A piece of the file being sent.
    pub const DATA: u8 = b'D';
    /// The file being sent is complete.
    pub const FILE_END: u8 = b'F';
    /// The file asked for could not be sent; the text says why.
    pub const FILE_ERROR: u8 = b'X';
    /// The agent cannot go on; the text says why.
    pub const FATAL: u8 = b'Z';
}

/// What a file-content frame carries at most.
const CHUNK: usize = 256 * 1024;

/// One entry of a volume, as the agent lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Path relative to the root, raw bytes in base64 (names need not be
    /// UTF-8); empty for the root itself.
    pub path: String,
    /// `file`, `dir`, `symlink`, `chardev`, `blockdev`, `fifo` or `socket`.
    pub kind: String,
    /// `st_mode`: type and permission bits, set-uid, set-gid and sticky.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size in bytes (files).
    pub size: u64,
    /// Modification time: seconds and nanoseconds.
    pub mtime: (i64, i64),
    /// Access time.
    pub atime: (i64, i64),
    /// Change time.
    pub ctime: (i64, i64),
    /// Inode.
    pub ino: u64,
    /// Device.
    pub dev: u64,
    /// Hard links.
    pub nlink: u64,
    /// Device number (device nodes).
    pub rdev: u64,
    /// Symbolic link target, raw bytes in base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Extended attributes: name and value (base64).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub xattrs: Vec<(String, String)>,
}

impl Entry {
    /// The relative path's raw bytes.
    pub fn path_bytes(&self) -> Vec<u8> {
        base64::engine::general_purpose::STANDARD
            .decode(&self.path)
            .unwrap_or_default()
    }

    /// The symbolic link's target bytes.
    pub fn target_bytes(&self) -> Option<Vec<u8>> {
        self.target
            .as_ref()
            .and_then(|t| base64::engine::general_purpose::STANDARD.decode(t).ok())
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Lists `root` depth first, each folder's names in byte order: the order
/// restic stores trees in, and the order the archiver must receive them.
pub fn list(root: &Path) -> io::Result<Vec<Entry>> {
    let mut out = Vec::new();
    walk(root, Path::new(""), &mut out)?;
    Ok(out)
}

fn walk(root: &Path, rel: &Path, out: &mut Vec<Entry>) -> io::Result<()> {
    let full = root.join(rel);
    let meta = fs::symlink_metadata(&full)?;
    out.push(entry(&full, rel, &meta)?);
    if meta.is_dir() {
        let mut names: Vec<_> = fs::read_dir(&full)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<_>>()?;
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for name in names {
            match walk(root, &rel.join(&name), out) {
                // Gone between the folder's listing and its own: a file a
                // running service moved (a mail delivered); it is not data
                // any more at this path.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                other => other?,
            }
        }
    }
    Ok(())
}

fn entry(full: &Path, rel: &Path, meta: &fs::Metadata) -> io::Result<Entry> {
    let ft = meta.file_type();
    let kind = if ft.is_file() {
        "file"
    } else if ft.is_dir() {
        "dir"
    } else if ft.is_symlink() {
        "symlink"
    } else if ft.is_char_device() {
        "chardev"
    } else if ft.is_block_device() {
        "blockdev"
    } else if ft.is_fifo() {
        "fifo"
    } else {
        "socket"
    };
    let target = if ft.is_symlink() {
        Some(b64(fs::read_link(full)?.as_os_str().as_bytes()))
    } else {
        None
    };
    let mut xattrs = Vec::new();
    // Extended attributes of a symbolic link are its own (no following).
    if let Ok(names) = xattr::list(full) {
        for name in names {
            if let Ok(Some(value)) = xattr::get(full, &name) {
                xattrs.push((name.to_string_lossy().into_owned(), b64(&value)));
            }
        }
        xattrs.sort();
    }
    Ok(Entry {
        path: b64(rel.as_os_str().as_bytes()),
        kind: kind.to_string(),
        mode: meta.mode(),
        uid: meta.uid(),
        gid: meta.gid(),
        size: if ft.is_file() { meta.size() } else { 0 },
        mtime: (meta.mtime(), meta.mtime_nsec()),
        atime: (meta.atime(), meta.atime_nsec()),
        ctime: (meta.ctime(), meta.ctime_nsec()),
        ino: meta.ino(),
        dev: meta.dev(),
        nlink: meta.nlink(),
        rdev: meta.rdev(),
        target,
        xattrs,
    })
}

/// Writes one frame.
pub fn write_frame(out: &mut impl Write, kind: u8, payload: &[u8]) -> io::Result<()> {
    let len = u32::try_from(payload.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame too long"))?;
    out.write_all(&[kind])?;
    out.write_all(&len.to_be_bytes())?;
    out.write_all(payload)
}

/// Reads one frame; `None` at the end of the stream.
pub fn read_frame(input: &mut impl Read) -> io::Result<Option<(u8, Vec<u8>)>> {
    let mut head = [0u8; 5];
    match input.read_exact(&mut head) {
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        other => other?,
    }
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    let mut payload = vec![0u8; len];
    input.read_exact(&mut payload)?;
    Ok(Some((head[0], payload)))
}

/// `voisin agent serve ROOT`: lists, then sends the files asked for (one
/// index of the listing per input line) until the input ends.
pub fn serve(root: &Path, input: impl BufRead, out: impl Write) -> io::Result<()> {
    let mut out = io::BufWriter::with_capacity(CHUNK + 16, out);
    let entries = match list(root) {
        Ok(e) => e,
        Err(e) => {
            write_frame(
                &mut out,
                frame::FATAL,
                format!("cannot list {}: {e}", root.display()).as_bytes(),
            )?;
            return out.flush();
        }
    };
    for e in &entries {
        write_frame(&mut out, frame::ENTRY, &serde_json::to_vec(e)?)?;
    }
    write_frame(&mut out, frame::LISTED, &[])?;
    out.flush()?;
    let mut buf = vec![0u8; CHUNK];
    for line in input.lines() {
        let line = line?;
        let Some(e) = line
            .trim()
            .parse::<usize>()
            .ok()
            .and_then(|i| entries.get(i))
        else {
            write_frame(
                &mut out,
                frame::FATAL,
                format!("bad request `{line}`").as_bytes(),
            )?;
            return out.flush();
        };
        let path = root.join(OsStr::from_bytes(&e.path_bytes()));
        match send_file(&path, e.size, &mut buf, &mut out) {
            Ok(()) => write_frame(&mut out, frame::FILE_END, &[])?,
            Err(err) => write_frame(&mut out, frame::FILE_ERROR, err.to_string().as_bytes())?,
        }
        out.flush()?;
    }
    Ok(())
}

/// Sends exactly `size` bytes of the file, the size it was listed with: a
/// file that grew since is sent as it was listed; one that shrank cannot be.
fn send_file(path: &Path, size: u64, buf: &mut [u8], out: &mut impl Write) -> io::Result<()> {
    let mut file = fs::File::open(path)?;
    let mut left = size;
    while left > 0 {
        let want = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
        let n = file.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{} shrank while it was read", path.display()),
            ));
        }
        write_frame(out, frame::DATA, &buf[..n])?;
        left -= n as u64;
    }
    Ok(())
}

/// `voisin agent clean ROOT`: removes everything under ROOT (a volume's
/// mount point, which stays), before the engine extracts a snapshot there.
pub fn clean(root: &Path) -> io::Result<()> {
    for item in fs::read_dir(root)? {
        let path = item?.path();
        if fs::symlink_metadata(&path)?.is_dir() {
            fs::remove_dir_all(&path)?;
        } else {
            fs::remove_file(&path)?;
        }
    }
    Ok(())
}

/// One line of `agent digest`: what a restore must reproduce.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Digest {
    /// Path relative to the root (lossy UTF-8: for comparison only).
    pub path: String,
    /// Kind, as in [`Entry`].
    pub kind: String,
    /// Permission bits with set-uid, set-gid and sticky.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// SHA-256 of the content (files), or the link target (symbolic links).
    pub hash: String,
}

/// Every entry under `root` with a hash of its content, in listing order.
pub fn digest(root: &Path) -> io::Result<Vec<Digest>> {
    let mut out = Vec::new();
    for e in list(root)? {
        let rel = e.path_bytes();
        let hash = match e.kind.as_str() {
            "file" => {
                let mut file = fs::File::open(root.join(OsStr::from_bytes(&rel)))?;
                let mut hasher = Sha256::new();
                let mut buf = vec![0u8; CHUNK];
                loop {
                    let n = file.read(&mut buf)?;
                    if n == 0 {
                        break;
                    }
                    hasher.update(&buf[..n]);
                }
                hex(&hasher.finalize())
            }
            "symlink" => hex(&Sha256::digest(e.target_bytes().unwrap_or_default())),
            _ => String::new(),
        };
        out.push(Digest {
            path: String::from_utf8_lossy(&rel).into_owned(),
            kind: e.kind.clone(),
            mode: e.mode & 0o7777,
            uid: e.uid,
            gid: e.gid,
            hash,
        });
    }
    Ok(out)
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    crate::render::state::sha256_hex_of(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_is_depth_first_in_byte_order() {
        let dir = tempfile::tempdir().expect("temp dir");
        for p in ["b/x", "a.txt", "a/z", "a/y"] {
            let path = dir.path().join(p);
            fs::create_dir_all(path.parent().expect("parent")).expect("dirs");
            fs::write(&path, p).expect("writes");
        }
        let names: Vec<String> = list(dir.path())
            .expect("lists")
            .iter()
            .map(|e| String::from_utf8(e.path_bytes()).expect("utf-8"))
            .collect();
        assert_eq!(names, ["", "a", "a/y", "a/z", "a.txt", "b", "b/x"]);
    }

    #[test]
    #[allow(clippy::naive_bytecount)]
    fn serve_sends_the_files_asked_for_in_order() {
        let dir = tempfile::tempdir().expect("temp dir");
        fs::write(dir.path().join("one"), b"first").expect("writes");
        fs::write(dir.path().join("two"), vec![7u8; CHUNK + 10]).expect("writes");
        let mut out = Vec::new();
        serve(dir.path(), &b"2\n1\n"[..], &mut out).expect("serves");
        let mut input = &out[..];
        let mut kinds = Vec::new();
        let mut data = Vec::new();
        while let Some((kind, payload)) = read_frame(&mut input).expect("reads") {
            if kind == frame::DATA {
                data.extend_from_slice(&payload);
            }
            kinds.push(kind);
        }
        let entries = kinds.iter().filter(|k| **k == frame::ENTRY).count();
        assert_eq!(entries, 3);
        assert_eq!(kinds.iter().filter(|k| **k == frame::FILE_END).count(), 2);
        assert_eq!(data.len(), CHUNK + 10 + 5);
        assert_eq!(&data[data.len() - 5..], b"first");
    }

    #[test]
    fn a_file_that_shrank_is_an_error_not_a_short_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("f");
        fs::write(&path, b"abc").expect("writes");
        let mut buf = vec![0u8; 16];
        let err = send_file(&path, 10, &mut buf, &mut Vec::new()).expect_err("refused");
        assert!(err.to_string().contains("shrank"), "{err}");
    }
}
