//! Deploy on a Docker Swarm: the same desired state as on one engine, run
//! as swarm services through a manager. Images are built (or found) on the
//! manager's engine and copied into each node that may run them; rendered
//! files become configs and secrets; services are created level by level
//! along their dependencies and awaited until a copy runs healthy (the
//! swarm reports a task `running` only once its health check passes);
//! updates roll with the swarm's own machinery, which rolls back by itself
//! when the new copy does not become healthy. After-start steps then run in
//! the container of each service's running copy, on whichever node it is.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;

use super::DeployError;
use crate::engine::swarm::{self as engine_swarm, Compared, ServiceRequest};
use crate::engine::{Engine, EngineError, Target};
use crate::plan::swarm::{self as plan_swarm, Layout, SwarmObserved, SwarmPlan};
use crate::plan::{Action, ImageAction, ImageChange};
use crate::progress::Reporter;
use crate::render::state::{ContainerSpec, DesiredState};

/// The swarm: its manager, and each node's own engine (`None` for a node
/// whose engine does not answer: a machine that is down).
pub struct Swarm {
    /// A manager.
    pub manager: Arc<Engine>,
    /// Each node's engine, by host name, in the manifest's order.
    pub nodes: Vec<(String, Option<Arc<Engine>>)>,
    /// What the manifest says of placement.
    pub layout: Layout,
    /// Whether networks encrypt traffic between machines.
    pub encrypt: bool,
}

impl Swarm {
    /// The engine of a node, if it answers.
    pub fn node(&self, hostname: &str) -> Option<&Arc<Engine>> {
        self.nodes
            .iter()
            .find(|(n, _)| n == hostname)
            .and_then(|(_, e)| e.as_ref())
    }
}

/// Connects to each node's engine; a node that does not answer is noted
/// (it may be the machine that is down) and left out.
pub async fn connect(
    manager: Engine,
    swarm: &crate::manifest::Swarm,
    base: &std::path::Path,
    reporter: &Arc<dyn Reporter>,
) -> Result<Swarm, DeployError> {
    if let Err(why) = manager.swarm_manager().await? {
        return Err(EngineError::Setup {
            message: format!(
                "the engine at `{}` is not a manager of a swarm: {why}",
                manager.target()
            ),
            hint: "point `engine.host` at a manager (`docker node ls` works there), or create the swarm with `docker swarm init` (docs/swarm.md)".into(),
        }
        .into());
    }
    let mut layout = Layout::default();
    let mut pending = Vec::new();
    for (name, node) in &swarm.nodes {
        layout.nodes.push(name.clone());
        for service in &node.services {
            layout.pinned.insert(service.clone(), name.clone());
        }
        let target = Target::of_node(node, base, name)?;
        let reporter = reporter.clone();
        pending.push(async move { Engine::connect(&target, reporter).await });
    }
    let engines = join_all(pending).await;
    let mut nodes = Vec::new();
    for (name, engine) in layout.nodes.iter().zip(engines) {
        match engine {
            Ok(e) => nodes.push((name.clone(), Some(Arc::new(e)))),
            Err(e) => {
                reporter.note(&format!(
                    "the engine of the node `{name}` does not answer: {e}"
                ));
                nodes.push((name.clone(), None));
            }
        }
    }
    Ok(Swarm {
        manager: Arc::new(manager),
        nodes,
        layout,
        encrypt: swarm.encrypt,
    })
}

/// Reads everything the plan compares. Only reads.
pub async fn observe(swarm: &Swarm, desired: &DesiredState) -> Result<SwarmObserved, DeployError> {
    let m = &swarm.manager;
    let domain = &desired.domain;
    let (networks, nodes, files, record) = tokio::try_join!(
        m.networks(domain),
        m.nodes(),
        m.swarm_files(domain),
        super::record::read(m, &desired.association)
    )?;
    let names: HashMap<String, String> = networks
        .iter()
        .map(|n| (n.id.clone(), n.name.clone()))
        .collect();
    let services = m.services(domain, &names).await?;
    let ids: Vec<String> = services.iter().map(|s| s.id.clone()).collect();
    let tasks = m.tasks(&ids).await?;
    let mut images = BTreeMap::new();
    let mut names_seen: Vec<&str> = desired
        .containers
        .iter()
        .map(|c| c.image.as_str())
        .collect();
    names_seen.sort_unstable();
    names_seen.dedup();
    for image in names_seen {
        let source = m.image(image).await?.map(|i| i.id);
        let mut on_nodes = BTreeMap::new();
        for (node, engine) in &swarm.nodes {
            if let Some(engine) = engine {
                on_nodes.insert(node.clone(), engine.image(image).await?.map(|i| i.id));
            }
        }
        images.insert(image.to_string(), (source, on_nodes));
    }
    Ok(SwarmObserved {
        nodes,
        services,
        tasks,
        networks,
        files,
        images,
        steps_done: record.steps,
    })
}

/// The images the manager must build or pull before any is copied.
pub async fn builds(
    swarm: &Swarm,
    desired: &DesiredState,
) -> Result<Vec<ImageChange>, DeployError> {
    let single = super::observe_images(&swarm.manager, desired).await?;
    Ok(crate::plan::image_changes(desired, &single)
        .into_iter()
        .filter(|i| i.action != ImageAction::Keep)
        .collect())
}

/// The request for one container, placed as the plan says.
fn request<'a>(
    desired: &DesiredState,
    spec: &'a ContainerSpec,
    node: Option<&str>,
    files: &BTreeMap<String, Vec<engine_swarm::FileObject>>,
) -> ServiceRequest<'a> {
    ServiceRequest {
        spec,
        files: files.get(&spec.name).cloned().unwrap_or_default(),
        constraints: plan_swarm::constraints(&desired.association, &spec.service, node),
        order: plan_swarm::order(spec),
        // A copy reports `running` only once healthy; watching it one more
        // check's time catches a copy that fails right after.
        monitor_seconds: spec
            .health
            .as_ref()
            .map_or(2, |h| (h.interval_seconds + h.timeout_seconds).max(2)),
        labels: spec.labels.clone(),
    }
}

/// The plan: pure once observed. `builds` are the manager's own image
/// changes: an image built anew must reach every node again.
pub fn plan(
    desired: &DesiredState,
    swarm: &Swarm,
    observed: &SwarmObserved,
    builds: &[ImageChange],
) -> Result<SwarmPlan, DeployError> {
    let placed =
        plan_swarm::placement(desired, &swarm.layout, observed).map_err(DeployError::Local)?;
    let files = plan_swarm::file_objects(desired);
    let wanted: BTreeMap<String, Compared> = desired
        .containers
        .iter()
        .map(|c| {
            let node = placed.get(&c.service).cloned().flatten();
            (
                c.name.clone(),
                engine_swarm::wanted(&request(desired, c, node.as_deref(), &files)),
            )
        })
        .collect();
    let mut observed = observed.clone();
    // What the manager will build or pull is not there yet: every node
    // that needs it receives it anew.
    for b in builds {
        if let Some((source, _)) = observed.images.get_mut(&b.name) {
            *source = Some(format!("{} (to be made)", b.name));
        } else {
            observed.images.insert(
                b.name.clone(),
                (Some(format!("{} (to be made)", b.name)), BTreeMap::new()),
            );
        }
    }
    // Nodes whose engine does not answer receive nothing now.
    let answering: Vec<&str> = swarm
        .nodes
        .iter()
        .filter(|(_, e)| e.is_some())
        .map(|(n, _)| n.as_str())
        .collect();
    let (mut p, _) =
        plan_swarm::plan(desired, &swarm.layout, &observed, &wanted).map_err(DeployError::Local)?;
    p.images.retain(|i| answering.contains(&i.node.as_str()));
    Ok(p)
}

/// Carries out a plan. Errors leave the swarm in a state the next deploy
/// converges from: every object is named and compared, nothing is kept aside.
pub async fn apply(
    swarm: &Swarm,
    desired: &DesiredState,
    plan: &SwarmPlan,
    builds: &[ImageChange],
    reporter: &Arc<dyn Reporter>,
) -> Result<super::Summary, DeployError> {
    let m = &swarm.manager;
    let mut summary = super::Summary::default();
    super::make_images(m, desired, builds, reporter).await?;
    for copy in &plan.images {
        if let Some(node) = swarm.node(&copy.node) {
            let what = format!("copying {} to {}", copy.image, copy.node);
            reporter.begin(&what, &what);
            m.copy_image(&copy.image, node).await?;
            reporter.done(&what, &format!("image {} on {}", copy.image, copy.node));
        }
    }
    if !plan.nodes.is_empty() {
        let nodes = m.nodes().await?;
        for change in &plan.nodes {
            if let Some(node) = nodes.iter().find(|n| n.hostname == change.node) {
                m.set_node_labels(node, &change.labels).await?;
            }
        }
    }
    for n in &plan.networks {
        let Some(spec) = desired.networks.iter().find(|d| d.name == n.name) else {
            continue;
        };
        match n.action {
            Action::Create => {
                // Every network carries passwords or mail between machines:
                // all are encrypted, unless the manifest says otherwise.
                m.create_overlay_network(
                    &spec.name,
                    spec.subnet.as_deref(),
                    &spec.labels,
                    swarm.encrypt,
                )
                .await?;
            }
            Action::Replace => {
                return Err(DeployError::Local(format!(
                    "the network `{}` was made by a deploy on one engine; run `voisin down` with the manifest that made it, then deploy on the swarm",
                    n.name
                )));
            }
            _ => {}
        }
    }
    let files = plan_swarm::file_objects(desired);
    for change in plan.files.iter().filter(|f| f.action == Action::Create) {
        let found = desired.containers.iter().find_map(|c| {
            c.files
                .iter()
                .zip(files.get(&c.name).into_iter().flatten())
                .find(|(_, o)| o.name == change.name)
                .map(|(f, o)| (f, o, c))
        });
        if let Some((file, object, container)) = found {
            let labels = BTreeMap::from([
                (
                    crate::engine::ASSOCIATION_LABEL.to_string(),
                    desired.domain.clone(),
                ),
                ("voisin.container".to_string(), container.name.clone()),
            ]);
            m.create_swarm_file(object, file.content.expose().as_bytes(), &labels)
                .await?;
        }
    }
    // A service names its configs and secrets by id too.
    let made = m.swarm_files(&desired.domain).await?;
    let mut files = files;
    for f in files.values_mut().flatten() {
        if let Some(o) = made
            .iter()
            .find(|o| o.name == f.name && o.secret == f.secret)
        {
            f.id.clone_from(&o.id);
        }
    }
    services(swarm, desired, plan, &files, &mut summary, reporter).await?;
    for s in plan.services.iter().filter(|s| s.action == Action::Remove) {
        m.remove_service(&s.name).await?;
        summary.removed += 1;
    }
    for f in plan.files.iter().filter(|f| f.action == Action::Remove) {
        if let Some(o) = m
            .swarm_files(&desired.domain)
            .await?
            .into_iter()
            .find(|o| o.name == f.name && o.secret == f.secret)
        {
            m.remove_swarm_file(&o).await?;
        }
    }
    for n in plan.networks.iter().filter(|n| n.action == Action::Remove) {
        m.remove_network(&n.name).await?;
    }
    Box::pin(steps(swarm, desired, plan, &mut summary, reporter)).await?;
    Ok(summary)
}

/// Creates and updates services, a level of the dependency graph at a
/// time (the services of a level at once), each awaited healthy.
async fn services(
    swarm: &Swarm,
    desired: &DesiredState,
    plan: &SwarmPlan,
    files: &BTreeMap<String, Vec<engine_swarm::FileObject>>,
    summary: &mut super::Summary,
    reporter: &Arc<dyn Reporter>,
) -> Result<(), DeployError> {
    let mut level: BTreeMap<&str, usize> = BTreeMap::new();
    for c in &desired.containers {
        let l = c
            .depends_on
            .iter()
            .filter_map(|d| level.get(d.as_str()))
            .max()
            .map_or(0, |l| l + 1);
        level.insert(c.name.as_str(), l);
    }
    let deepest = level.values().copied().max().unwrap_or(0);
    for l in 0..=deepest {
        let mut work = Vec::new();
        for c in desired
            .containers
            .iter()
            .filter(|c| level[c.name.as_str()] == l)
        {
            let Some(change) = plan.service(&c.name) else {
                continue;
            };
            if !matches!(change.action, Action::Create | Action::Replace) {
                continue;
            }
            let req = request(desired, c, change.node.as_deref(), files);
            work.push(roll(swarm, desired, c, change.action, req, reporter));
        }
        for (action, result) in join_all(work).await {
            result?;
            match action {
                Action::Create => summary.created += 1,
                _ => summary.replaced += 1,
            }
        }
    }
    Ok(())
}

/// Creates or updates one service, then waits until it has settled.
async fn roll(
    swarm: &Swarm,
    desired: &DesiredState,
    c: &ContainerSpec,
    action: Action,
    request: ServiceRequest<'_>,
    reporter: &Arc<dyn Reporter>,
) -> (Action, Result<(), DeployError>) {
    let m = &swarm.manager;
    let name = &c.name;
    let result = async {
        if action == Action::Create {
            reporter.begin(name, &format!("creating {name}"));
            m.create_service(&request).await?;
        } else {
            reporter.begin(name, &format!("updating {name}"));
            let names = network_names(m, &desired.domain).await?;
            let current = m
                .services(&desired.domain, &names)
                .await?
                .into_iter()
                .find(|s| &s.name == name)
                .ok_or_else(|| DeployError::Unhealthy(format!("`{name}` disappeared")))?;
            m.update_service(&current, &request).await?;
        }
        settle(swarm, desired, c).await?;
        reporter.done(
            name,
            &format!(
                "{name} {}",
                if action == Action::Create {
                    "created"
                } else {
                    "updated"
                }
            ),
        );
        Ok(())
    }
    .await;
    if result.is_err() {
        reporter.failed(name, &format!("{name} did not settle"));
    }
    (action, result)
}

pub(crate) async fn network_names(
    m: &Engine,
    domain: &str,
) -> Result<HashMap<String, String>, EngineError> {
    Ok(m.networks(domain)
        .await?
        .into_iter()
        .map(|n| (n.id, n.name))
        .collect())
}

/// Waits until a service's update is over and one copy runs healthy; a
/// rolled-back update, or no healthy copy in time, is an error with the
/// swarm's reason.
pub(crate) async fn settle(
    swarm: &Swarm,
    desired: &DesiredState,
    c: &ContainerSpec,
) -> Result<(), DeployError> {
    let m = &swarm.manager;
    let name = &c.name;
    // Scheduling, copying configs and starting take time beyond the
    // health check's own bound; a rollback needs as long again.
    let bound = super::health::bound(c) * 2 + Duration::from_mins(1);
    let deadline = Instant::now() + bound;
    let names = network_names(m, &desired.domain).await?;
    loop {
        let service = m
            .services(&desired.domain, &names)
            .await?
            .into_iter()
            .find(|s| &s.name == name)
            .ok_or_else(|| {
                DeployError::Unhealthy(format!("`{name}` disappeared while starting"))
            })?;
        let tasks = m.tasks(std::slice::from_ref(&service.id)).await?;
        let state = service.update_state.as_deref();
        if matches!(
            state,
            Some("rollback_completed" | "rollback_paused" | "paused")
        ) {
            let why = failure(&tasks);
            return Err(DeployError::Unhealthy(format!(
                "`{name}` did not become healthy, so the swarm put the previous version back ({}){why}",
                service.update_message
            )));
        }
        // Right after an update the swarm has not yet begun it: only a
        // copy that runs the service's current spec counts.
        let live: Vec<_> = tasks.iter().filter(|t| t.desired == "running").collect();
        let settled = !matches!(state, Some("updating" | "rollback_started"))
            && !live.is_empty()
            && live
                .iter()
                .all(|t| t.state == "running" && t.spec_hash == service.template_hash);
        if settled {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(DeployError::Unhealthy(format!(
                "`{name}` has no healthy copy after {} s{}",
                bound.as_secs(),
                failure(&tasks)
            )));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// What the swarm says of the latest failed task.
fn failure(tasks: &[engine_swarm::ObservedTask]) -> String {
    tasks
        .iter()
        .filter(|t| t.error.is_some() || matches!(t.state.as_str(), "failed" | "rejected"))
        .max_by(|a, b| a.since.cmp(&b.since))
        .map(|t| {
            format!(
                "\n  last failed copy: {} ({})",
                t.error.clone().unwrap_or_else(|| t.message.clone()),
                t.state
            )
        })
        .unwrap_or_default()
}

/// Runs the after-start steps in each service's running copy, on its node.
async fn steps(
    swarm: &Swarm,
    desired: &DesiredState,
    plan: &SwarmPlan,
    summary: &mut super::Summary,
    reporter: &Arc<dyn Reporter>,
) -> Result<(), DeployError> {
    if plan.steps.is_empty() {
        return Ok(());
    }
    let observed = Box::pin(observe(swarm, desired)).await?;
    let mut done = Vec::new();
    let mut failure = None;
    for change in &plan.steps {
        let Some(step) = desired
            .after_start
            .iter()
            .find(|s| crate::plan::step_key(s) == change.key)
        else {
            continue;
        };
        let task = plan_swarm::running_container(&observed, &step.container);
        let node = task
            .and_then(|t| t.node_id.as_ref())
            .and_then(|id| observed.nodes.iter().find(|n| &n.id == id));
        let (Some(task), Some(node)) = (task, node) else {
            return Err(DeployError::Unhealthy(format!(
                "`{}` has no running copy to run `{}` in",
                step.container, step.doc
            )));
        };
        let Some(engine) = swarm.node(&node.hostname) else {
            return Err(DeployError::Local(format!(
                "`{}` runs on `{}`, whose engine does not answer: its steps wait for the next deploy",
                step.container, node.hostname
            )));
        };
        let id = task.container_id.clone().unwrap_or_default();
        match super::run_step(engine, step, &id, reporter).await? {
            super::StepOutcome::Skipped => summary.steps_skipped += 1,
            super::StepOutcome::Ran => summary.steps_run += 1,
            super::StepOutcome::Failed(e) => {
                failure.get_or_insert(e);
                continue;
            }
        }
        done.push((change.key.clone(), id));
    }
    if !done.is_empty() {
        let m = &swarm.manager;
        let mut rec = super::record::read(m, &desired.association).await?;
        rec.steps.extend(done);
        super::record::write(m, &desired.association, &desired.domain, &rec).await?;
    }
    failure.map_or(Ok(()), Err)
}
