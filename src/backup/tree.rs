//! A snapshot's folder as a tar stream, for the agent to unpack into a
//! volume: owners, modes (set-uid too), hard links, symbolic links,
//! extended attributes and times, as the snapshot holds them. Each file's
//! content is hashed on the way, so that a test restore can be compared
//! with what the agent finds in the volume afterwards.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};

use rustic_core::repofile::{Node, NodeType};
use sha2::{Digest as _, Sha256};

use super::agent::{Digest, hex};
use super::repo::Repo;
use super::source::unix_permissions;

fn io_error(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

/// Writes the folder `node` (its own owner and mode as the archive's `./`)
/// and everything under it. Returns what the unpacked folder must hold.
pub fn write_tar(repo: &Repo, node: &Node, out: impl Write) -> io::Result<Vec<Digest>> {
    let mut builder = tar::Builder::new(out);
    builder.mode(tar::HeaderMode::Complete);
    let mut digests = Vec::new();
    let mut links = HashMap::new();
    let mut header = header_of(node, tar::EntryType::Directory, 0);
    builder.append_data(&mut header, "./", io::empty())?;
    digests.push(digest("", node, String::new()));
    if let Some(tree) = node.subtree {
        walk(
            repo,
            tree,
            Path::new(""),
            &mut builder,
            &mut digests,
            &mut links,
        )?;
    }
    builder.into_inner()?.flush()?;
    Ok(digests)
}

fn digest(path: &str, node: &Node, hash: String) -> Digest {
    let kind = match &node.node_type {
        NodeType::File => "file",
        NodeType::Dir => "dir",
        NodeType::Symlink { .. } => "symlink",
        NodeType::Dev { .. } => "blockdev",
        NodeType::Chardev { .. } => "chardev",
        NodeType::Fifo => "fifo",
        NodeType::Socket => "socket",
    };
    Digest {
        path: path.to_string(),
        kind: kind.to_string(),
        mode: unix_permissions(node.meta.mode.unwrap_or(0o644)),
        uid: node.meta.uid.unwrap_or(0),
        gid: node.meta.gid.unwrap_or(0),
        hash,
    }
}

fn header_of(node: &Node, kind: tar::EntryType, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(unix_permissions(node.meta.mode.unwrap_or(0o644)));
    h.set_uid(u64::from(node.meta.uid.unwrap_or(0)));
    h.set_gid(u64::from(node.meta.gid.unwrap_or(0)));
    let mtime = node
        .meta
        .mtime
        .map_or(0, rustic_core::jiff::Timestamp::as_second);
    h.set_mtime(u64::try_from(mtime).unwrap_or(0));
    h
}

fn walk<W: Write>(
    repo: &Repo,
    tree: rustic_core::TreeId,
    rel: &Path,
    builder: &mut tar::Builder<W>,
    digests: &mut Vec<Digest>,
    links: &mut HashMap<(u64, u64), PathBuf>,
) -> io::Result<()> {
    let tree = repo.get_tree(&tree).map_err(io_error)?;
    for node in &tree.nodes {
        let name = node.name();
        let path = rel.join(&*name);
        let shown = String::from_utf8_lossy(path.as_os_str().as_bytes()).into_owned();
        // A file's attributes go in the one PAX record its long path may
        // need too: a reader keeps only the last of two in a row.
        if node.node_type != NodeType::File {
            xattrs(builder, node)?;
        }
        match &node.node_type {
            NodeType::Dir => {
                let mut header = header_of(node, tar::EntryType::Directory, 0);
                builder.append_data(&mut header, &path, io::empty())?;
                digests.push(digest(&shown, node, String::new()));
                if let Some(sub) = node.subtree {
                    walk(repo, sub, &path, builder, digests, links)?;
                }
            }
            NodeType::File => {
                let key = (node.meta.device_id, node.meta.inode);
                if node.meta.links > 1
                    && node.meta.inode != 0
                    && let Some(first) = links.get(&key)
                {
                    let mut header = header_of(node, tar::EntryType::Link, 0);
                    builder.append_link(&mut header, &path, first)?;
                    let hash = digests
                        .iter()
                        .find(|d| Path::new(&d.path) == first.as_path())
                        .map(|d| d.hash.clone())
                        .unwrap_or_default();
                    digests.push(digest(&shown, node, hash));
                    continue;
                }
                if node.meta.links > 1 && node.meta.inode != 0 {
                    links.insert(key, path.clone());
                }
                let hash = append_file(repo, builder, node, &path)?;
                digests.push(digest(&shown, node, hash));
            }
            NodeType::Symlink { .. } => {
                let target = node.node_type.to_link();
                let mut header = header_of(node, tar::EntryType::Symlink, 0);
                builder.append_link(&mut header, &path, target)?;
                let hash = hex(&Sha256::digest(target.as_os_str().as_bytes()));
                digests.push(digest(&shown, node, hash));
            }
            NodeType::Chardev { device } | NodeType::Dev { device } => {
                let kind = if matches!(node.node_type, NodeType::Chardev { .. }) {
                    tar::EntryType::Char
                } else {
                    tar::EntryType::Block
                };
                let mut header = header_of(node, kind, 0);
                let (major, minor) = split_device(*device);
                header.set_device_major(major)?;
                header.set_device_minor(minor)?;
                builder.append_data(&mut header, &path, io::empty())?;
                digests.push(digest(&shown, node, String::new()));
            }
            NodeType::Fifo => {
                let mut header = header_of(node, tar::EntryType::Fifo, 0);
                builder.append_data(&mut header, &path, io::empty())?;
                digests.push(digest(&shown, node, String::new()));
            }
            // A socket is made by the program that listens on it.
            NodeType::Socket => {}
        }
    }
    Ok(())
}

/// Appends a file: its header, then its content written by rustic's
/// `dump`, which reads the blobs of a large file in parallel (a reader
/// pulling piece by piece would decrypt them one at a time). Gives the
/// content's hash.
fn append_file<W: Write>(
    repo: &Repo,
    builder: &mut tar::Builder<W>,
    node: &Node,
    path: &Path,
) -> io::Result<String> {
    let size = node.meta.size;
    let mut header = header_of(node, tar::EntryType::Regular, size);
    let name = path.as_os_str().as_bytes();
    let mut records = xattr_records(node);
    if name.len() > 99 {
        // Too long for the header itself: a PAX record carries the path.
        records.push(("path".to_string(), name.to_vec()));
        header.set_path("long-name")?;
    } else {
        header.set_path(path)?;
    }
    if !records.is_empty() {
        builder.append_pax_extensions(records.iter().map(|(k, v)| (k.as_str(), v.as_slice())))?;
    }
    header.set_cksum();
    let out = builder.get_mut();
    out.write_all(header.as_bytes())?;
    let mut counted = Counted {
        out,
        written: 0,
        hasher: Sha256::new(),
    };
    repo.dump(node, &mut counted).map_err(io_error)?;
    if counted.written != size {
        return Err(io::Error::other(format!(
            "`{}` holds {} bytes where {size} were stored",
            path.display(),
            counted.written
        )));
    }
    let hash = hex(&counted.hasher.finalize());
    let padding = (512 - size % 512) % 512;
    out.write_all(&vec![0u8; usize::try_from(padding).unwrap_or(0)])?;
    Ok(hash)
}

/// A writer that counts and hashes what passes through it.
struct Counted<'w, W: Write> {
    out: &'w mut W,
    written: u64,
    hasher: Sha256,
}

impl<W: Write> Write for Counted<'_, W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = self.out.write(data)?;
        self.hasher.update(&data[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

fn xattr_records(node: &Node) -> Vec<(String, Vec<u8>)> {
    node.meta
        .extended_attributes
        .iter()
        .map(|a| {
            (
                format!("SCHILY.xattr.{}", a.name),
                a.value.clone().unwrap_or_default(),
            )
        })
        .collect()
}

fn xattrs<W: Write>(builder: &mut tar::Builder<W>, node: &Node) -> io::Result<()> {
    let pairs = xattr_records(node);
    if pairs.is_empty() {
        return Ok(());
    }
    builder.append_pax_extensions(pairs.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
}

fn split_device(dev: u64) -> (u32, u32) {
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    (
        u32::try_from(major).unwrap_or(0),
        u32::try_from(minor).unwrap_or(0),
    )
}

/// A stored file's content, read piece by piece and hashed on the way.
pub struct Content<'r> {
    repo: &'r Repo,
    file: rustic_core::vfs::OpenFile,
    size: u64,
    at: u64,
    piece: bytes::Bytes,
    hasher: Sha256,
}

impl<'r> Content<'r> {
    /// Opens `node`'s content.
    pub fn new(repo: &'r Repo, node: &Node) -> io::Result<Self> {
        Ok(Self {
            repo,
            file: repo.open_file(node).map_err(io_error)?,
            size: node.meta.size,
            at: 0,
            piece: bytes::Bytes::new(),
            hasher: Sha256::new(),
        })
    }

    /// The hash of what was read so far.
    pub fn hash(self) -> String {
        hex(&self.hasher.finalize())
    }
}

impl Read for Content<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.piece.is_empty() {
            if self.at >= self.size {
                return Ok(0);
            }
            let want = (self.size - self.at).min(4 << 20);
            let offset = usize::try_from(self.at).map_err(io_error)?;
            let length = usize::try_from(want).map_err(io_error)?;
            self.piece = self
                .repo
                .read_file_at(&self.file, offset, length)
                .map_err(io_error)?;
            if self.piece.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the stored file is shorter than its size",
                ));
            }
        }
        let n = buf.len().min(self.piece.len());
        buf[..n].copy_from_slice(&self.piece[..n]);
        self.hasher.update(&buf[..n]);
        let _ = self.piece.split_to(n);
        self.at += n as u64;
        Ok(n)
    }
}

/// The node at `path` (like `volumes/files`) of a snapshot's tree.
pub fn node_at(repo: &Repo, tree: rustic_core::TreeId, path: &str) -> io::Result<Node> {
    repo.node_from_path(tree, Path::new(OsStr::new(path)))
        .map_err(io_error)
}
