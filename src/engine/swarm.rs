//! A Docker Swarm, through one of its managers: nodes, services, their
//! tasks, configs and secrets, overlay networks, and images carried from
//! one engine to another. What is built here is pure (the service spec
//! for a container, and the part of a spec the plan compares); what is
//! asked of the engine goes through [`Engine::call`] like every other call,
//! so a deploy that changes nothing can prove it made no mutating call.

use std::collections::{BTreeMap, HashMap};

use base64::Engine as _;
use bollard::models::{
    ConfigSpec, EndpointPortConfig, EndpointPortConfigPublishModeEnum, EndpointSpec,
    EndpointSpecModeEnum, Ipam, IpamConfig, Limit, Mount as EngineMount, MountType,
    NetworkAttachmentConfig, NetworkCreateRequest, NodeSpec, SecretSpec, ServiceSpec,
    ServiceSpecMode, ServiceSpecModeReplicated, ServiceSpecRollbackConfig,
    ServiceSpecRollbackConfigFailureActionEnum, ServiceSpecRollbackConfigOrderEnum,
    ServiceSpecUpdateConfig, ServiceSpecUpdateConfigFailureActionEnum,
    ServiceSpecUpdateConfigOrderEnum, TaskSpec, TaskSpecContainerSpec,
    TaskSpecContainerSpecConfigs, TaskSpecContainerSpecFile, TaskSpecContainerSpecFile1,
    TaskSpecContainerSpecPrivileges, TaskSpecContainerSpecSecrets, TaskSpecLogDriver,
    TaskSpecPlacement, TaskSpecResources, TaskSpecRestartPolicy,
    TaskSpecRestartPolicyConditionEnum,
};
use bollard::query_parameters::{
    ListConfigsOptions, ListNodesOptions, ListSecretsOptions, ListServicesOptions,
    ListTasksOptions, UpdateNodeOptions, UpdateServiceOptions,
};
use futures_util::{StreamExt as _, TryStreamExt as _};
use serde::Serialize;

use super::{ASSOCIATION_LABEL, Engine, EngineError, Kind, api_error};
use crate::render::state::{ContainerSpec, FileSpec};

/// A node of the swarm, as its manager sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservedNode {
    /// Its id.
    pub id: String,
    /// Its host name (what the manifest names it by).
    pub hostname: String,
    /// `ready`, `down`, `unknown`, `disconnected`.
    pub state: String,
    /// `active`, `pause` or `drain`.
    pub availability: String,
    /// `manager` or `worker`.
    pub role: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its object version, which an update must quote.
    pub version: u64,
    spec: NodeSpec,
}

impl ObservedNode {
    /// A ready, active worker named `hostname` with `labels`, as the plan
    /// sees nodes (for the plan's own tests, and tools that plan offline).
    pub fn ready(hostname: &str, labels: BTreeMap<String, String>) -> Self {
        Self {
            id: format!("id-{hostname}"),
            hostname: hostname.to_string(),
            state: "ready".into(),
            availability: "active".into(),
            role: "worker".into(),
            labels,
            version: 1,
            spec: NodeSpec::default(),
        }
    }
}

/// A service of the association.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservedService {
    /// Its id.
    pub id: String,
    /// Its name (the container's engine name).
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its object version, which an update must quote.
    pub version: u64,
    /// What the plan compares (network ids turned back into names).
    pub compared: Compared,
    /// The state of its last update: `updating`, `completed`, `paused`,
    /// `rollback_started`, `rollback_completed`…, if it was ever updated.
    pub update_state: Option<String>,
    /// What the swarm said of that update.
    pub update_message: String,
    /// A hash of its task template: a task whose spec hashes the same runs
    /// the service's current version.
    pub template_hash: String,
    spec: ServiceSpec,
}

/// One task (one copy) of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedTask {
    /// Its id.
    pub id: String,
    /// The service's id.
    pub service_id: String,
    /// The node it was given to, if any yet.
    pub node_id: Option<String>,
    /// Its replica slot.
    pub slot: i64,
    /// Where it is: `new` … `starting`, `running`, `complete`, `failed`, `shutdown`…
    pub state: String,
    /// Where the swarm wants it: `running` or `shutdown`.
    pub desired: String,
    /// What went wrong, when something did.
    pub error: Option<String>,
    /// The swarm's own words on its state.
    pub message: String,
    /// Its container, once it has one.
    pub container_id: Option<String>,
    /// When its state last changed (RFC 3339).
    pub since: String,
    /// A hash of its spec (see [`ObservedService::template_hash`]).
    pub spec_hash: String,
}

/// A hash of a task spec as a task carries it: the service's template
/// also has an empty `DNSConfig` and its `Runtime`, which tasks leave out.
fn hash_of(spec: Option<&TaskSpec>) -> String {
    let mut spec = spec.cloned().unwrap_or_default();
    spec.runtime = None;
    if let Some(c) = spec.container_spec.as_mut()
        && c.dns_config
            .as_ref()
            .is_none_or(|d| d.nameservers.is_none() && d.search.is_none() && d.options.is_none())
    {
        c.dns_config = None;
    }
    crate::render::state::sha256_hex(&serde_json::to_vec(&spec).unwrap_or_default())
}

/// A config or secret of the association.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedFile {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// A secret (else a config).
    pub secret: bool,
}

/// A rendered file as a swarm config or secret: its content-addressed
/// name, and where it appears in the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileObject {
    /// Its name in the swarm.
    pub name: String,
    /// Its id in the swarm, once made (a service must name both).
    pub id: String,
    /// A secret (else a config).
    pub secret: bool,
    /// The path in the container.
    pub path: String,
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
    /// Mode bits.
    pub mode: u32,
}

impl FileObject {
    /// The object for one of a container's files: named after the container
    /// and a hash of everything about the file, so that a change makes a
    /// new object (configs and secrets cannot change).
    pub fn of(container: &str, file: &FileSpec) -> Self {
        let digest = crate::render::state::sha256_hex(
            format!(
                "{} {} {}:{}\n{}",
                file.path,
                file.mode,
                file.uid,
                file.gid,
                file.content.expose()
            )
            .as_bytes(),
        );
        Self {
            name: format!("{container}-{}", &digest[..12]),
            id: String::new(),
            secret: file.content.is_secret(),
            path: file.path.clone(),
            uid: file.uid,
            gid: file.gid,
            mode: u32::from_str_radix(file.mode.trim_start_matches("0o"), 8).unwrap_or(0o644),
        }
    }
}

/// How a service is rolled to a new spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Order {
    /// The new copy starts, and must be healthy, before the old one stops.
    StartFirst,
    /// The old copy stops first (a published port, data written to a volume).
    StopFirst,
}

/// Everything the swarm needs to run one container as a service.
#[derive(Debug, Clone)]
pub struct ServiceRequest<'a> {
    /// The container.
    pub spec: &'a ContainerSpec,
    /// Its files, as configs and secrets.
    pub files: Vec<FileObject>,
    /// Placement constraints.
    pub constraints: Vec<String>,
    /// How updates roll.
    pub order: Order,
    /// How long a new copy is watched before the update counts as done.
    pub monitor_seconds: u64,
    /// The service's labels.
    pub labels: BTreeMap<String, String>,
}

/// The part of a service's spec that voisin sets and the plan compares,
/// in a form that reads the same whether built from the manifest or read
/// back from the swarm (which fills in defaults and turns network names
/// into ids).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Compared {
    image: String,
    command: Vec<String>,
    args: Vec<String>,
    env: BTreeMap<String, String>,
    user: String,
    hostname: String,
    files: Vec<String>,
    mounts: Vec<String>,
    networks: Vec<String>,
    ports: Vec<String>,
    health: Option<String>,
    read_only: bool,
    cap_add: Vec<String>,
    cap_drop: Vec<String>,
    memory_bytes: i64,
    pids: i64,
    placement: Vec<String>,
    replicas: i64,
    update_order: String,
    stop_grace_ns: i64,
    labels: BTreeMap<String, String>,
}

impl Compared {
    /// Why `observed` differs from `self` (what voisin wants), one reason
    /// per field, in words the plan prints.
    pub fn reasons(&self, observed: &Self) -> Vec<String> {
        let mut reasons = Vec::new();
        if self.image != observed.image {
            reasons.push(format!("image `{}` → `{}`", observed.image, self.image));
        }
        for key in self.env.keys().chain(observed.env.keys()) {
            let reason = match (self.env.get(key), observed.env.get(key)) {
                (Some(_), None) => format!("environment `{key}` missing"),
                (None, Some(_)) => format!("environment `{key}` added"),
                (Some(a), Some(b)) if a != b => format!("environment `{key}` changed"),
                _ => continue,
            };
            if !reasons.contains(&reason) {
                reasons.push(reason);
            }
        }
        for key in self.labels.keys().chain(observed.labels.keys()) {
            if self.labels.get(key) != observed.labels.get(key) {
                let reason = format!("label `{key}` changed");
                if !reasons.contains(&reason) {
                    reasons.push(reason);
                }
            }
        }
        let fields: [(&str, bool); 18] = [
            ("command", self.command != observed.command),
            ("arguments", self.args != observed.args),
            ("user", self.user != observed.user),
            ("hostname", self.hostname != observed.hostname),
            ("files", self.files != observed.files),
            ("volumes", self.mounts != observed.mounts),
            ("networks", self.networks != observed.networks),
            ("published ports", self.ports != observed.ports),
            ("health check", self.health != observed.health),
            ("read-only root", self.read_only != observed.read_only),
            ("capabilities", self.cap_add != observed.cap_add),
            ("dropped capabilities", self.cap_drop != observed.cap_drop),
            ("memory limit", self.memory_bytes != observed.memory_bytes),
            ("process limit", self.pids != observed.pids),
            ("placement", self.placement != observed.placement),
            ("replicas", self.replicas != observed.replicas),
            ("update order", self.update_order != observed.update_order),
            ("stop grace", self.stop_grace_ns != observed.stop_grace_ns),
        ];
        for (field, differs) in fields {
            if differs {
                reasons.push(format!("{field} changed"));
            }
        }
        reasons
    }
}

const NS: i64 = 1_000_000_000;

/// The health check, repeated as a label of the service: bollard 0.21
/// reads the engine's `Healthcheck` field under another name (it writes
/// `HealthCheck`, which the engine accepts), so what the swarm has is
/// known from the label.
const HEALTH_LABEL: &str = "voisin.health";

fn health_words(h: &crate::render::state::HealthSpec) -> Vec<String> {
    let mut words = h.test.clone();
    words.extend([
        format!("interval={}", h.interval_seconds),
        format!("timeout={}", h.timeout_seconds),
        format!("retries={}", h.retries),
        format!("start={}", h.start_period_seconds),
    ]);
    words
}

fn ns(seconds: u64) -> i64 {
    i64::try_from(seconds).unwrap_or(i64::MAX / NS) * NS
}

/// How a service names its files: configs, and secrets.
fn file_refs(
    files: &[FileObject],
) -> (
    Vec<TaskSpecContainerSpecConfigs>,
    Vec<TaskSpecContainerSpecSecrets>,
) {
    let (configs, secrets): (Vec<&FileObject>, Vec<&FileObject>) =
        files.iter().partition(|f| !f.secret);
    let configs = configs
        .iter()
        .map(|f| TaskSpecContainerSpecConfigs {
            file: Some(TaskSpecContainerSpecFile1 {
                name: Some(f.path.clone()),
                uid: Some(f.uid.to_string()),
                gid: Some(f.gid.to_string()),
                mode: Some(f.mode),
            }),
            config_name: Some(f.name.clone()),
            config_id: Some(f.id.clone()),
            ..Default::default()
        })
        .collect();
    let secrets = secrets
        .iter()
        .map(|f| TaskSpecContainerSpecSecrets {
            file: Some(TaskSpecContainerSpecFile {
                name: Some(f.path.clone()),
                uid: Some(f.uid.to_string()),
                gid: Some(f.gid.to_string()),
                mode: Some(f.mode),
            }),
            secret_name: Some(f.name.clone()),
            secret_id: Some(f.id.clone()),
        })
        .collect();
    (configs, secrets)
}

/// A container's volumes (labelled as the association's when the node
/// makes them) and in-memory file systems.
fn mounts(spec: &ContainerSpec) -> Vec<EngineMount> {
    let mut mounts: Vec<EngineMount> =
        spec.mounts
            .iter()
            .map(|m| EngineMount {
                target: Some(m.path.clone()),
                source: Some(m.volume.clone()),
                typ: Some(MountType::VOLUME),
                read_only: Some(m.read_only),
                // The node makes the volume when a task first mounts it: with
                // the association's label, so it is known as the association's.
                volume_options: Some(bollard::models::MountVolumeOptions {
                    labels: spec.labels.get(ASSOCIATION_LABEL).map(|domain| {
                        HashMap::from([(ASSOCIATION_LABEL.to_string(), domain.clone())])
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .collect();
    mounts.extend(spec.tmpfs.iter().map(|path| EngineMount {
        target: Some(path.clone()),
        typ: Some(MountType::TMPFS),
        ..Default::default()
    }));
    mounts
}

/// How updates roll (one copy at a time, rolled back by the swarm when
/// the new copy fails within `monitor_seconds`), and how a rollback rolls.
fn rollout(
    order: Order,
    monitor_seconds: u64,
) -> (ServiceSpecUpdateConfig, ServiceSpecRollbackConfig) {
    let monitor = Some(ns(monitor_seconds));
    let update = ServiceSpecUpdateConfig {
        parallelism: Some(1),
        failure_action: Some(ServiceSpecUpdateConfigFailureActionEnum::ROLLBACK),
        monitor,
        order: Some(match order {
            Order::StartFirst => ServiceSpecUpdateConfigOrderEnum::START_FIRST,
            Order::StopFirst => ServiceSpecUpdateConfigOrderEnum::STOP_FIRST,
        }),
        ..Default::default()
    };
    let rollback = ServiceSpecRollbackConfig {
        parallelism: Some(1),
        failure_action: Some(ServiceSpecRollbackConfigFailureActionEnum::PAUSE),
        monitor,
        order: Some(match order {
            Order::StartFirst => ServiceSpecRollbackConfigOrderEnum::START_FIRST,
            Order::StopFirst => ServiceSpecRollbackConfigOrderEnum::STOP_FIRST,
        }),
        ..Default::default()
    };
    (update, rollback)
}

/// The service spec that runs `request.spec` on the swarm.
fn service_spec(request: &ServiceRequest<'_>) -> ServiceSpec {
    let spec = request.spec;
    let (configs, secrets) = file_refs(&request.files);
    let health_check = spec.health.as_ref().map(super::create::health_config);
    let mounts = mounts(spec);
    let container = TaskSpecContainerSpec {
        image: Some(spec.image.clone()),
        labels: Some(spec.labels.clone().into_iter().collect()),
        command: (!spec.entrypoint.is_empty()).then(|| spec.entrypoint.clone()),
        args: (!spec.command.is_empty()).then(|| spec.command.clone()),
        hostname: spec.hostname.clone(),
        env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        user: spec.user.clone(),
        read_only: Some(spec.read_only),
        mounts: Some(mounts),
        stop_grace_period: Some(ns(spec.stop_grace_seconds)),
        health_check,
        // Honoured from API 1.46 (Docker 25); older engines ignore it.
        privileges: Some(TaskSpecContainerSpecPrivileges {
            no_new_privileges: Some(spec.security_opt.iter().any(|o| o == "no-new-privileges")),
            ..Default::default()
        }),
        configs: Some(configs),
        secrets: Some(secrets),
        capability_add: Some(spec.cap_add.clone()),
        capability_drop: Some(spec.cap_drop.clone()),
        ..Default::default()
    };
    let task = TaskSpec {
        container_spec: Some(container),
        resources: Some(TaskSpecResources {
            limits: Some(Limit {
                memory_bytes: Some(i64::try_from(spec.memory_bytes).unwrap_or(i64::MAX)),
                pids: Some(i64::from(spec.pids_limit)),
                ..Default::default()
            }),
            ..Default::default()
        }),
        restart_policy: Some(TaskSpecRestartPolicy {
            condition: Some(if spec.restart == "no" {
                TaskSpecRestartPolicyConditionEnum::NONE
            } else {
                TaskSpecRestartPolicyConditionEnum::ANY
            }),
            delay: Some(NS),
            ..Default::default()
        }),
        placement: Some(TaskSpecPlacement {
            constraints: Some(request.constraints.clone()),
            ..Default::default()
        }),
        networks: Some(
            spec.networks
                .iter()
                .map(|a| NetworkAttachmentConfig {
                    target: Some(a.network.clone()),
                    aliases: Some(a.aliases.clone()),
                    ..Default::default()
                })
                .collect(),
        ),
        log_driver: Some(TaskSpecLogDriver {
            name: Some("json-file".into()),
            options: Some(HashMap::from([
                ("max-size".to_string(), spec.log_max_size.clone()),
                ("max-file".to_string(), spec.log_max_files.to_string()),
            ])),
        }),
        ..Default::default()
    };
    let (update, rollback) = rollout(request.order, request.monitor_seconds);
    let mut labels = request.labels.clone();
    if let Some(h) = &spec.health {
        labels.insert(HEALTH_LABEL.into(), health_words(h).join(" "));
    }
    ServiceSpec {
        name: Some(spec.name.clone()),
        labels: Some(labels.into_iter().collect()),
        task_template: Some(task),
        mode: Some(ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated { replicas: Some(1) }),
            ..Default::default()
        }),
        update_config: Some(update),
        rollback_config: Some(rollback),
        // Published ports on the node that runs the task (the routing
        // mesh needs IPVS, which not every kernel has), and names that
        // resolve to the tasks themselves, for the same reason.
        endpoint_spec: Some(endpoint(spec)),
        ..Default::default()
    }
}

/// Published ports on the node that runs the task (the routing mesh
/// needs IPVS, which not every kernel has), and names that resolve to the
/// tasks themselves, for the same reason.
fn endpoint(spec: &ContainerSpec) -> EndpointSpec {
    EndpointSpec {
        mode: Some(EndpointSpecModeEnum::DNSRR),
        ports: Some(
            spec.ports
                .iter()
                .map(|p| EndpointPortConfig {
                    protocol: Some(if p.protocol == "udp" {
                        bollard::models::EndpointPortConfigProtocolEnum::UDP
                    } else {
                        bollard::models::EndpointPortConfigProtocolEnum::TCP
                    }),
                    target_port: Some(i64::from(p.container)),
                    published_port: Some(i64::from(p.host)),
                    publish_mode: Some(EndpointPortConfigPublishModeEnum::HOST),
                    ..Default::default()
                })
                .collect(),
        ),
    }
}

/// What the plan compares of the service `request` asks for.
pub fn wanted(request: &ServiceRequest<'_>) -> Compared {
    compared(&service_spec(request), &HashMap::new())
}

/// A service's files as words the plan compares: name, path, owner, mode.
fn file_words(c: &TaskSpecContainerSpec) -> Vec<String> {
    let c = c.clone();
    let mut files: Vec<String> = c
        .configs
        .unwrap_or_default()
        .into_iter()
        .map(|f| {
            let file = f.file.unwrap_or_default();
            format!(
                "{} {} {}:{} {:o}",
                f.config_name.unwrap_or_default(),
                file.name.unwrap_or_default(),
                file.uid.unwrap_or_default(),
                file.gid.unwrap_or_default(),
                file.mode.unwrap_or_default()
            )
        })
        .chain(c.secrets.unwrap_or_default().into_iter().map(|f| {
            let file = f.file.unwrap_or_default();
            format!(
                "{} {} {}:{} {:o}",
                f.secret_name.unwrap_or_default(),
                file.name.unwrap_or_default(),
                file.uid.unwrap_or_default(),
                file.gid.unwrap_or_default(),
                file.mode.unwrap_or_default()
            )
        }))
        .collect();
    files.sort();
    files
}

/// A service's mounts as words the plan compares.
fn mount_words(c: &TaskSpecContainerSpec) -> Vec<String> {
    let c = c.clone();
    let mut mounts: Vec<String> = c
        .mounts
        .unwrap_or_default()
        .into_iter()
        .map(|m| {
            format!(
                "{} {} {}{}",
                m.typ.map(|t| t.to_string()).unwrap_or_default(),
                m.source.unwrap_or_default(),
                m.target.unwrap_or_default(),
                if m.read_only.unwrap_or(false) {
                    " ro"
                } else {
                    ""
                }
            )
        })
        .collect();
    mounts.sort();
    mounts
}

/// What the plan compares of a spec; `network_names` turns the ids the
/// swarm stores back into names.
fn compared(spec: &ServiceSpec, network_names: &HashMap<String, String>) -> Compared {
    let task = spec.task_template.clone().unwrap_or_default();
    let c = task.container_spec.clone().unwrap_or_default();
    let files = file_words(&c);
    let mounts = mount_words(&c);
    let env = c
        .env
        .unwrap_or_default()
        .into_iter()
        .map(|e| match e.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (e, String::new()),
        })
        .collect();
    let networks = task
        .networks
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|n| {
            let target = n.target.unwrap_or_default();
            let name = network_names.get(&target).cloned().unwrap_or(target);
            format!("{name} {}", n.aliases.unwrap_or_default().join(","))
        })
        .collect();
    let ports = spec
        .endpoint_spec
        .clone()
        .and_then(|e| e.ports)
        .unwrap_or_default()
        .into_iter()
        .map(|p| {
            format!(
                "{}:{}/{} {}",
                p.published_port.unwrap_or_default(),
                p.target_port.unwrap_or_default(),
                p.protocol.map(|x| x.to_string()).unwrap_or_default(),
                p.publish_mode.map(|x| x.to_string()).unwrap_or_default()
            )
        })
        .collect();
    let labels: BTreeMap<String, String> = spec
        .labels
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    let health = labels.get(HEALTH_LABEL).cloned();
    let limits = task
        .resources
        .clone()
        .and_then(|r| r.limits)
        .unwrap_or_default();
    Compared {
        image: c.image.unwrap_or_default(),
        command: c.command.unwrap_or_default(),
        args: c.args.unwrap_or_default(),
        env,
        user: c.user.unwrap_or_default(),
        hostname: c.hostname.unwrap_or_default(),
        files,
        mounts,
        networks,
        ports,
        health,
        read_only: c.read_only.unwrap_or(false),
        cap_add: c.capability_add.unwrap_or_default(),
        cap_drop: c.capability_drop.unwrap_or_default(),
        memory_bytes: limits.memory_bytes.unwrap_or_default(),
        pids: limits.pids.unwrap_or_default(),
        placement: task
            .placement
            .and_then(|p| p.constraints)
            .unwrap_or_default(),
        replicas: spec
            .mode
            .clone()
            .and_then(|m| m.replicated)
            .and_then(|r| r.replicas)
            .unwrap_or(1),
        update_order: spec
            .update_config
            .clone()
            .and_then(|u| u.order)
            .map(|o| o.to_string())
            .unwrap_or_default(),
        stop_grace_ns: c.stop_grace_period.unwrap_or_default(),
        labels,
    }
}

fn label_filter(domain: &str) -> HashMap<String, Vec<String>> {
    HashMap::from([(
        "label".to_string(),
        vec![format!("{ASSOCIATION_LABEL}={domain}")],
    )])
}

fn enum_text(value: Option<impl std::fmt::Display>) -> String {
    value.map(|v| v.to_string()).unwrap_or_default()
}

impl Engine {
    /// Whether this engine is a manager of a swarm (`None`: it is in no
    /// swarm, or only a worker, with the swarm's own words).
    pub async fn swarm_manager(&self) -> Result<Result<String, String>, EngineError> {
        match self
            .call(Kind::Read, "GET /swarm", self.docker.inspect_swarm())
            .await
        {
            Ok(swarm) => Ok(Ok(swarm.id.unwrap_or_default())),
            Err(e) if matches!(e.status(), Some(503 | 406)) => {
                Ok(Err(e.engine_message().to_string()))
            }
            Err(e) => Err(e),
        }
    }

    /// Every node of the swarm.
    pub async fn nodes(&self) -> Result<Vec<ObservedNode>, EngineError> {
        let nodes = self
            .call(
                Kind::Read,
                "GET /nodes",
                self.docker.list_nodes(None::<ListNodesOptions>),
            )
            .await?;
        Ok(nodes
            .into_iter()
            .map(|n| {
                let spec = n.spec.unwrap_or_default();
                ObservedNode {
                    id: n.id.unwrap_or_default(),
                    hostname: n.description.and_then(|d| d.hostname).unwrap_or_default(),
                    state: enum_text(n.status.and_then(|s| s.state)),
                    availability: enum_text(spec.availability),
                    role: enum_text(spec.role),
                    labels: spec
                        .labels
                        .clone()
                        .unwrap_or_default()
                        .into_iter()
                        .collect(),
                    version: n.version.and_then(|v| v.index).unwrap_or_default(),
                    spec,
                }
            })
            .collect())
    }

    /// Sets a node's labels (all of them: the others it has are kept by
    /// the caller).
    pub async fn set_node_labels(
        &self,
        node: &ObservedNode,
        labels: &BTreeMap<String, String>,
    ) -> Result<(), EngineError> {
        let mut spec = node.spec.clone();
        spec.labels = Some(labels.clone().into_iter().collect());
        self.call(
            Kind::Write,
            &format!("POST /nodes/{}/update", node.hostname),
            self.docker.update_node(
                &node.id,
                spec,
                UpdateNodeOptions {
                    version: i64::try_from(node.version).unwrap_or_default(),
                },
            ),
        )
        .await
    }

    /// The association's services; `network_names` maps network ids to names.
    pub async fn services(
        &self,
        domain: &str,
        network_names: &HashMap<String, String>,
    ) -> Result<Vec<ObservedService>, EngineError> {
        let list = self
            .call(
                Kind::Read,
                "GET /services",
                self.docker.list_services(Some(ListServicesOptions {
                    filters: Some(label_filter(domain)),
                    ..Default::default()
                })),
            )
            .await?;
        Ok(list
            .into_iter()
            .map(|s| {
                let spec = s.spec.unwrap_or_default();
                let update = s.update_status.unwrap_or_default();
                ObservedService {
                    id: s.id.unwrap_or_default(),
                    name: spec.name.clone().unwrap_or_default(),
                    labels: spec
                        .labels
                        .clone()
                        .unwrap_or_default()
                        .into_iter()
                        .collect(),
                    version: s.version.and_then(|v| v.index).unwrap_or_default(),
                    compared: compared(&spec, network_names),
                    update_state: update.state.map(|s| s.to_string()),
                    update_message: update.message.unwrap_or_default(),
                    template_hash: hash_of(spec.task_template.as_ref()),
                    spec,
                }
            })
            .collect())
    }

    /// Every task of the given services (current and past ones).
    pub async fn tasks(&self, service_ids: &[String]) -> Result<Vec<ObservedTask>, EngineError> {
        if service_ids.is_empty() {
            return Ok(Vec::new());
        }
        let list = self
            .call(
                Kind::Read,
                "GET /tasks",
                self.docker.list_tasks(Some(ListTasksOptions {
                    filters: Some(HashMap::from([(
                        "service".to_string(),
                        service_ids.to_vec(),
                    )])),
                })),
            )
            .await?;
        Ok(list
            .into_iter()
            .map(|t| {
                let status = t.status.unwrap_or_default();
                ObservedTask {
                    id: t.id.unwrap_or_default(),
                    service_id: t.service_id.unwrap_or_default(),
                    node_id: t.node_id.filter(|n| !n.is_empty()),
                    slot: t.slot.unwrap_or_default(),
                    state: enum_text(status.state),
                    desired: enum_text(t.desired_state),
                    error: status.err.filter(|e| !e.is_empty()),
                    message: status.message.unwrap_or_default(),
                    container_id: status
                        .container_status
                        .and_then(|c| c.container_id)
                        .filter(|c| !c.is_empty()),
                    since: status.timestamp.unwrap_or_default(),
                    spec_hash: hash_of(t.spec.as_ref()),
                }
            })
            .collect())
    }

    /// Creates a service.
    pub async fn create_service(&self, request: &ServiceRequest<'_>) -> Result<(), EngineError> {
        let spec = service_spec(request);
        let name = spec.name.clone().unwrap_or_default();
        self.call(
            Kind::Write,
            &format!("POST /services/create {name}"),
            self.docker.create_service(spec, None),
        )
        .await?;
        Ok(())
    }

    /// Moves a service to a new spec; the swarm rolls its tasks.
    pub async fn update_service(
        &self,
        observed: &ObservedService,
        request: &ServiceRequest<'_>,
    ) -> Result<(), EngineError> {
        let what = format!("POST /services/{}/update", observed.name);
        self.put_service(observed, service_spec(request), &what)
            .await
    }

    /// How many copies of a service the swarm keeps running (0 for one
    /// stopped by a restore).
    pub fn replicas(observed: &ObservedService) -> i64 {
        observed.compared.replicas
    }

    /// Sets how many copies of a service run, nothing else changed: 0 stops
    /// it (its tasks end; the swarm does not start them again), 1 starts it.
    pub async fn scale(
        &self,
        observed: &ObservedService,
        replicas: i64,
    ) -> Result<(), EngineError> {
        let mut spec = observed.spec.clone();
        spec.mode = Some(ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated {
                replicas: Some(replicas),
            }),
            ..Default::default()
        });
        let what = format!(
            "POST /services/{}/update (replicas {replicas})",
            observed.name
        );
        self.put_service(observed, spec, &what).await
    }

    /// Replaces a service's spec, quoting the version it was read at.
    async fn put_service(
        &self,
        observed: &ObservedService,
        spec: ServiceSpec,
        what: &str,
    ) -> Result<(), EngineError> {
        self.call(
            Kind::Write,
            what,
            self.docker.update_service(
                &observed.id,
                spec,
                UpdateServiceOptions {
                    version: i32::try_from(observed.version).unwrap_or_default(),
                    ..Default::default()
                },
                None,
            ),
        )
        .await?;
        Ok(())
    }

    /// Removes a service; one already gone is fine.
    pub async fn remove_service(&self, name: &str) -> Result<(), EngineError> {
        match self
            .call(
                Kind::Write,
                &format!("DELETE /services/{name}"),
                self.docker.delete_service(name),
            )
            .await
        {
            Err(e) if e.is_not_found() => Ok(()),
            other => other,
        }
    }

    /// The association's configs and secrets.
    pub async fn swarm_files(&self, domain: &str) -> Result<Vec<ObservedFile>, EngineError> {
        let (configs, secrets) = tokio::try_join!(
            self.call(
                Kind::Read,
                "GET /configs",
                self.docker.list_configs(Some(ListConfigsOptions {
                    filters: Some(label_filter(domain)),
                })),
            ),
            self.call(
                Kind::Read,
                "GET /secrets",
                self.docker.list_secrets(Some(ListSecretsOptions {
                    filters: Some(label_filter(domain)),
                })),
            )
        )?;
        let mut files: Vec<ObservedFile> = configs
            .into_iter()
            .map(|c| ObservedFile {
                id: c.id.unwrap_or_default(),
                name: c.spec.and_then(|s| s.name).unwrap_or_default(),
                secret: false,
            })
            .collect();
        files.extend(secrets.into_iter().map(|s| ObservedFile {
            id: s.id.unwrap_or_default(),
            name: s.spec.and_then(|s| s.name).unwrap_or_default(),
            secret: true,
        }));
        Ok(files)
    }

    /// Creates a config or a secret holding `data`.
    pub async fn create_swarm_file(
        &self,
        file: &FileObject,
        data: &[u8],
        labels: &BTreeMap<String, String>,
    ) -> Result<(), EngineError> {
        let data = Some(base64::engine::general_purpose::STANDARD.encode(data));
        let labels = Some(labels.clone().into_iter().collect());
        let name = Some(file.name.clone());
        let result = if file.secret {
            self.call(
                Kind::Write,
                &format!("POST /secrets/create {}", file.name),
                self.docker.create_secret(SecretSpec {
                    name,
                    labels,
                    data,
                    ..Default::default()
                }),
            )
            .await
        } else {
            self.call(
                Kind::Write,
                &format!("POST /configs/create {}", file.name),
                self.docker.create_config(ConfigSpec {
                    name,
                    labels,
                    data,
                    ..Default::default()
                }),
            )
            .await
        };
        match result {
            // Made by an earlier run that was cut short: same name, same content.
            Err(e) if e.is_conflict() => Ok(()),
            other => other.map(|_| ()),
        }
    }

    /// Removes a config or secret no service uses any more; one still in
    /// use (a task shutting down) is left for the next deploy.
    pub async fn remove_swarm_file(&self, file: &ObservedFile) -> Result<(), EngineError> {
        let result = if file.secret {
            self.call(
                Kind::Write,
                &format!("DELETE /secrets/{}", file.name),
                self.docker.delete_secret(&file.id),
            )
            .await
        } else {
            self.call(
                Kind::Write,
                &format!("DELETE /configs/{}", file.name),
                self.docker.delete_config(&file.id),
            )
            .await
        };
        match result {
            Err(e) if e.is_not_found() || matches!(e.status(), Some(400 | 409)) => Ok(()),
            other => other,
        }
    }

    /// Creates an overlay network that containers outside the swarm may
    /// join too (`attachable`: backups and after-start helpers), its
    /// traffic between machines encrypted when `encrypted`.
    pub async fn create_overlay_network(
        &self,
        name: &str,
        subnet: Option<&str>,
        labels: &BTreeMap<String, String>,
        encrypted: bool,
    ) -> Result<(), EngineError> {
        let body = NetworkCreateRequest {
            name: name.to_string(),
            driver: Some("overlay".into()),
            attachable: Some(true),
            labels: Some(labels.clone().into_iter().collect()),
            options: encrypted.then(|| HashMap::from([("encrypted".to_string(), String::new())])),
            ipam: subnet.map(|s| Ipam {
                config: Some(vec![IpamConfig {
                    subnet: Some(s.to_string()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        self.call(
            Kind::Write,
            &format!("POST /networks/create {name} (overlay)"),
            self.docker.create_network(body),
        )
        .await?;
        Ok(())
    }

    /// Copies an image from this engine into `to` (`docker save | docker
    /// load`, through both APIs), for a node that cannot pull it.
    pub async fn copy_image(&self, image: &str, to: &Engine) -> Result<(), EngineError> {
        self.count(Kind::Read, &format!("GET /images/{image}/get"));
        let chunks: Vec<bytes::Bytes> = self
            .docker
            .export_image(image)
            .map_err(|e| api_error(&format!("exporting `{image}`"), e))
            .try_collect()
            .await?;
        to.count(Kind::Write, &format!("POST /images/load {image}"));
        let body = futures_util::stream::iter(chunks.into_iter().map(Ok::<_, std::io::Error>));
        let mut progress = to.docker.import_image_stream(
            bollard::query_parameters::ImportImageOptions {
                quiet: true,
                ..Default::default()
            },
            body,
            None,
        );
        while let Some(item) = progress.next().await {
            let info = item.map_err(|e| api_error(&format!("loading `{image}`"), e))?;
            if let Some(error) = info.error_detail.and_then(|d| d.message) {
                return Err(api_error(
                    &format!("loading `{image}`"),
                    bollard::errors::Error::DockerResponseServerError {
                        status_code: 500,
                        message: error,
                    },
                ));
            }
        }
        Ok(())
    }
}
