//! The plan: a pure comparison of the desired state with what the engine
//! has, saying for every object whether it is created, replaced (and which
//! field changed), started, kept or removed. `voisin plan` prints it; the
//! deploy carries it out. Nothing here talks to the engine.

mod display;
pub mod swarm;

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::catalog::Build;
use crate::engine::create::{self, FILES_LABEL, KIND_LABEL};
use crate::engine::{ImageInfo, ObservedContainer, ObservedNetwork, ObservedVolume};
use crate::render::state::{ContainerSpec, DesiredState, Exec};

pub use display::text;

/// The suffix of a new container started beside the one it replaces.
pub const NEXT_SUFFIX: &str = "-voisin-next";
/// The suffix of a replaced container kept, stopped, until the deploy ends.
pub const OLD_SUFFIX: &str = "-voisin-old";

/// What the engine has, as far as the plan is concerned.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// The association's containers.
    pub containers: Vec<ObservedContainer>,
    /// The association's networks.
    pub networks: Vec<ObservedNetwork>,
    /// The association's volumes.
    pub volumes: Vec<ObservedVolume>,
    /// Each image the desired state names: what the engine has of it.
    pub images: BTreeMap<String, Option<ImageInfo>>,
    /// For images voisin builds: the fingerprint the build would have.
    pub wanted_builds: BTreeMap<String, String>,
    /// The after-start steps already done: step key → container id.
    pub steps_done: BTreeMap<String, String>,
}

/// What to do with one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Make it.
    Create,
    /// Make a new one and remove the old one.
    Replace,
    /// Start it again.
    Start,
    /// Remove it.
    Remove,
    /// Nothing to do.
    Keep,
}

/// A change to a network, volume or image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// The object's name.
    pub name: String,
    /// What to do.
    pub action: Action,
    /// Why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
}

/// How an image reaches the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageAction {
    /// From a registry.
    Pull,
    /// Built from the running voisin.
    Build,
    /// The engine has it.
    Keep,
}

/// A change to an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageChange {
    /// The image.
    pub name: String,
    /// What to do.
    pub action: ImageAction,
    /// Why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The image this one replaces on the engine, removed once nothing uses it.
    #[serde(skip)]
    pub previous_id: Option<String>,
}

/// A change to a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContainerChange {
    /// Its name on the engine.
    pub name: String,
    /// Its service.
    pub service: String,
    /// What to do.
    pub action: Action,
    /// Why: which field changed, or what happened to it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
}

/// An after-start step to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepChange {
    /// What it is for.
    pub doc: String,
    /// The container it runs in.
    pub container: String,
    /// Why it runs.
    pub reason: String,
    /// Its key in the deploy record.
    #[serde(skip)]
    pub key: String,
}

/// Something an interrupted run left behind, put right before anything else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "lowercase")]
pub enum Cleanup {
    /// A container of an unfinished replacement: removed.
    Remove {
        /// Its name.
        name: String,
    },
    /// The container an unfinished replacement stopped: put back under its name.
    Restore {
        /// Its temporary name.
        from: String,
        /// Its own name.
        to: String,
    },
}

/// Everything `deploy` would do.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// Leftovers of an interrupted run.
    pub cleanup: Vec<Cleanup>,
    /// Images.
    pub images: Vec<ImageChange>,
    /// Networks.
    pub networks: Vec<Change>,
    /// Volumes; those no longer used are kept (never removed by deploy).
    pub volumes: Vec<Change>,
    /// Containers, in start order.
    pub containers: Vec<ContainerChange>,
    /// After-start steps to run.
    pub steps: Vec<StepChange>,
    /// Volumes of rendered files that no container uses any more.
    pub stale_files_volumes: Vec<String>,
}

impl Plan {
    /// True when deploying would change nothing.
    pub fn is_empty(&self) -> bool {
        self.cleanup.is_empty()
            && self.images.iter().all(|i| i.action == ImageAction::Keep)
            && self.networks.iter().all(|c| c.action == Action::Keep)
            && self.volumes.iter().all(|c| c.action == Action::Keep)
            && self.containers.iter().all(|c| c.action == Action::Keep)
            && self.steps.is_empty()
            && self.stale_files_volumes.is_empty()
    }

    /// The change for a container.
    pub fn container(&self, name: &str) -> Option<&ContainerChange> {
        self.containers.iter().find(|c| c.name == name)
    }
}

/// The key of an after-start step in the deploy record: its whole content
/// (secret values by hash only).
pub fn step_key(step: &Exec) -> String {
    crate::render::state::sha256_hex(&serde_json::to_vec(step).unwrap_or_default())
}

/// What becomes of each image `desired` names, on an engine that has
/// `observed.images` (a swarm's manager builds and pulls for every node).
pub fn image_changes(desired: &DesiredState, observed: &Observed) -> Vec<ImageChange> {
    let mut out = Vec::new();
    images(desired, observed, &mut out);
    out
}

/// Compares `desired` with `observed`.
pub fn plan(desired: &DesiredState, observed: &Observed) -> Plan {
    let mut plan = Plan::default();
    let own: Vec<&ObservedContainer> = observed
        .containers
        .iter()
        .filter(|c| !c.labels.contains_key(KIND_LABEL))
        .collect();
    let current = Current::new(&own, &mut plan.cleanup);
    let renewed_images = images(desired, observed, &mut plan.images);
    let recreated_networks = networks(desired, observed, &mut plan.networks);
    volumes(desired, observed, &mut plan);
    for spec in &desired.containers {
        let change = container(
            spec,
            &current,
            observed,
            &renewed_images,
            &recreated_networks,
        );
        plan.containers.push(change);
    }
    for o in &own {
        let is_temporary = o.name.ends_with(OLD_SUFFIX) || o.name.ends_with(NEXT_SUFFIX);
        if !is_temporary && !desired.containers.iter().any(|c| c.name == o.name) {
            plan.containers.push(ContainerChange {
                name: o.name.clone(),
                service: o.labels.get("voisin.service").cloned().unwrap_or_default(),
                action: Action::Remove,
                reasons: vec!["no longer in the manifest".into()],
            });
        }
    }
    plan.steps = steps(desired, observed, &plan, &current);
    plan
}

/// The container that stands for each name: the one of that name, else
/// the one an interrupted replacement kept aside (which cleanup puts back).
struct Current<'a> {
    by_name: BTreeMap<&'a str, &'a ObservedContainer>,
}

impl<'a> Current<'a> {
    /// Also lists what interrupted runs left, as cleanup.
    fn new(own: &[&'a ObservedContainer], cleanup: &mut Vec<Cleanup>) -> Self {
        let names: BTreeSet<&str> = own.iter().map(|c| c.name.as_str()).collect();
        let mut by_name = BTreeMap::new();
        for c in own {
            if c.name.ends_with(NEXT_SUFFIX) {
                cleanup.push(Cleanup::Remove {
                    name: c.name.clone(),
                });
            } else if let Some(base) = c.name.strip_suffix(OLD_SUFFIX) {
                if names.contains(base) {
                    cleanup.push(Cleanup::Remove {
                        name: c.name.clone(),
                    });
                } else {
                    cleanup.push(Cleanup::Restore {
                        from: c.name.clone(),
                        to: base.to_string(),
                    });
                    by_name.insert(base, *c);
                }
            } else {
                by_name.insert(c.name.as_str(), *c);
            }
        }
        Self { by_name }
    }

    fn get(&self, name: &str) -> Option<&'a ObservedContainer> {
        self.by_name.get(name).copied()
    }
}

/// How each image reaches the engine; returns those that are new.
fn images(
    desired: &DesiredState,
    observed: &Observed,
    out: &mut Vec<ImageChange>,
) -> BTreeSet<String> {
    let mut renewed = BTreeSet::new();
    let mut seen = BTreeSet::new();
    for spec in &desired.containers {
        if !seen.insert(spec.image.clone()) {
            continue;
        }
        let have = observed.images.get(&spec.image).and_then(Option::as_ref);
        let change = match (spec.build, have) {
            (Some(Build::Voisin), have) => {
                let wanted = observed.wanted_builds.get(&spec.image);
                let built = have.and_then(|i| i.labels.get(crate::engine::build::SOURCE_LABEL));
                match (built, wanted) {
                    (Some(b), Some(w)) if b == w => keep_image(&spec.image),
                    (None, _) if have.is_none() => ImageChange {
                        name: spec.image.clone(),
                        action: ImageAction::Build,
                        reason: Some("not built yet".into()),
                        previous_id: None,
                    },
                    _ => ImageChange {
                        name: spec.image.clone(),
                        action: ImageAction::Build,
                        reason: Some("built from another voisin executable".into()),
                        previous_id: have.map(|i| i.id.clone()),
                    },
                }
            }
            (None, Some(_)) => keep_image(&spec.image),
            (None, None) => ImageChange {
                name: spec.image.clone(),
                action: ImageAction::Pull,
                reason: Some("not on the engine".into()),
                previous_id: None,
            },
        };
        if change.action != ImageAction::Keep {
            renewed.insert(spec.image.clone());
        }
        out.push(change);
    }
    renewed
}

/// Networks to create or remove; returns those made again.
fn networks(
    desired: &DesiredState,
    observed: &Observed,
    out: &mut Vec<Change>,
) -> BTreeSet<String> {
    let mut recreated = BTreeSet::new();
    for net in &desired.networks {
        let change = match observed.networks.iter().find(|n| n.name == net.name) {
            None => Change {
                name: net.name.clone(),
                action: Action::Create,
                reasons: Vec::new(),
            },
            Some(o) if net.subnet.is_some() && o.subnet != net.subnet => {
                recreated.insert(net.name.clone());
                Change {
                    name: net.name.clone(),
                    action: Action::Replace,
                    reasons: vec![format!(
                        "subnet `{}` → `{}`",
                        o.subnet.as_deref().unwrap_or("none"),
                        net.subnet.as_deref().unwrap_or("none")
                    )],
                }
            }
            Some(_) => Change {
                name: net.name.clone(),
                action: Action::Keep,
                reasons: Vec::new(),
            },
        };
        out.push(change);
    }
    for o in &observed.networks {
        if !o.labels.contains_key(KIND_LABEL) && !desired.networks.iter().any(|n| n.name == o.name)
        {
            out.push(Change {
                name: o.name.clone(),
                action: Action::Remove,
                reasons: vec!["no longer in the manifest".into()],
            });
        }
    }
    recreated
}

/// Volumes to create; data is never removed by a deploy. Files volumes no
/// container wants any more are listed for removal.
fn volumes(desired: &DesiredState, observed: &Observed, plan: &mut Plan) {
    for vol in &desired.volumes {
        let exists = observed.volumes.iter().any(|v| v.name == vol.name);
        plan.volumes.push(Change {
            name: vol.name.clone(),
            action: if exists { Action::Keep } else { Action::Create },
            reasons: Vec::new(),
        });
    }
    let wanted_files: BTreeSet<String> = desired
        .containers
        .iter()
        .flat_map(|c| create::files_volumes(c).into_iter().map(|v| v.name))
        .collect();
    for o in &observed.volumes {
        if o.labels.get(KIND_LABEL).is_some_and(|k| k == "files") {
            if !wanted_files.contains(&o.name) {
                plan.stale_files_volumes.push(o.name.clone());
            }
        } else if !desired.volumes.iter().any(|v| v.name == o.name) {
            plan.volumes.push(Change {
                name: o.name.clone(),
                action: Action::Keep,
                reasons: vec![
                    "no longer used; its data stays until `voisin down --volumes`".into(),
                ],
            });
        }
    }
}

/// What to do with one desired container.
fn container(
    spec: &ContainerSpec,
    current: &Current<'_>,
    observed: &Observed,
    renewed_images: &BTreeSet<String>,
    recreated_networks: &BTreeSet<String>,
) -> ContainerChange {
    let Some(o) = current.get(&spec.name) else {
        return ContainerChange {
            name: spec.name.clone(),
            service: spec.service.clone(),
            action: Action::Create,
            reasons: Vec::new(),
        };
    };
    let image = observed.images.get(&spec.image).and_then(Option::as_ref);
    let mut reasons = differences(spec, o, image);
    if renewed_images.contains(&spec.image) {
        reasons.push(format!("image `{}` is new", spec.image));
    }
    for net in &spec.networks {
        if recreated_networks.contains(&net.network) {
            reasons.push(format!("network `{}` is recreated", net.network));
        }
    }
    let action = if !reasons.is_empty() {
        Action::Replace
    } else if !o.state.running {
        reasons.push(stopped_reason(o));
        Action::Start
    } else {
        Action::Keep
    };
    ContainerChange {
        name: spec.name.clone(),
        service: spec.service.clone(),
        action,
        reasons,
    }
}

/// After-start steps run once per container they run in, and again when
/// that container is new.
fn steps(
    desired: &DesiredState,
    observed: &Observed,
    plan: &Plan,
    current: &Current<'_>,
) -> Vec<StepChange> {
    let mut out = Vec::new();
    for step in &desired.after_start {
        let key = step_key(step);
        let container_is_new = plan
            .container(&step.container)
            .is_some_and(|c| matches!(c.action, Action::Create | Action::Replace));
        let current_id = current.get(&step.container).map(|c| c.id.as_str());
        let reason = match observed.steps_done.get(&key) {
            _ if container_is_new => Some("its container is new"),
            None => Some("not run yet"),
            Some(id) if Some(id.as_str()) != current_id => Some("its container was recreated"),
            Some(_) => None,
        };
        if let Some(reason) = reason {
            out.push(StepChange {
                doc: match &step.about {
                    Some(about) => format!("{} for {about}", step.doc),
                    None => step.doc.clone(),
                },
                container: step.container.clone(),
                reason: reason.into(),
                key,
            });
        }
    }
    out
}

fn keep_image(name: &str) -> ImageChange {
    ImageChange {
        name: name.to_string(),
        action: ImageAction::Keep,
        reason: None,
        previous_id: None,
    }
}

fn stopped_reason(o: &ObservedContainer) -> String {
    match o.state.status.as_str() {
        "created" => "created but never started".into(),
        "exited" => format!("stopped (exit code {})", o.state.exit_code),
        other => format!("not running ({other})"),
    }
}

/// Every field where the container differs from its spec, in words.
/// Environment values are never shown, only their names.
// One flat checklist of fields reads better than pieces of it.
#[allow(clippy::too_many_lines)]
pub fn differences(
    spec: &ContainerSpec,
    o: &ObservedContainer,
    image: Option<&ImageInfo>,
) -> Vec<String> {
    let mut reasons = Vec::new();
    let mut differ = |field: &str, changed: bool| {
        if changed {
            reasons.push(format!("{field} changed"));
        }
    };
    if o.image != spec.image {
        differ(&format!("image `{}` → `{}`", o.image, spec.image), true);
    } else if let Some(image) = image
        && o.image_id != image.id
    {
        differ(
            &format!("image `{}` was updated on the engine", spec.image),
            true,
        );
    }

    // The environment a container gets is the image's, overridden by ours.
    let mut wanted: BTreeMap<String, String> = image.map(|i| env_map(&i.env)).unwrap_or_default();
    for (k, v) in &spec.env {
        wanted.insert(k.clone(), v.clone());
    }
    let have = env_map(&o.env);
    for key in wanted.keys().chain(have.keys()).collect::<BTreeSet<_>>() {
        match (wanted.get(key), have.get(key)) {
            (Some(_), None) => reasons.push(format!("environment `{key}` missing")),
            // Without the image's own list, extra names may be its own.
            (None, Some(_)) if image.is_some() => {
                reasons.push(format!("environment `{key}` added"));
            }
            (Some(a), Some(b)) if a != b => reasons.push(format!("environment `{key}` changed")),
            _ => {}
        }
    }
    let mut differ = |field: &str, changed: bool| {
        if changed {
            reasons.push(format!("{field} changed"));
        }
    };
    if let Some(image) = image {
        let entrypoint = if spec.entrypoint.is_empty() {
            &image.entrypoint
        } else {
            &spec.entrypoint
        };
        let cmd: &[String] = if !spec.command.is_empty() {
            &spec.command
        } else if spec.entrypoint.is_empty() {
            &image.cmd
        } else {
            &[]
        };
        differ("entrypoint", &o.entrypoint != entrypoint);
        differ("command", o.cmd != cmd);
    } else {
        differ("command", !spec.command.is_empty() && o.cmd != spec.command);
    }
    differ("user", o.user != spec.user.clone().unwrap_or_default());
    if let Some(h) = &spec.hostname {
        differ("host name", &o.hostname != h);
    }
    for key in [
        "voisin.association",
        "voisin.service",
        "voisin.container",
        "voisin.spec",
    ] {
        differ(
            &format!("label `{key}`"),
            o.labels.get(key) != spec.labels.get(key),
        );
    }
    let wanted_files = parse_files_label(&create::files_label(spec));
    let have_files = o
        .labels
        .get(FILES_LABEL)
        .map(|l| parse_files_label(l))
        .unwrap_or_default();
    for path in wanted_files
        .keys()
        .chain(have_files.keys())
        .collect::<BTreeSet<_>>()
    {
        match (wanted_files.get(path), have_files.get(path)) {
            (Some(_), None) => reasons.push(format!("file `{path}` added")),
            (None, Some(_)) => reasons.push(format!("file `{path}` removed")),
            (Some(a), Some(b)) if a != b => reasons.push(format!("file `{path}` changed")),
            _ => {}
        }
    }
    let mut differ = |field: &str, changed: bool| {
        if changed {
            reasons.push(format!("{field} changed"));
        }
    };
    differ("volumes", o.mounts != create::all_mounts(spec));
    let mut tmpfs = spec.tmpfs.clone();
    tmpfs.sort();
    differ("tmpfs", o.tmpfs != tmpfs);
    let wanted_nets: BTreeMap<&str, &Vec<String>> = spec
        .networks
        .iter()
        .map(|a| (a.network.as_str(), &a.aliases))
        .collect();
    let nets_match = wanted_nets.len() == o.networks.len()
        && wanted_nets.iter().all(|(net, aliases)| {
            o.networks
                .get(*net)
                .is_some_and(|have| aliases.iter().all(|a| have.contains(a)))
        });
    differ("networks", !nets_match);
    let mut ports = spec.ports.clone();
    ports.sort_by_key(|p| (p.host, p.container));
    differ("published ports", o.ports != ports);
    differ("health check", o.health != spec.health);
    differ("memory limit", o.memory_bytes != spec.memory_bytes);
    differ("process limit", o.pids_limit != spec.pids_limit);
    differ(
        "capabilities",
        o.cap_add != spec.cap_add || o.cap_drop != spec.cap_drop,
    );
    let mut security = spec.security_opt.clone();
    security.sort();
    differ("security options", o.security_opt != security);
    differ("read-only root", o.read_only != spec.read_only);
    differ("restart policy", o.restart != spec.restart);
    differ(
        "log rotation",
        o.log_max_size != spec.log_max_size || o.log_max_files != spec.log_max_files,
    );
    differ(
        "stop grace",
        o.stop_grace_seconds != spec.stop_grace_seconds,
    );
    reasons
}

fn env_map(env: &[String]) -> BTreeMap<String, String> {
    env.iter()
        .map(|e| {
            let (k, v) = e.split_once('=').unwrap_or((e, ""));
            (k.to_string(), v.to_string())
        })
        .collect()
}

fn parse_files_label(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| {
            l.rsplit_once('=')
                .map(|(p, h)| (p.to_string(), h.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests;
