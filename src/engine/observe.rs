//! What the engine reports, turned into voisin's own types: the observed
//! half of the plan's comparison.

use std::collections::BTreeMap;

use bollard::models::{
    ContainerInspectResponse, ContainerStateStatusEnum, HealthStatusEnum, ImageInspect, MountType,
    Network, Volume,
};
use serde::Serialize;

use crate::render::state::{HealthSpec, Mount, Port};

/// A container as the engine has it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ObservedContainer {
    /// Its id.
    pub id: String,
    /// Its name, without the engine's leading `/`.
    pub name: String,
    /// Its labels (voisin's and the image's).
    pub labels: BTreeMap<String, String>,
    /// The image as it was named at creation.
    pub image: String,
    /// The id of the image it runs.
    pub image_id: String,
    /// Its environment, image defaults included.
    pub env: Vec<String>,
    /// Its command.
    pub cmd: Vec<String>,
    /// Its entrypoint.
    pub entrypoint: Vec<String>,
    /// Its user, empty for the image's.
    pub user: String,
    /// Its host name.
    pub hostname: String,
    /// Volumes mounted.
    pub mounts: Vec<Mount>,
    /// In-memory file systems.
    pub tmpfs: Vec<String>,
    /// Networks joined, with the aliases asked for on each.
    pub networks: BTreeMap<String, Vec<String>>,
    /// Published ports.
    pub ports: Vec<Port>,
    /// Health check.
    pub health: Option<HealthSpec>,
    /// Memory limit in bytes.
    pub memory_bytes: u64,
    /// Process limit.
    pub pids_limit: u32,
    /// Capabilities added.
    pub cap_add: Vec<String>,
    /// Capabilities dropped.
    pub cap_drop: Vec<String>,
    /// Security options.
    pub security_opt: Vec<String>,
    /// Read-only root.
    pub read_only: bool,
    /// Restart policy.
    pub restart: String,
    /// Log rotation size.
    pub log_max_size: String,
    /// Log files kept.
    pub log_max_files: u32,
    /// Seconds to stop.
    pub stop_grace_seconds: u64,
    /// Whether it runs, and how well.
    pub state: RunState,
}

/// A container's life.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RunState {
    /// `created`, `running`, `exited`, `restarting`…
    pub status: String,
    /// Whether it runs.
    pub running: bool,
    /// Its health when it has a check: `starting`, `healthy`, `unhealthy`.
    pub health: Option<String>,
    /// The exit code of its last run.
    pub exit_code: i64,
    /// When it last started (RFC 3339).
    pub started_at: String,
    /// How often the engine restarted it.
    pub restarts: i64,
}

/// A network as the engine has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObservedNetwork {
    /// Its name.
    pub name: String,
    /// Its first subnet.
    pub subnet: Option<String>,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its id.
    #[serde(skip)]
    pub id: String,
    /// Its driver: `bridge` on one engine, `overlay` on a swarm.
    #[serde(skip)]
    pub driver: String,
}

/// A volume as the engine has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObservedVolume {
    /// Its name.
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
}

/// An image as the engine has it: what a container inherits from it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImageInfo {
    /// Its id.
    pub id: String,
    /// Its environment.
    pub env: Vec<String>,
    /// Its command.
    pub cmd: Vec<String>,
    /// Its entrypoint.
    pub entrypoint: Vec<String>,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
}

// A flat mapping of the engine's fields, one after the other.
#[allow(clippy::too_many_lines)]
pub(super) fn container(i: ContainerInspectResponse) -> ObservedContainer {
    let config = i.config.unwrap_or_default();
    let host = i.host_config.unwrap_or_default();
    let state = i.state.unwrap_or_default();
    let mut mounts: Vec<Mount> = host
        .mounts
        .unwrap_or_default()
        .into_iter()
        .filter(|m| m.typ == Some(MountType::VOLUME))
        .map(|m| Mount {
            volume: m.source.unwrap_or_default(),
            path: m.target.unwrap_or_default(),
            read_only: m.read_only.unwrap_or(false),
        })
        .collect();
    mounts.sort_by(|a, b| a.path.cmp(&b.path));
    let mut tmpfs: Vec<String> = host.tmpfs.unwrap_or_default().into_keys().collect();
    tmpfs.sort();
    let networks = i
        .network_settings
        .and_then(|n| n.networks)
        .unwrap_or_default()
        .into_iter()
        .map(|(name, endpoint)| (name, endpoint.aliases.unwrap_or_default()))
        .collect();
    let mut ports = Vec::new();
    for (key, bindings) in host.port_bindings.unwrap_or_default() {
        let (container, protocol) = key.split_once('/').unwrap_or((&key, "tcp"));
        for binding in bindings.unwrap_or_default() {
            ports.push(Port {
                host_ip: binding
                    .host_ip
                    .filter(|ip| !ip.is_empty() && ip != "0.0.0.0"),
                host: binding
                    .host_port
                    .and_then(|p| p.parse().ok())
                    .unwrap_or_default(),
                container: container.parse().unwrap_or_default(),
                protocol: protocol.to_string(),
            });
        }
    }
    ports.sort_by_key(|p| (p.host, p.container));
    let health = config.healthcheck.and_then(|h| {
        let mut test = h.test.unwrap_or_default();
        if test.first().is_some_and(|t| t == "CMD") {
            test.remove(0);
        } else {
            return None;
        }
        let secs = |ns: Option<i64>| u64::try_from(ns.unwrap_or(0) / 1_000_000_000).unwrap_or(0);
        Some(HealthSpec {
            test,
            interval_seconds: secs(h.interval),
            timeout_seconds: secs(h.timeout),
            retries: u32::try_from(h.retries.unwrap_or(0)).unwrap_or(0),
            start_period_seconds: secs(h.start_period),
        })
    });
    let log = host.log_config.and_then(|l| l.config).unwrap_or_default();
    let status = state.status.map(|s| s.to_string()).unwrap_or_default();
    let running = state.status == Some(ContainerStateStatusEnum::RUNNING);
    ObservedContainer {
        id: i.id.unwrap_or_default(),
        name: i
            .name
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_string(),
        labels: config.labels.unwrap_or_default().into_iter().collect(),
        image: config.image.unwrap_or_default(),
        image_id: i.image.unwrap_or_default(),
        env: config.env.unwrap_or_default(),
        cmd: config.cmd.unwrap_or_default(),
        entrypoint: config.entrypoint.unwrap_or_default(),
        user: config.user.unwrap_or_default(),
        hostname: config.hostname.unwrap_or_default(),
        mounts,
        tmpfs,
        networks,
        ports,
        health,
        memory_bytes: u64::try_from(host.memory.unwrap_or(0)).unwrap_or(0),
        pids_limit: u32::try_from(host.pids_limit.unwrap_or(0)).unwrap_or(0),
        cap_add: sorted(host.cap_add.unwrap_or_default()),
        cap_drop: sorted(host.cap_drop.unwrap_or_default()),
        security_opt: sorted(host.security_opt.unwrap_or_default()),
        read_only: host.readonly_rootfs.unwrap_or(false),
        restart: host
            .restart_policy
            .and_then(|r| r.name)
            .map(|n| n.to_string())
            .unwrap_or_default(),
        log_max_size: log.get("max-size").cloned().unwrap_or_default(),
        log_max_files: log
            .get("max-file")
            .and_then(|f| f.parse().ok())
            .unwrap_or(0),
        stop_grace_seconds: u64::try_from(config.stop_timeout.unwrap_or(10)).unwrap_or(10),
        state: RunState {
            status,
            running,
            health: state.health.and_then(|h| h.status).and_then(|s| match s {
                HealthStatusEnum::EMPTY | HealthStatusEnum::NONE => None,
                other => Some(other.to_string()),
            }),
            exit_code: state.exit_code.unwrap_or(0),
            started_at: state.started_at.unwrap_or_default(),
            restarts: i.restart_count.unwrap_or(0),
        },
    }
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

pub(super) fn network(n: Network) -> ObservedNetwork {
    ObservedNetwork {
        name: n.name.unwrap_or_default(),
        subnet: n
            .ipam
            .and_then(|i| i.config)
            .and_then(|c| c.into_iter().next())
            .and_then(|c| c.subnet),
        labels: n.labels.unwrap_or_default().into_iter().collect(),
        id: n.id.unwrap_or_default(),
        driver: n.driver.unwrap_or_default(),
    }
}

pub(super) fn volume(v: Volume) -> ObservedVolume {
    ObservedVolume {
        name: v.name,
        labels: v.labels.into_iter().collect(),
    }
}

pub(super) fn image(i: ImageInspect) -> ImageInfo {
    let config = i.config.unwrap_or_default();
    ImageInfo {
        id: i.id.unwrap_or_default(),
        env: config.env.unwrap_or_default(),
        cmd: config.cmd.unwrap_or_default(),
        entrypoint: config.entrypoint.unwrap_or_default(),
        labels: config.labels.unwrap_or_default().into_iter().collect(),
    }
}
