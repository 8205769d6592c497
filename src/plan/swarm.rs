//! The plan on a swarm: where each service runs (placement), which node
//! labels pin it there, which images each node still needs, which
//! networks, configs and secrets to make, and which services to create,
//! update (with the fields that changed), keep or remove. Pure, like the
//! plan on one engine.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::{Action, Change, StepChange, step_key};
use crate::engine::ObservedNetwork;
use crate::engine::swarm::{
    Compared, FileObject, ObservedFile, ObservedNode, ObservedService, ObservedTask, Order,
};
use crate::render::state::{ContainerSpec, DesiredState};

/// The value of a node label that pins a service there.
pub const PINNED: &str = "pinned";

/// What the swarm has, as far as the plan is concerned.
#[derive(Debug, Clone, Default)]
pub struct SwarmObserved {
    /// Every node.
    pub nodes: Vec<ObservedNode>,
    /// The association's services.
    pub services: Vec<ObservedService>,
    /// Their tasks.
    pub tasks: Vec<ObservedTask>,
    /// The association's networks.
    pub networks: Vec<ObservedNetwork>,
    /// The association's configs and secrets.
    pub files: Vec<ObservedFile>,
    /// For each image: its id on the engine voisin copies from (the
    /// manager's), and on each node (by host name), `None` where missing.
    pub images: BTreeMap<String, ImageIds>,
    /// The after-start steps done: step key → container id.
    pub steps_done: BTreeMap<String, String>,
}

/// An image's id on the engine voisin copies from, and on each node (by
/// host name); `None` where it is missing.
pub type ImageIds = (Option<String>, BTreeMap<String, Option<String>>);

/// Where the manifest says services go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layout {
    /// The nodes voisin may use, by host name, in the manifest's order.
    pub nodes: Vec<String>,
    /// Services the manifest pins: service → node.
    pub pinned: BTreeMap<String, String>,
}

/// A node's labels to set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeChange {
    /// The node's host name.
    pub node: String,
    /// Why.
    pub reasons: Vec<String>,
    /// All the labels it should have.
    #[serde(skip)]
    pub labels: BTreeMap<String, String>,
}

/// An image to copy into a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageCopy {
    /// The image.
    pub image: String,
    /// The node.
    pub node: String,
    /// Why.
    pub reason: String,
}

/// A config or secret to make or remove.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileChange {
    /// Its name.
    pub name: String,
    /// A secret (else a config).
    pub secret: bool,
    /// What to do.
    pub action: Action,
}

/// A change to a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceChange {
    /// Its name (the container's engine name).
    pub name: String,
    /// The manifest's service (role) it belongs to.
    pub service: String,
    /// What to do: create, replace (an update the swarm rolls), keep, remove.
    pub action: Action,
    /// The node it is pinned to, with its data; none for a service that may
    /// run anywhere.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// How an update rolls.
    pub order: Order,
    /// Why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
}

/// Everything a swarm deploy does, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SwarmPlan {
    /// Node labels (pins).
    pub nodes: Vec<NodeChange>,
    /// Images copied into nodes.
    pub images: Vec<ImageCopy>,
    /// Overlay networks.
    pub networks: Vec<Change>,
    /// Configs and secrets.
    pub files: Vec<FileChange>,
    /// Services.
    pub services: Vec<ServiceChange>,
    /// After-start steps.
    pub steps: Vec<StepChange>,
}

impl SwarmPlan {
    /// True when nothing changes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
            && self.images.is_empty()
            && self.networks.iter().all(|c| c.action == Action::Keep)
            && self.files.is_empty()
            && self.services.iter().all(|c| c.action == Action::Keep)
            && self.steps.is_empty()
    }

    /// The change planned for a service.
    pub fn service(&self, name: &str) -> Option<&ServiceChange> {
        self.services.iter().find(|s| s.name == name)
    }
}

/// The label that admits a node to the association's services.
pub fn member_label(slug: &str) -> String {
    format!("voisin.{slug}")
}

/// The label that pins a service (role) to a node.
pub fn pin_label(slug: &str, service: &str) -> String {
    format!("voisin.{slug}.{service}")
}

/// Whether a new copy of a container may run beside the old one: no
/// published port, and no volume both would write.
pub fn order(spec: &ContainerSpec) -> Order {
    if spec.ports.is_empty() && spec.mounts.iter().all(|m| m.read_only) {
        Order::StartFirst
    } else {
        Order::StopFirst
    }
}

/// The placement constraints of a service's containers.
pub fn constraints(slug: &str, service: &str, node: Option<&str>) -> Vec<String> {
    match node {
        Some(_) => vec![format!(
            "node.labels.{}=={PINNED}",
            pin_label(slug, service)
        )],
        None => vec![format!("node.labels.{}==yes", member_label(slug))],
    }
}

/// Services that share a volume must run on one machine; this groups them
/// (each group sorted, groups in the order their first service comes).
fn volume_groups(desired: &DesiredState) -> Vec<BTreeSet<String>> {
    let mut groups: Vec<BTreeSet<String>> = Vec::new();
    let mut by_volume: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for c in &desired.containers {
        for m in &c.mounts {
            by_volume
                .entry(m.volume.as_str())
                .or_default()
                .insert(c.service.clone());
        }
    }
    for c in &desired.containers {
        if groups.iter().any(|g| g.contains(&c.service)) {
            continue;
        }
        let mut group = BTreeSet::from([c.service.clone()]);
        // Grow until no volume links it to another service.
        loop {
            let before = group.len();
            for services in by_volume.values() {
                if services.iter().any(|s| group.contains(s)) {
                    group.extend(services.iter().cloned());
                }
            }
            if group.len() == before {
                break;
            }
        }
        groups.push(group);
    }
    groups
}

/// Where each service runs: `Some(node)` for a service that keeps data
/// (it mounts a volume) and so lives on one machine, `None` for one that
/// may run anywhere. A pin the manifest gives wins; else the pin an earlier
/// deploy chose (a node label); else the node with the fewest pinned
/// services. Services that share a volume go together.
pub fn placement(
    desired: &DesiredState,
    layout: &Layout,
    observed: &SwarmObserved,
) -> Result<BTreeMap<String, Option<String>>, String> {
    let slug = &desired.association;
    let stateful: BTreeSet<&str> = desired
        .containers
        .iter()
        .filter(|c| !c.mounts.is_empty())
        .map(|c| c.service.as_str())
        .collect();
    let earlier = |service: &str| {
        observed
            .nodes
            .iter()
            .find(|n| {
                layout.nodes.contains(&n.hostname)
                    && n.labels.get(&pin_label(slug, service)).map(String::as_str) == Some(PINNED)
            })
            .map(|n| n.hostname.clone())
    };
    let mut out: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut load: BTreeMap<&str, usize> = layout.nodes.iter().map(|n| (n.as_str(), 0)).collect();
    let mut undecided = Vec::new();
    for group in volume_groups(desired) {
        let keeps_data = group.iter().any(|s| stateful.contains(s.as_str()));
        let pins: BTreeSet<(&String, &String)> = group
            .iter()
            .filter_map(|s| layout.pinned.get(s).map(|n| (s, n)))
            .collect();
        let nodes: BTreeSet<&String> = pins.iter().map(|(_, n)| *n).collect();
        if nodes.len() > 1 {
            let list: Vec<String> = pins
                .iter()
                .map(|(s, n)| format!("`{s}` on `{n}`"))
                .collect();
            return Err(format!(
                "{} share a volume, so they must run on one machine, but the manifest pins {}",
                group
                    .iter()
                    .map(|s| format!("`{s}`"))
                    .collect::<Vec<_>>()
                    .join(" and "),
                list.join(" and ")
            ));
        }
        let chosen = nodes
            .first()
            .map(|n| (*n).clone())
            .or_else(|| group.iter().find_map(|s| earlier(s)));
        match (keeps_data || !pins.is_empty(), chosen) {
            (false, _) => {
                for s in group {
                    out.insert(s, None);
                }
            }
            (true, Some(node)) => {
                *load.entry(layout_node(layout, &node)).or_default() += 1;
                for s in group {
                    out.insert(s, Some(node.clone()));
                }
            }
            (true, None) => undecided.push(group),
        }
    }
    for group in undecided {
        let Some((node, _)) = layout
            .nodes
            .iter()
            .map(|n| (n, load.get(n.as_str()).copied().unwrap_or(0)))
            .min_by_key(|(_, count)| *count)
        else {
            return Err("the swarm has no node to run services on".into());
        };
        *load.entry(node.as_str()).or_default() += 1;
        for s in group {
            out.insert(s, Some(node.clone()));
        }
    }
    Ok(out)
}

fn layout_node<'a>(layout: &'a Layout, node: &str) -> &'a str {
    layout
        .nodes
        .iter()
        .find(|n| *n == node)
        .map_or("", String::as_str)
}

/// The labels voisin keeps on each node: membership, and the pins.
fn node_labels(
    desired: &DesiredState,
    layout: &Layout,
    placed: &BTreeMap<String, Option<String>>,
    observed: &SwarmObserved,
    plan: &mut SwarmPlan,
) -> Result<(), String> {
    let slug = &desired.association;
    let prefix = member_label(slug);
    for name in &layout.nodes {
        let Some(node) = observed.nodes.iter().find(|n| &n.hostname == name) else {
            let known: Vec<String> = observed
                .nodes
                .iter()
                .map(|n| format!("`{}`", n.hostname))
                .collect();
            return Err(format!(
                "the manifest names the node `{name}`, which the swarm does not have (it has {})",
                known.join(", ")
            ));
        };
        let mut labels = node.labels.clone();
        labels.retain(|k, _| k != &prefix && !k.starts_with(&format!("{prefix}.")));
        labels.insert(prefix.clone(), "yes".into());
        for (service, at) in placed {
            if at.as_deref() == Some(name.as_str()) {
                labels.insert(pin_label(slug, service), PINNED.into());
            }
        }
        if labels != node.labels {
            let mut reasons = Vec::new();
            for (k, v) in &labels {
                if node.labels.get(k) != Some(v) {
                    reasons.push(if k == &prefix {
                        "joins the association's nodes".to_string()
                    } else {
                        format!("pins `{}`", k.trim_start_matches(&format!("{prefix}.")))
                    });
                }
            }
            for k in node.labels.keys() {
                if k.starts_with(&format!("{prefix}.")) && !labels.contains_key(k) {
                    reasons.push(format!(
                        "unpins `{}`",
                        k.trim_start_matches(&format!("{prefix}."))
                    ));
                }
            }
            plan.nodes.push(NodeChange {
                node: name.clone(),
                reasons,
                labels,
            });
        }
    }
    Ok(())
}

/// The files of every container, as configs and secrets.
pub fn file_objects(desired: &DesiredState) -> BTreeMap<String, Vec<FileObject>> {
    desired
        .containers
        .iter()
        .map(|c| {
            (
                c.name.clone(),
                c.files.iter().map(|f| FileObject::of(&c.name, f)).collect(),
            )
        })
        .collect()
}

/// Compares `desired` with what the swarm has. `wanted` is the spec voisin
/// would send for each container, already reduced to what is compared.
pub fn plan(
    desired: &DesiredState,
    layout: &Layout,
    observed: &SwarmObserved,
    wanted: &BTreeMap<String, Compared>,
) -> Result<(SwarmPlan, BTreeMap<String, Option<String>>), String> {
    let mut plan = SwarmPlan::default();
    let placed = placement(desired, layout, observed)?;
    node_labels(desired, layout, &placed, observed, &mut plan)?;
    images(desired, layout, &placed, observed, &mut plan)?;
    for n in &desired.networks {
        let found = observed.networks.iter().find(|o| o.name == n.name);
        let (action, reasons) = match found {
            None => (Action::Create, vec![]),
            Some(o) if o.driver != "overlay" => (
                Action::Replace,
                vec![format!(
                    "a `{}` network, not one that spans machines",
                    o.driver
                )],
            ),
            Some(_) => (Action::Keep, vec![]),
        };
        plan.networks.push(Change {
            name: n.name.clone(),
            action,
            reasons,
        });
    }
    for o in &observed.networks {
        if !desired.networks.iter().any(|n| n.name == o.name) {
            plan.networks.push(Change {
                name: o.name.clone(),
                action: Action::Remove,
                reasons: vec!["no longer in the manifest".into()],
            });
        }
    }
    let files = file_objects(desired);
    let wanted_files: BTreeSet<(&str, bool)> = files
        .values()
        .flatten()
        .map(|f| (f.name.as_str(), f.secret))
        .collect();
    for (name, secret) in &wanted_files {
        if !observed
            .files
            .iter()
            .any(|o| o.name == *name && o.secret == *secret)
        {
            plan.files.push(FileChange {
                name: (*name).to_string(),
                secret: *secret,
                action: Action::Create,
            });
        }
    }
    for o in &observed.files {
        if !wanted_files.contains(&(o.name.as_str(), o.secret)) {
            plan.files.push(FileChange {
                name: o.name.clone(),
                secret: o.secret,
                action: Action::Remove,
            });
        }
    }
    services(desired, observed, wanted, &placed, &mut plan);
    plan.steps = steps(desired, observed, &plan);
    Ok((plan, placed))
}

fn services(
    desired: &DesiredState,
    observed: &SwarmObserved,
    wanted: &BTreeMap<String, Compared>,
    placed: &BTreeMap<String, Option<String>>,
    plan: &mut SwarmPlan,
) {
    for spec in &desired.containers {
        let node = placed.get(&spec.service).cloned().flatten();
        let found = observed.services.iter().find(|s| s.name == spec.name);
        let (action, reasons) = match (found, wanted.get(&spec.name)) {
            (None, _) => (Action::Create, vec![]),
            (Some(o), Some(w)) => {
                // A service with no copy running (its machine is lost) is
                // the swarm's to restart: deploying the same spec again
                // would change nothing.
                let reasons = w.reasons(&o.compared);
                if reasons.is_empty() {
                    (Action::Keep, reasons)
                } else {
                    (Action::Replace, reasons)
                }
            }
            (Some(_), None) => (Action::Keep, vec![]),
        };
        plan.services.push(ServiceChange {
            name: spec.name.clone(),
            service: spec.service.clone(),
            action,
            node,
            order: order(spec),
            reasons,
        });
    }
    for o in &observed.services {
        if !desired.containers.iter().any(|c| c.name == o.name) {
            plan.services.push(ServiceChange {
                name: o.name.clone(),
                service: o.labels.get("voisin.service").cloned().unwrap_or_default(),
                action: Action::Remove,
                node: None,
                order: Order::StopFirst,
                reasons: vec!["no longer in the manifest".into()],
            });
        }
    }
}

/// The container of the running copy of a service, if one runs.
pub fn running_container<'a>(observed: &'a SwarmObserved, name: &str) -> Option<&'a ObservedTask> {
    let service = observed.services.iter().find(|s| s.name == name)?;
    observed
        .tasks
        .iter()
        .filter(|t| t.service_id == service.id && t.desired == "running" && t.state == "running")
        .max_by(|a, b| a.since.cmp(&b.since))
}

/// Images each node needs and lacks (or has in another version): the
/// nodes a service may run on, all of them for a service pinned nowhere.
fn images(
    desired: &DesiredState,
    layout: &Layout,
    placed: &BTreeMap<String, Option<String>>,
    observed: &SwarmObserved,
    plan: &mut SwarmPlan,
) -> Result<(), String> {
    let mut needed: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for c in &desired.containers {
        let nodes: Vec<&str> = match placed.get(&c.service).cloned().flatten() {
            Some(node) => vec![layout_node(layout, &node)],
            None => layout.nodes.iter().map(String::as_str).collect(),
        };
        needed.entry(c.image.as_str()).or_default().extend(nodes);
    }
    for (image, nodes) in needed {
        let (source, on_nodes) = observed.images.get(image).cloned().unwrap_or_default();
        for node in nodes {
            let here = on_nodes.get(node).cloned().flatten();
            let reason = match (&source, here) {
                (Some(_), None) => "missing on the node",
                (Some(s), Some(h)) if *s != h => "another version on the node",
                (None, None) => {
                    return Err(format!(
                        "the image `{image}` is on neither the manager nor the node `{node}`, and no registry is used"
                    ));
                }
                _ => continue,
            };
            plan.images.push(ImageCopy {
                image: image.to_string(),
                node: node.to_string(),
                reason: reason.into(),
            });
        }
    }
    Ok(())
}

/// After-start steps run once per container they run in, and again when
/// that container is new (a task on another node is a new container).
fn steps(desired: &DesiredState, observed: &SwarmObserved, plan: &SwarmPlan) -> Vec<StepChange> {
    let mut out = Vec::new();
    for step in &desired.after_start {
        let key = step_key(step);
        let is_new = plan
            .service(&step.container)
            .is_some_and(|c| matches!(c.action, Action::Create | Action::Replace));
        let current =
            running_container(observed, &step.container).and_then(|t| t.container_id.clone());
        let reason = match observed.steps_done.get(&key) {
            _ if is_new => Some("its service is new or updated"),
            None => Some("not run yet"),
            Some(id) if Some(id) != current.as_ref() => Some("its container was recreated"),
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

/// The plan as text, for `voisin plan` and before a deploy.
pub fn text(plan: &SwarmPlan) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    for n in &plan.nodes {
        let _ = writeln!(out, "  label    node {}: {}", n.node, n.reasons.join(", "));
    }
    for i in &plan.images {
        let _ = writeln!(
            out,
            "  load     image {} into {} ({})",
            i.image, i.node, i.reason
        );
    }
    for n in &plan.networks {
        if n.action != Action::Keep {
            let _ = writeln!(
                out,
                "  {:<8} network {}{}",
                word(n.action),
                n.name,
                because(&n.reasons)
            );
        }
    }
    for f in &plan.files {
        let what = if f.secret { "secret" } else { "config" };
        let _ = writeln!(out, "  {:<8} {what} {}", word(f.action), f.name);
    }
    for s in &plan.services {
        let at = s.node.as_ref().map_or_else(
            || " on any node".into(),
            |n| format!(" on {n} (pinned: the service's data lives there)"),
        );
        let _ = writeln!(
            out,
            "  {:<8} service {}{at}{}",
            word(s.action),
            s.name,
            because(&s.reasons)
        );
    }
    for s in &plan.steps {
        let _ = writeln!(
            out,
            "  run      {} in {} ({})",
            s.doc, s.container, s.reason
        );
    }
    if plan.is_empty() {
        out.push_str("  nothing to change\n");
    }
    out
}

fn word(action: Action) -> &'static str {
    match action {
        Action::Create => "create",
        Action::Replace => "update",
        Action::Start => "start",
        Action::Remove => "remove",
        Action::Keep => "keep",
    }
}

fn because(reasons: &[String]) -> String {
    if reasons.is_empty() {
        String::new()
    } else {
        format!(": {}", reasons.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Source, load};
    use crate::engine::swarm::ObservedNode;
    use crate::secrets::Store;

    fn full() -> DesiredState {
        let catalog = load(&Source::BuiltIn).expect("built-in catalog").catalog;
        let path = format!(
            "{}/examples/full-association.yaml",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).expect("example");
        let manifest = crate::manifest::check("full", &text, &catalog)
            .manifest
            .expect("a valid example");
        let dir = tempfile::tempdir().expect("temp dir");
        let mut store = Store::empty(dir.path());
        crate::render::render(&manifest, &catalog, &mut store).expect("renders")
    }

    fn layout(pins: &[(&str, &str)]) -> Layout {
        Layout {
            nodes: vec!["alpha".into(), "beta".into(), "gamma".into()],
            pinned: pins
                .iter()
                .map(|(s, n)| ((*s).to_string(), (*n).to_string()))
                .collect(),
        }
    }

    fn nodes(labels: &[(&str, &str)]) -> SwarmObserved {
        SwarmObserved {
            nodes: ["alpha", "beta", "gamma"]
                .iter()
                .map(|n| {
                    let mine = labels
                        .iter()
                        .filter(|(node, _)| node == n)
                        .map(|(_, k)| ((*k).to_string(), PINNED.to_string()))
                        .collect();
                    ObservedNode::ready(n, mine)
                })
                .collect(),
            ..SwarmObserved::default()
        }
    }

    #[test]
    fn services_that_keep_data_are_pinned_and_those_sharing_a_volume_together() {
        let desired = full();
        let placed = placement(&desired, &layout(&[]), &nodes(&[])).expect("placed");
        // Mail reads the proxy's certificates from the proxy's volume.
        assert_eq!(placed["mail"], placed["proxy"]);
        for service in ["mail", "cloud", "board"] {
            assert!(
                placed[service].is_some(),
                "{service} keeps data: {placed:?}"
            );
        }
        // Spread: the three groups (mail+proxy, cloud, board) on three nodes.
        let used: BTreeSet<_> = placed.values().flatten().collect();
        assert_eq!(used.len(), 3, "{placed:?}");
    }

    #[test]
    fn a_pin_of_the_manifest_wins_and_a_pin_an_earlier_deploy_chose_is_kept() {
        let desired = full();
        let slug = desired.association.clone();
        let observed = nodes(&[("gamma", &pin_label(&slug, "board"))]);
        let placed =
            placement(&desired, &layout(&[("cloud", "alpha")]), &observed).expect("placed");
        assert_eq!(placed["cloud"].as_deref(), Some("alpha"));
        assert_eq!(placed["board"].as_deref(), Some("gamma"));
        assert_eq!(
            placed["mail"].as_deref(),
            Some("beta"),
            "the node with no pin yet"
        );
    }

    #[test]
    fn pins_that_would_split_a_shared_volume_are_refused() {
        let desired = full();
        let err = placement(
            &desired,
            &layout(&[("mail", "alpha"), ("proxy", "beta")]),
            &nodes(&[]),
        )
        .expect_err("mail and proxy share a volume");
        assert!(err.contains("share a volume"), "{err}");
    }

    #[test]
    fn node_labels_admit_every_node_and_pin_each_service_once() {
        let desired = full();
        let slug = desired.association.clone();
        let observed = nodes(&[]);
        let placed =
            placement(&desired, &layout(&[("cloud", "alpha")]), &observed).expect("placed");
        let mut plan = SwarmPlan::default();
        node_labels(
            &desired,
            &layout(&[("cloud", "alpha")]),
            &placed,
            &observed,
            &mut plan,
        )
        .expect("labels");
        assert_eq!(plan.nodes.len(), 3);
        let alpha = &plan.nodes[0];
        assert_eq!(alpha.labels[&member_label(&slug)], "yes");
        assert_eq!(alpha.labels[&pin_label(&slug, "cloud")], PINNED);
        assert!(
            alpha.reasons.contains(&"pins `cloud`".to_string()),
            "{alpha:?}"
        );
        let pins: usize = plan
            .nodes
            .iter()
            .map(|n| {
                n.labels
                    .keys()
                    .filter(|k| k.starts_with(&format!("voisin.{slug}.")))
                    .count()
            })
            .sum();
        assert_eq!(pins, placed.values().flatten().count());
    }

    #[test]
    fn a_node_the_swarm_does_not_have_is_named() {
        let desired = full();
        let mut l = layout(&[]);
        l.nodes.push("delta".into());
        let observed = nodes(&[]);
        let placed = placement(&desired, &l, &observed).expect("placed");
        let err = node_labels(&desired, &l, &placed, &observed, &mut SwarmPlan::default())
            .expect_err("delta is not in the swarm");
        assert!(err.contains("`delta`"), "{err}");
    }
}
