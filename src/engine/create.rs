//! Pure builders: a [`ContainerSpec`] becomes the engine's create request,
//! and rendered files become tar archives with their owners and modes.
//! Tested without an engine.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use bollard::models::{
    ContainerCreateBody, EndpointSettings, HealthConfig, HostConfig, HostConfigLogConfig, Ipam,
    IpamConfig, Mount as EngineMount, MountType, NetworkCreateRequest, NetworkingConfig,
    PortBinding, RestartPolicy, RestartPolicyNameEnum,
};

use crate::render::state::{ContainerSpec, FileSpec, Mount, sha256_hex};

/// The label that lists a container's rendered files with their hashes, so
/// that a plan can say which file changed.
pub const FILES_LABEL: &str = "voisin.files";

/// The label that says what a helper object is for (`lock`, `state`,
/// `files`, `tool`): objects without it are the bundle's own.
pub const KIND_LABEL: &str = "voisin.kind";

/// A volume holding the rendered files of one folder of a container whose
/// root is read-only: the engine refuses to write files into such a root,
/// so they are written into this volume, mounted read-only at the folder.
/// Its name is derived from its content, so unchanged files are never
/// written again, and an old and a new container can each keep their own.
#[derive(Debug, Clone, PartialEq)]
pub struct FilesVolume {
    /// The volume's name.
    pub name: String,
    /// The folder it is mounted at.
    pub dir: String,
    /// The files, with paths inside the container.
    pub files: Vec<FileSpec>,
}

/// How a container's rendered files reach it: written into the container
/// before it starts, or through [`FilesVolume`]s for a read-only root.
pub fn files_volumes(spec: &ContainerSpec) -> Vec<FilesVolume> {
    if !spec.read_only {
        return Vec::new();
    }
    let mut by_dir: BTreeMap<String, Vec<FileSpec>> = BTreeMap::new();
    for file in &spec.files {
        let dir = parent(&file.path);
        by_dir.entry(dir).or_default().push(file.clone());
    }
    by_dir
        .into_iter()
        .map(|(dir, files)| {
            let mut fingerprint = dir.clone();
            for f in &files {
                let _ = write!(
                    fingerprint,
                    "\n{} {} {}:{} {}",
                    f.path,
                    f.mode,
                    f.uid,
                    f.gid,
                    sha256_hex(f.content.expose().as_bytes())
                );
            }
            let hash = sha256_hex(fingerprint.as_bytes());
            FilesVolume {
                name: format!("{}-files-{}", spec.name, &hash[..12]),
                dir,
                files,
            }
        })
        .collect()
}

fn parent(path: &str) -> String {
    match path.rsplit_once('/') {
        Some(("", _)) | None => "/".to_string(),
        Some((dir, _)) => dir.to_string(),
    }
}

/// Every volume a container mounts: the spec's, then its files volumes
/// (read-only), in the order of their paths.
pub fn all_mounts(spec: &ContainerSpec) -> Vec<Mount> {
    let mut mounts = spec.mounts.clone();
    for fv in files_volumes(spec) {
        mounts.push(Mount {
            volume: fv.name,
            path: fv.dir,
            read_only: true,
        });
    }
    mounts.sort_by(|a, b| a.path.cmp(&b.path));
    mounts
}

/// The labels a container carries: the spec's, and the hashes of its files.
pub fn labels(spec: &ContainerSpec) -> BTreeMap<String, String> {
    let mut labels = spec.labels.clone();
    labels.insert(FILES_LABEL.into(), files_label(spec));
    labels
}

/// `PATH=HASH` for each rendered file, one per line.
pub fn files_label(spec: &ContainerSpec) -> String {
    spec.files
        .iter()
        .map(|f| {
            format!(
                "{}={}",
                f.path,
                &sha256_hex(
                    format!("{} {}:{}\n{}", f.mode, f.uid, f.gid, f.content.expose()).as_bytes()
                )[..16]
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The create request for a container, joined to its first network; the
/// others follow one at a time (see [`super::Engine::create_container`]).
pub fn container(spec: &ContainerSpec) -> (ContainerCreateBody, Vec<(String, Vec<String>)>) {
    let mut networks = spec.networks.iter();
    let first = networks.next().map(|a| {
        (
            a.network.clone(),
            EndpointSettings {
                aliases: Some(a.aliases.clone()),
                ..Default::default()
            },
        )
    });
    let more = networks
        .map(|a| (a.network.clone(), a.aliases.clone()))
        .collect();
    let mut port_bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
    let mut exposed = Vec::new();
    for p in &spec.ports {
        let key = format!("{}/{}", p.container, p.protocol);
        exposed.push(key.clone());
        port_bindings
            .entry(key)
            .or_insert_with(|| Some(Vec::new()))
            .get_or_insert_with(Vec::new)
            .push(PortBinding {
                host_ip: p.host_ip.clone(),
                host_port: Some(p.host.to_string()),
            });
    }
    let healthcheck = spec.health.as_ref().map(health_config);
    let mounts = all_mounts(spec)
        .into_iter()
        .map(|m| EngineMount {
            target: Some(m.path),
            source: Some(m.volume),
            typ: Some(MountType::VOLUME),
            read_only: Some(m.read_only),
            ..Default::default()
        })
        .collect();
    let host_config = HostConfig {
        memory: Some(i64::try_from(spec.memory_bytes).unwrap_or(i64::MAX)),
        pids_limit: Some(i64::from(spec.pids_limit)),
        cap_add: Some(spec.cap_add.clone()),
        cap_drop: Some(spec.cap_drop.clone()),
        security_opt: Some(spec.security_opt.clone()),
        readonly_rootfs: Some(spec.read_only),
        restart_policy: Some(RestartPolicy {
            name: Some(restart_policy(&spec.restart)),
            maximum_retry_count: None,
        }),
        log_config: Some(HostConfigLogConfig {
            typ: Some("json-file".into()),
            config: Some(HashMap::from([
                ("max-size".to_string(), spec.log_max_size.clone()),
                ("max-file".to_string(), spec.log_max_files.to_string()),
            ])),
        }),
        mounts: Some(mounts),
        tmpfs: (!spec.tmpfs.is_empty()).then(|| {
            spec.tmpfs
                .iter()
                .map(|t| (t.clone(), String::new()))
                .collect()
        }),
        port_bindings: (!port_bindings.is_empty()).then_some(port_bindings),
        ..Default::default()
    };
    let body = ContainerCreateBody {
        image: Some(spec.image.clone()),
        hostname: spec.hostname.clone(),
        user: spec.user.clone(),
        env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        cmd: (!spec.command.is_empty()).then(|| spec.command.clone()),
        entrypoint: (!spec.entrypoint.is_empty()).then(|| spec.entrypoint.clone()),
        labels: Some(labels(spec).into_iter().collect()),
        healthcheck,
        stop_timeout: Some(i64::try_from(spec.stop_grace_seconds).unwrap_or(i64::MAX)),
        exposed_ports: (!exposed.is_empty()).then_some(exposed),
        host_config: Some(host_config),
        networking_config: first.map(|(name, endpoint)| NetworkingConfig {
            endpoints_config: Some(HashMap::from([(name, endpoint)])),
        }),
        ..Default::default()
    };
    (body, more)
}

/// The engine's form of a health check, for a container or a swarm service.
pub fn health_config(h: &crate::render::state::HealthSpec) -> HealthConfig {
    let ns = |s: u64| i64::try_from(s.saturating_mul(1_000_000_000)).unwrap_or(i64::MAX);
    let mut test = vec!["CMD".to_string()];
    test.extend(h.test.iter().cloned());
    HealthConfig {
        test: Some(test),
        interval: Some(ns(h.interval_seconds)),
        timeout: Some(ns(h.timeout_seconds)),
        retries: Some(i64::from(h.retries)),
        start_period: Some(ns(h.start_period_seconds)),
        ..Default::default()
    }
}

fn restart_policy(name: &str) -> RestartPolicyNameEnum {
    match name {
        "always" => RestartPolicyNameEnum::ALWAYS,
        "on-failure" => RestartPolicyNameEnum::ON_FAILURE,
        "no" => RestartPolicyNameEnum::NO,
        _ => RestartPolicyNameEnum::UNLESS_STOPPED,
    }
}

/// The create request for a network.
pub fn network(
    name: &str,
    subnet: Option<&str>,
    labels: &BTreeMap<String, String>,
) -> NetworkCreateRequest {
    NetworkCreateRequest {
        name: name.to_string(),
        driver: Some("bridge".into()),
        labels: Some(labels.clone().into_iter().collect()),
        ipam: subnet.map(|s| Ipam {
            config: Some(vec![IpamConfig {
                subnet: Some(s.to_string()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A tar archive of files, each at its path under `root` (a container's
/// `/`, or a helper's mount point), with its owner and mode. No folder
/// entries: the engine creates missing parents, and an entry for an
/// existing folder would change its owner and mode.
pub fn files_tar<'a>(
    root: &str,
    files: impl IntoIterator<Item = (&'a str, &'a FileSpec)>,
) -> std::io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, file) in files {
        let bytes = file.content.expose().as_bytes();
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(bytes.len() as u64);
        header
            .set_mode(u32::from_str_radix(file.mode.trim_start_matches("0o"), 8).unwrap_or(0o644));
        header.set_uid(u64::from(file.uid));
        header.set_gid(u64::from(file.gid));
        header.set_mtime(0);
        let path = format!(
            "{}/{}",
            root.trim_matches('/'),
            name.trim_start_matches('/')
        );
        builder.append_data(&mut header, path.trim_start_matches('/'), bytes)?;
    }
    builder.into_inner()
}

/// A marker: a container of the tool image that is never started and
/// holds what it says in its labels (the upgrade journal).
pub fn marker(labels: &BTreeMap<String, String>) -> ContainerCreateBody {
    ContainerCreateBody {
        image: Some(super::build::TOOL_IMAGE.to_string()),
        cmd: Some(vec!["/voisin-tool".into()]),
        labels: Some(labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
        network_disabled: Some(true),
        ..Default::default()
    }
}

/// A helper container of voisin's own image, with volumes mounted and no
/// network: it runs `voisin agent` to read or write volume contents.
pub fn helper(
    image: &str,
    command: &[String],
    volumes: &[(String, String, bool)],
    labels: &BTreeMap<String, String>,
) -> ContainerCreateBody {
    ContainerCreateBody {
        image: Some(image.to_string()),
        cmd: Some(command.to_vec()),
        user: Some("0:0".into()),
        labels: Some(labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
        host_config: Some(HostConfig {
            network_mode: Some("none".into()),
            mounts: Some(
                volumes
                    .iter()
                    .map(|(volume, path, read_only)| EngineMount {
                        target: Some(path.clone()),
                        source: Some(volume.clone()),
                        typ: Some(MountType::VOLUME),
                        read_only: Some(*read_only),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::state::{Attachment, Content, Port};

    fn spec() -> ContainerSpec {
        ContainerSpec {
            name: "amis-board-board".into(),
            service: "board".into(),
            container: "board".into(),
            image: "voisin-board:0.1.0".into(),
            build: None,
            hostname: None,
            entrypoint: Vec::new(),
            command: vec!["voisin".into(), "board".into(), "serve".into()],
            user: Some("1000:1000".into()),
            env: BTreeMap::from([("A".into(), "1".into())]),
            files: vec![
                FileSpec {
                    path: "/etc/voisin-board/members.json".into(),
                    mode: "0400".into(),
                    uid: 1000,
                    gid: 1000,
                    content: Content::Text("{}".into()),
                },
                FileSpec {
                    path: "/run/secrets/smtp_password".into(),
                    mode: "0400".into(),
                    uid: 1000,
                    gid: 1000,
                    content: Content::Text("x".into()),
                },
            ],
            mounts: vec![Mount {
                volume: "amis-board-data".into(),
                path: "/data".into(),
                read_only: false,
            }],
            tmpfs: Vec::new(),
            networks: vec![
                Attachment {
                    network: "amis-board".into(),
                    aliases: vec!["board".into()],
                },
                Attachment {
                    network: "amis-edge".into(),
                    aliases: Vec::new(),
                },
            ],
            ports: vec![Port {
                host_ip: Some("127.0.0.1".into()),
                host: 8080,
                container: 8080,
                protocol: "tcp".into(),
            }],
            health: None,
            depends_on: Vec::new(),
            memory_bytes: 128 << 20,
            pids_limit: 100,
            cap_add: Vec::new(),
            cap_drop: vec!["ALL".into()],
            security_opt: vec!["no-new-privileges:true".into()],
            read_only: true,
            restart: "unless-stopped".into(),
            log_max_size: "10m".into(),
            log_max_files: 3,
            stop_grace_seconds: 10,
            labels: BTreeMap::new(),
        }
    }

    #[test]
    fn a_read_only_container_gets_one_files_volume_per_folder() {
        let volumes = files_volumes(&spec());
        let dirs: Vec<&str> = volumes.iter().map(|v| v.dir.as_str()).collect();
        assert_eq!(dirs, ["/etc/voisin-board", "/run/secrets"]);
        let mounts = all_mounts(&spec());
        assert!(
            mounts
                .iter()
                .any(|m| m.path == "/run/secrets" && m.read_only)
        );
        assert!(mounts.iter().any(|m| m.path == "/data" && !m.read_only));
    }

    #[test]
    fn files_volumes_are_named_by_their_content() {
        let before = files_volumes(&spec());
        let mut changed = spec();
        changed.files[1].content = Content::Text("y".into());
        let after = files_volumes(&changed);
        assert_eq!(
            before[0].name, after[0].name,
            "unchanged folder keeps its volume"
        );
        assert_ne!(
            before[1].name, after[1].name,
            "changed folder gets a new volume"
        );
    }

    #[test]
    fn a_writable_container_gets_its_files_directly() {
        let mut s = spec();
        s.read_only = false;
        assert!(files_volumes(&s).is_empty());
    }

    #[test]
    fn the_create_request_carries_the_spec() {
        let (body, more) = container(&spec());
        assert_eq!(more, [("amis-edge".to_string(), Vec::new())]);
        let host = body.host_config.expect("host config");
        assert_eq!(host.readonly_rootfs, Some(true));
        assert_eq!(host.cap_drop, Some(vec!["ALL".to_string()]));
        let bindings = host.port_bindings.expect("ports");
        let b = &bindings["8080/tcp"].as_ref().expect("bindings")[0];
        assert_eq!(b.host_ip.as_deref(), Some("127.0.0.1"));
        assert!(body.labels.expect("labels").contains_key(FILES_LABEL));
    }

    #[test]
    fn a_files_archive_keeps_owner_and_mode() {
        let s = spec();
        let tar = files_tar("/", s.files.iter().map(|f| (f.path.as_str(), f))).expect("tar");
        let mut archive = tar::Archive::new(tar.as_slice());
        let entries: Vec<(String, u32, u64)> = archive
            .entries()
            .expect("entries")
            .map(|e| {
                let e = e.expect("entry");
                let h = e.header();
                (
                    e.path().expect("path").display().to_string(),
                    h.mode().expect("mode"),
                    h.uid().expect("uid"),
                )
            })
            .collect();
        assert_eq!(
            entries,
            [
                ("etc/voisin-board/members.json".to_string(), 0o400, 1000),
                ("run/secrets/smtp_password".to_string(), 0o400, 1000)
            ]
        );
    }
}
