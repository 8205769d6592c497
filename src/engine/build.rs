//! Images voisin makes itself, so that nothing has to be pulled: the image
//! of the lending board, built from the running voisin executable, and a
//! tiny tool image whose containers are never started (the engine lock, the
//! deploy record, the helpers that fill files volumes).

use std::fmt::Write as _;
use std::io;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

/// The tool image: one small file, never run.
pub const TOOL_IMAGE: &str = "voisin-tool:1";

/// The label that records what an image voisin built was built from.
pub const SOURCE_LABEL: &str = "voisin.image.source";

/// A folder the voisin image must have, owned by a container's user, so
/// that a new volume mounted there starts with that owner.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct OwnedDir {
    /// Absolute path.
    pub path: String,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
}

/// What an image built from voisin is made of: the executable (by hash)
/// and its folders. Equal fingerprints mean equal images.
pub fn fingerprint(exe_sha256: &str, dirs: &[OwnedDir]) -> String {
    let mut text = format!("voisin-image/1\nexe {exe_sha256}\n");
    for d in dirs {
        let _ = writeln!(text, "dir {} {}:{}", d.path, d.uid, d.gid);
    }
    crate::render::state::sha256_hex(text.as_bytes())
}

/// The running executable's SHA-256. Hashing 30 MB on every run would cost
/// more than the whole no-op deploy, so the result is kept in the user's
/// cache, keyed by the file's identity (device, inode, size, change time).
pub fn exe_sha256() -> io::Result<String> {
    let exe = Path::new("/proc/self/exe");
    let meta = std::fs::metadata(exe)?;
    let key = format!(
        "{} {} {} {}.{}",
        meta.dev(),
        meta.ino(),
        meta.len(),
        meta.ctime(),
        meta.ctime_nsec()
    );
    let cache = cache_file();
    if let Some(cache) = &cache
        && let Ok(text) = std::fs::read_to_string(cache)
        && let Some((cached_key, sha)) = text.trim_end().rsplit_once(' ')
        && cached_key == key
        && sha.len() == 64
    {
        return Ok(sha.to_string());
    }
    let mut file = std::fs::File::open(exe)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = io::Read::read(&mut file, &mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let sha = crate::render::state::sha256_hex_of(&hasher.finalize());
    if let Some(cache) = cache {
        // A cache that cannot be written only costs time next run.
        if let Some(dir) = cache.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = std::fs::write(&cache, format!("{key} {sha}\n"));
    }
    Ok(sha)
}

fn cache_file() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("voisin").join("exe-sha256"))
}

/// The build context (a tar with a `Dockerfile`) of the image built from
/// the running executable: `/usr/local/bin/voisin`, the shared libraries it
/// loads when it is dynamically linked, `/tmp`, and `dirs` with their owners.
pub fn voisin_context(dirs: &[OwnedDir], fingerprint: &str) -> io::Result<Vec<u8>> {
    let exe = std::fs::read("/proc/self/exe")?;
    let libraries = shared_libraries(&exe)?;
    let mut tar = tar::Builder::new(Vec::new());
    add_file(&mut tar, "rootfs/usr/local/bin/voisin", &exe, 0o755)?;
    for lib in &libraries {
        // Symbolic links are followed: the image gets the library's bytes
        // at the path the loader asks for.
        let bytes = std::fs::read(lib)?;
        let inside = format!("rootfs{}", lib.display());
        add_file(&mut tar, &inside, &bytes, 0o755)?;
    }
    add_dir(&mut tar, "rootfs/tmp", 0o1777)?;
    let mut dockerfile = String::from("FROM scratch\nCOPY rootfs/ /\n");
    for (i, d) in dirs.iter().enumerate() {
        add_dir(&mut tar, &format!("owned/{i}"), 0o755)?;
        let _ = writeln!(
            dockerfile,
            "COPY --chown={}:{} owned/{i}/ {}/",
            d.uid, d.gid, d.path
        );
    }
    let _ = writeln!(
        dockerfile,
        "ENV PATH=/usr/local/bin:/usr/bin:/bin\nLABEL {SOURCE_LABEL}={fingerprint}"
    );
    add_file(&mut tar, "Dockerfile", dockerfile.as_bytes(), 0o644)?;
    tar.into_inner()
}

/// The build context of the tool image.
pub fn tool_context() -> io::Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    add_file(
        &mut tar,
        "voisin-tool",
        b"voisin's tool image: its containers hold a lock or a record and never run\n",
        0o644,
    )?;
    add_file(
        &mut tar,
        "Dockerfile",
        b"FROM scratch\nCOPY voisin-tool /voisin-tool\nLABEL voisin.kind=tool\n",
        0o644,
    )?;
    tar.into_inner()
}

fn add_file(
    tar: &mut tar::Builder<Vec<u8>>,
    path: &str,
    bytes: &[u8],
    mode: u32,
) -> io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(bytes.len() as u64);
    header.set_mode(mode);
    header.set_mtime(0);
    tar.append_data(&mut header, path, bytes)
}

fn add_dir(tar: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32) -> io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Directory);
    header.set_size(0);
    header.set_mode(mode);
    header.set_mtime(0);
    tar.append_data(&mut header, format!("{path}/"), io::empty())
}

/// The shared libraries a dynamically linked executable loads, with its
/// loader; nothing for a static one. The loader itself lists them
/// (`ld.so --list`, which is what `ldd` runs), so this needs no `ldd`.
fn shared_libraries(exe: &[u8]) -> io::Result<Vec<PathBuf>> {
    let Some(interpreter) = interpreter(exe) else {
        return Ok(Vec::new());
    };
    // The child's own `/proc/self/exe` would be the loader: name ours.
    let out = std::process::Command::new(&interpreter)
        .arg("--list")
        .arg(format!("/proc/{}/exe", std::process::id()))
        .output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "`{} --list` failed: {}",
            interpreter.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let mut libs = parse_loader_list(&String::from_utf8_lossy(&out.stdout));
    if !libs.contains(&interpreter) {
        libs.push(interpreter);
    }
    libs.sort();
    libs.dedup();
    Ok(libs)
}

/// The program interpreter (`PT_INTERP`) an ELF executable names.
fn interpreter(exe: &[u8]) -> Option<PathBuf> {
    use object::read::elf::{ElfFile64, ProgramHeader as _};
    let elf = ElfFile64::<object::Endianness>::parse(exe).ok()?;
    let endian = elf.endian();
    for header in elf.elf_program_headers() {
        if header.p_type(endian) == object::elf::PT_INTERP {
            let bytes = header.data(endian, exe).ok()?;
            let text = std::str::from_utf8(bytes).ok()?.trim_end_matches('\0');
            return Some(PathBuf::from(text));
        }
    }
    None
}

/// Paths in the loader's `--list` output: `name => /path (0x…)` or
/// `/path (0x…)`; the kernel's vDSO has no file.
fn parse_loader_list(text: &str) -> Vec<PathBuf> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            let path = line.split_once("=>").map_or(line, |(_, p)| p.trim());
            let path = path.split(" (").next().unwrap_or(path).trim();
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loader_list_gives_library_paths() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f)\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)\n\t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n";
        assert_eq!(
            parse_loader_list(text),
            [
                PathBuf::from("/lib/x86_64-linux-gnu/libgcc_s.so.1"),
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2"),
            ]
        );
    }

    #[test]
    fn this_test_binary_names_its_loader_or_is_static() {
        let exe = std::fs::read("/proc/self/exe").expect("own executable");
        if let Some(interp) = interpreter(&exe) {
            assert!(interp.is_absolute(), "{}", interp.display());
            assert!(interp.exists(), "{}", interp.display());
        }
    }

    #[test]
    fn fingerprints_change_with_the_executable_and_the_folders() {
        let dirs = [OwnedDir {
            path: "/data".into(),
            uid: 1000,
            gid: 1000,
        }];
        assert_ne!(fingerprint("a", &dirs), fingerprint("b", &dirs));
        assert_ne!(fingerprint("a", &dirs), fingerprint("a", &[]));
    }
}
