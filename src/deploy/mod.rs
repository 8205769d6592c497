//! Apply: carry out a [`Plan`] on the engine, and undo it when it fails.
//!
//! Networks and volumes first, then images, then containers in dependency
//! order with independent branches at once, each awaited healthy by
//! voisin's own polling, then the after-start steps. Every mutating step is
//! written in a journal *before* it is asked of the engine, so that a
//! failure or Ctrl-C can put back what the run changed; a run killed
//! outright leaves only names the next plan recognises and cleans
//! (`-voisin-next`, `-voisin-old`).

pub mod health;
pub mod lock;
pub mod record;
pub mod swarm;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use futures_util::future::join_all;

use crate::catalog::Build;
use crate::engine::build::{self, OwnedDir, TOOL_IMAGE};
use crate::engine::create::{self, FilesVolume, KIND_LABEL};
use crate::engine::{ASSOCIATION_LABEL, Engine, EngineError};
use crate::plan::{Action, Cleanup, ImageAction, NEXT_SUFFIX, OLD_SUFFIX, Observed, Plan};
use crate::progress::Reporter;
use crate::render::state::{ContainerSpec, DesiredState};

/// Why a deploy failed.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The engine failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// A container did not become healthy.
    #[error("{0}")]
    Unhealthy(String),
    /// A published port is taken on the machine.
    #[error("port {port} on this machine is already taken, so `{container}` cannot start")]
    PortTaken {
        /// The container.
        container: String,
        /// The port.
        port: String,
    },
    /// An after-start step failed.
    #[error("the step `{doc}`{about} failed in `{container}` (exit code {code}){output}")]
    Step {
        /// What it is for.
        doc: String,
        /// For whom or what, like ` for member alice` (empty for a step run once).
        about: String,
        /// Where it ran.
        container: String,
        /// Its exit code.
        code: i64,
        /// The end of what it printed.
        output: String,
    },
    /// Interrupted (Ctrl-C); what the run did was undone.
    #[error("interrupted; what this run changed was put back")]
    Interrupted,
    /// Reading or building a local file failed.
    #[error("{0}")]
    Local(String),
}

impl DeployError {
    /// A step (an after-start step, a backup's `before` or `after`) whose
    /// command exited with an error: what it printed last, with the values
    /// of `env` (which may hold passwords) masked.
    pub(crate) fn step_failed(
        step: &crate::render::state::Exec,
        out: &crate::engine::ExecOutput,
        env: &[String],
    ) -> Self {
        Self::Step {
            doc: step.doc.clone(),
            about: step
                .about
                .as_ref()
                .map(|a| format!(" for {a}"))
                .unwrap_or_default(),
            container: step.container.clone(),
            code: out.code,
            output: tail(&out.stderr, &out.stdout, env),
        }
    }

    /// What to do about it.
    pub fn hint(&self) -> Option<String> {
        match self {
            Self::Engine(e) => e.hint().map(str::to_string),
            Self::PortTaken { port, .. } => Some(format!(
                "stop the program that listens on port {port} (`sudo ss -ltnp 'sport = :{port}'` names it), or choose another port in the manifest"
            )),
            Self::Unhealthy(_) => Some(
                "read the log lines above; `voisin logs SERVICE` shows more. The containers that served before still serve".into(),
            ),
            Self::Step { .. } => Some(
                "the containers are running; fix the cause and deploy again: steps that failed run again".into(),
            ),
            _ => None,
        }
    }
}

/// What a deploy did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Summary {
    /// Containers created.
    pub created: usize,
    /// Containers replaced.
    pub replaced: usize,
    /// Containers started again.
    pub started: usize,
    /// Containers removed.
    pub removed: usize,
    /// Steps run (not skipped by their guard).
    pub steps_run: usize,
    /// Steps skipped because their guard said they were done.
    pub steps_skipped: usize,
}

/// What an engine has of the images `desired` names, and the fingerprint
/// each image built from voisin would have. Only reads.
pub(crate) async fn observe_images(
    engine: &Engine,
    desired: &DesiredState,
) -> Result<Observed, DeployError> {
    let images: BTreeSet<&str> = desired
        .containers
        .iter()
        .map(|c| c.image.as_str())
        .collect();
    let looked = join_all(images.iter().map(|i| engine.image(i))).await;
    let mut observed = Observed::default();
    for (name, info) in images.iter().zip(looked) {
        observed.images.insert((*name).to_string(), info?);
    }
    for (tag, dirs) in voisin_images(desired) {
        let sha = build::exe_sha256().map_err(|e| {
            DeployError::Local(format!(
                "cannot read the voisin executable to build `{tag}`: {e}"
            ))
        })?;
        observed
            .wanted_builds
            .insert(tag, build::fingerprint(&sha, &dirs));
    }
    Ok(observed)
}

/// Reads everything the plan compares from the engine. Only reads.
pub async fn observe(engine: &Engine, desired: &DesiredState) -> Result<Observed, DeployError> {
    let domain = &desired.domain;
    // Every question at once: a deploy with nothing to do is only this.
    let (containers, networks, volumes, record, images) = tokio::join!(
        engine.containers(domain),
        engine.networks(domain),
        engine.volumes(domain),
        record::read(engine, &desired.association),
        observe_images(engine, desired)
    );
    let (containers, networks, volumes, record) = (containers?, networks?, volumes?, record?);
    let images = images?;
    Ok(Observed {
        containers,
        networks,
        volumes,
        images: images.images,
        wanted_builds: images.wanted_builds,
        steps_done: record.steps,
    })
}

/// The images built from voisin, each with the folders its containers'
/// volumes need owned by their users.
pub(crate) fn voisin_images(desired: &DesiredState) -> BTreeMap<String, Vec<OwnedDir>> {
    let mut images: BTreeMap<String, BTreeSet<OwnedDir>> = BTreeMap::new();
    for c in desired
        .containers
        .iter()
        .filter(|c| c.build == Some(Build::Voisin))
    {
        let (uid, gid) = owner(c.user.as_deref());
        let dirs = images.entry(c.image.clone()).or_default();
        for m in c.mounts.iter().filter(|m| !m.read_only) {
            dirs.insert(OwnedDir {
                path: m.path.clone(),
                uid,
                gid,
            });
        }
    }
    images
        .into_iter()
        .map(|(k, v)| (k, v.into_iter().collect()))
        .collect()
}

fn owner(user: Option<&str>) -> (u32, u32) {
    let Some(user) = user else { return (0, 0) };
    let (u, g) = user.split_once(':').unwrap_or((user, user));
    (u.parse().unwrap_or(0), g.parse().unwrap_or(0))
}

/// One thing the run changed, written before it is asked of the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Done {
    Network(String),
    Volume(String),
    FilesVolume(String),
    Created(String),
    Replaced(String),
}

/// The run's journal, shared by the containers' branches.
#[derive(Debug, Default, Clone)]
struct Journal(Arc<Mutex<Vec<Done>>>);

impl Journal {
    fn push(&self, d: Done) {
        if let Ok(mut j) = self.0.lock() {
            j.push(d);
        }
    }
    fn take(&self) -> Vec<Done> {
        self.0
            .lock()
            .map(|mut j| std::mem::take(&mut *j))
            .unwrap_or_default()
    }
}

/// Carries out `plan`. On failure or Ctrl-C, what this run changed is put
/// back before the error is returned. `services`, when given, is what each
/// service now runs, written into the record with the steps done.
pub async fn apply(
    engine: &Engine,
    desired: &DesiredState,
    plan: &Plan,
    reporter: &Arc<dyn Reporter>,
    services: Option<BTreeMap<String, record::Deployed>>,
) -> Result<Summary, DeployError> {
    let journal = Journal::default();
    let steps = Mutex::new(Steps::default());
    let run = run(engine, desired, plan, reporter, &journal, &steps);
    let outcome = tokio::select! {
        r = run => r,
        _ = tokio::signal::ctrl_c() => Err(DeployError::Interrupted),
    };
    match outcome {
        Ok(mut summary) => {
            finish(engine, plan, reporter).await?;
            // The containers are healthy and stay: a failing step is said,
            // and runs again next time, but undoes nothing.
            let steps = steps.into_inner().unwrap_or_default();
            record_steps(engine, desired, steps, services, &mut summary).await?;
            Ok(summary)
        }
        Err(e) => {
            reporter.note("putting back what this run changed");
            rollback(engine, journal.take(), reporter).await;
            Err(e)
        }
    }
}

async fn run(
    engine: &Engine,
    desired: &DesiredState,
    plan: &Plan,
    reporter: &Arc<dyn Reporter>,
    journal: &Journal,
    steps: &Mutex<Steps>,
) -> Result<Summary, DeployError> {
    let mut summary = Summary::default();
    for c in &plan.cleanup {
        match c {
            Cleanup::Remove { name } => {
                reporter.note(&format!("removing {name}, left by an interrupted run"));
                engine.remove(name).await?;
            }
            Cleanup::Restore { from, to } => {
                reporter.note(&format!(
                    "putting back {to}, left as {from} by an interrupted run"
                ));
                engine.rename(from, to).await?;
            }
        }
    }
    // Images first: one that cannot be had stops the run before anything
    // else is made.
    images(engine, desired, plan, reporter).await?;
    if plan.networks.iter().any(|n| n.action == Action::Replace) {
        return Err(DeployError::Local(
            "a network must be made again with another subnet: run `voisin down`, then `voisin deploy` (volumes are kept)".into(),
        ));
    }
    let new_networks: Vec<_> = plan
        .networks
        .iter()
        .filter(|n| n.action == Action::Create)
        .filter_map(|n| desired.networks.iter().find(|d| d.name == n.name))
        .collect();
    let new_volumes: Vec<_> = plan
        .volumes
        .iter()
        .filter(|v| v.action == Action::Create)
        .filter_map(|v| desired.volumes.iter().find(|d| d.name == v.name))
        .collect();
    let base = Made::new(
        new_networks
            .iter()
            .map(|n| (Base::Network, n.name.clone()))
            .chain(new_volumes.iter().map(|v| (Base::Volume, v.name.clone()))),
    );
    let base = &base;
    let networks = new_networks.iter().map(|spec| async {
        journal.push(Done::Network(spec.name.clone()));
        let made = engine
            .create_network(&spec.name, spec.subnet.as_deref(), &spec.labels)
            .await;
        base.mark(Base::Network, &spec.name, made.is_ok());
        made?;
        reporter.done(&spec.name, &format!("network {} created", spec.name));
        Ok::<_, DeployError>(())
    });
    let volumes = new_volumes.iter().map(|spec| async {
        // New and empty: a failed run takes it back with the rest.
        journal.push(Done::Volume(spec.name.clone()));
        let made = engine.create_volume(&spec.name, &spec.labels).await;
        base.mark(Base::Volume, &spec.name, made.is_ok());
        made?;
        reporter.done(&spec.name, &format!("volume {} created", spec.name));
        Ok::<_, DeployError>(())
    });
    // Networks and volumes are made while the containers' files are
    // written (which needs neither); each container is created once its own
    // exist, not all of them: the engine makes networks one after another.
    let made = async {
        let (networks, volumes) = tokio::join!(join_all(networks), join_all(volumes));
        networks
            .into_iter()
            .chain(volumes)
            .collect::<Result<(), DeployError>>()
    };
    let (made, containers) = tokio::join!(
        made,
        containers(
            Shared {
                engine,
                desired,
                plan,
                reporter,
                journal,
                base,
                steps,
            },
            &mut summary
        )
    );
    made?;
    containers?;
    for c in plan
        .containers
        .iter()
        .filter(|c| c.action == Action::Remove)
    {
        reporter.begin(&c.name, &format!("removing {}", c.name));
        engine.remove(&c.name).await?;
        reporter.done(&c.name, &format!("container {} removed", c.name));
        summary.removed += 1;
    }
    Ok(summary)
}

/// A network or a volume, in [`Made`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Base {
    Network,
    Volume,
}

/// The networks and volumes a run makes, each set once it is made (or
/// could not be). A container waits only for its own.
struct Made(BTreeMap<(Base, String), tokio::sync::watch::Sender<Option<bool>>>);

impl Made {
    /// The networks and volumes `made` names, none made yet.
    fn new(made: impl Iterator<Item = (Base, String)>) -> Self {
        Self(
            made.map(|key| (key, tokio::sync::watch::channel(None).0))
                .collect(),
        )
    }

    fn mark(&self, kind: Base, name: &str, made: bool) {
        if let Some(tx) = self.0.get(&(kind, name.to_string())) {
            tx.send_replace(Some(made));
        }
    }

    /// Waits until the networks and volumes `spec` uses exist; false when
    /// one of them could not be made. Those this run does not make exist.
    async fn wait(&self, spec: &ContainerSpec) -> bool {
        let wanted = spec
            .networks
            .iter()
            .map(|n| (Base::Network, n.network.clone()))
            .chain(spec.mounts.iter().map(|m| (Base::Volume, m.volume.clone())));
        for key in wanted {
            if let Some(tx) = self.0.get(&key) {
                let made = tx
                    .subscribe()
                    .wait_for(Option::is_some)
                    .await
                    .is_ok_and(|v| *v == Some(true));
                if !made {
                    return false;
                }
            }
        }
        true
    }
}

/// What every branch of a run shares.
struct Shared<'a> {
    engine: &'a Engine,
    desired: &'a DesiredState,
    plan: &'a Plan,
    reporter: &'a Arc<dyn Reporter>,
    journal: &'a Journal,
    /// The networks and volumes this run makes, as each is made.
    base: &'a Made,
    steps: &'a Mutex<Steps>,
}

/// Every container's action, each branch waiting for what it depends on,
/// independent branches at once.
async fn containers(shared: Shared<'_>, summary: &mut Summary) -> Result<(), DeployError> {
    let Shared {
        engine,
        desired,
        plan,
        reporter,
        journal,
        base,
        steps,
    } = shared;
    let states: BTreeMap<&str, tokio::sync::watch::Sender<Option<bool>>> = desired
        .containers
        .iter()
        .map(|c| (c.name.as_str(), tokio::sync::watch::channel(None).0))
        .collect();
    let branches = desired.containers.iter().map(|spec| {
        let states = &states;
        async move {
            let action = plan
                .container(&spec.name)
                .map_or(Action::Keep, |c| c.action);
            let me = states.get(spec.name.as_str());
            // Creating a container and putting its files in place needs
            // nothing else to run: every branch does it at once, and only
            // the start waits for what the container depends on.
            if let Err(e) = prepare(engine, spec, action, reporter, journal, base).await {
                if let Some(me) = me {
                    me.send_replace(Some(false));
                }
                return Err(e);
            }
            for dep in &spec.depends_on {
                if let Some(tx) = states.get(dep.as_str()) {
                    let mut rx = tx.subscribe();
                    let ok = rx
                        .wait_for(Option::is_some)
                        .await
                        .is_ok_and(|v| *v == Some(true));
                    if !ok {
                        if let Some(me) = me {
                            me.send_replace(Some(false));
                        }
                        return Ok(Action::Keep);
                    }
                }
            }
            let result = activate(engine, spec, action, reporter).await;
            if let Some(me) = me {
                me.send_replace(Some(result.is_ok()));
            }
            result?;
            // Its steps run while the containers that depend on it start.
            steps_of(engine, desired, plan, &spec.name, reporter, steps).await?;
            Ok(action)
        }
    });
    let mut first_error = None;
    for result in join_all(branches).await {
        match result {
            Ok(Action::Create) => summary.created += 1,
            Ok(Action::Replace) => summary.replaced += 1,
            Ok(Action::Start) => summary.started += 1,
            Ok(_) => {}
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Pulls and builds the images the plan names.
async fn images(
    engine: &Engine,
    desired: &DesiredState,
    plan: &Plan,
    reporter: &Arc<dyn Reporter>,
) -> Result<(), DeployError> {
    make_images(engine, desired, &plan.images, reporter).await
}

/// Pulls and builds images.
pub async fn make_images(
    engine: &Engine,
    desired: &DesiredState,
    changes: &[crate::plan::ImageChange],
    reporter: &Arc<dyn Reporter>,
) -> Result<(), DeployError> {
    let wanted = voisin_images(desired);
    for i in changes {
        match i.action {
            ImageAction::Keep => {}
            ImageAction::Pull => {
                reporter.begin(&i.name, &format!("pulling {}", i.name));
                engine.pull(&i.name).await?;
                reporter.done(&i.name, &format!("image {} pulled", i.name));
            }
            ImageAction::Build => {
                reporter.begin(&i.name, &format!("building {} from this voisin", i.name));
                let dirs = wanted.get(&i.name).cloned().unwrap_or_default();
                let sha = build::exe_sha256().map_err(|e| DeployError::Local(e.to_string()))?;
                let context = build::voisin_context(&dirs, &build::fingerprint(&sha, &dirs))
                    .map_err(|e| {
                        DeployError::Local(format!("cannot prepare the image `{}`: {e}", i.name))
                    })?;
                engine.build_image(&i.name, context).await?;
                reporter.done(&i.name, &format!("image {} built", i.name));
            }
        }
    }
    Ok(())
}

/// Makes sure the tool image exists (it holds the lock, the record and the
/// files helpers).
pub async fn ensure_tool_image(engine: &Engine) -> Result<(), DeployError> {
    if engine.image(TOOL_IMAGE).await?.is_none() {
        let context = build::tool_context().map_err(|e| DeployError::Local(e.to_string()))?;
        engine.build_image(TOOL_IMAGE, context).await?;
    }
    Ok(())
}

/// The first half of a container's action, which needs nothing else to
/// run: a new container is created with its files in place (under a
/// temporary name when it replaces one).
async fn prepare(
    engine: &Engine,
    spec: &ContainerSpec,
    action: Action,
    reporter: &Arc<dyn Reporter>,
    journal: &Journal,
    base: &Made,
) -> Result<(), DeployError> {
    let name = &spec.name;
    let target = match action {
        Action::Keep | Action::Remove | Action::Start => return Ok(()),
        Action::Create => {
            reporter.begin(name, &format!("creating {name}"));
            journal.push(Done::Created(name.clone()));
            name.clone()
        }
        Action::Replace => {
            reporter.begin(name, &format!("replacing {name}"));
            journal.push(Done::Replaced(name.clone()));
            format!("{name}{NEXT_SUFFIX}")
        }
    };
    let volumes = create::files_volumes(spec);
    if !volumes.is_empty() {
        ensure_tool_image(engine).await?;
        fill_files_volumes(engine, spec, &volumes, journal).await?;
    }
    // The container joins networks and mounts volumes: wait for them.
    if !base.wait(spec).await {
        return Err(DeployError::Local(format!(
            "`{name}` was not created: its networks or volumes could not be"
        )));
    }
    make(engine, spec, &target).await
}

/// The second half, once what the container depends on is healthy: start
/// it and wait for its health; for a replacement, swap it with the old one.
async fn activate(
    engine: &Engine,
    spec: &ContainerSpec,
    action: Action,
    reporter: &Arc<dyn Reporter>,
) -> Result<(), DeployError> {
    let name = &spec.name;
    match action {
        Action::Keep | Action::Remove => Ok(()),
        Action::Start => {
            reporter.begin(name, &format!("starting {name}"));
            start(engine, spec, name).await?;
            health::wait(engine, spec, name).await?;
            reporter.done(name, &format!("{name} started"));
            Ok(())
        }
        Action::Create => {
            start(engine, spec, name).await?;
            health::wait(engine, spec, name).await?;
            reporter.done(name, &format!("{name} created"));
            Ok(())
        }
        Action::Replace => {
            let old = format!("{name}{OLD_SUFFIX}");
            let next = format!("{name}{NEXT_SUFFIX}");
            if can_overlap(spec) {
                // The new one starts beside the old, which serves until the
                // new one is healthy.
                start(engine, spec, &next).await?;
                health::wait(engine, spec, &next).await?;
                engine.stop(name, spec.stop_grace_seconds).await?;
                engine.rename(name, &old).await?;
                engine.rename(&next, name).await?;
            } else {
                // Two copies cannot run at once (a published port, data
                // written to a volume): stop first, keep the old one aside.
                engine.stop(name, spec.stop_grace_seconds).await?;
                engine.rename(name, &old).await?;
                engine.rename(&next, name).await?;
                start(engine, spec, name).await?;
                health::wait(engine, spec, name).await?;
            }
            reporter.done(name, &format!("{name} replaced"));
            Ok(())
        }
    }
}

/// Whether a new copy may run beside the old one: no published port, and
/// no volume both would write.
fn can_overlap(spec: &ContainerSpec) -> bool {
    spec.ports.is_empty() && spec.mounts.iter().all(|m| m.read_only)
}

/// Creates the container `name` from `spec` and writes its files into it
/// (its files volumes, for a read-only root, are already written).
async fn make(engine: &Engine, spec: &ContainerSpec, name: &str) -> Result<(), DeployError> {
    let (body, more) = create::container(spec);
    // A container of that name left by a failed attempt is in the way.
    engine.remove(name).await?;
    engine.create_container(name, body, &more).await?;
    if !spec.read_only && !spec.files.is_empty() {
        let tar = create::files_tar("/", spec.files.iter().map(|f| (f.path.as_str(), f)))
            .map_err(|e| DeployError::Local(e.to_string()))?;
        engine.upload(name, tar).await?;
    }
    Ok(())
}

/// Writes a container's files volumes through one helper container that
/// mounts them all. A volume is complete when it exists and no helper is
/// left over: the helper creates the volumes (labelled) as it is created,
/// and is removed only once the files are in, so a run killed in between
/// leaves the helper behind and the next run writes the volumes again.
async fn fill_files_volumes(
    engine: &Engine,
    spec: &ContainerSpec,
    volumes: &[FilesVolume],
    journal: &Journal,
) -> Result<(), DeployError> {
    let domain = spec
        .labels
        .get(ASSOCIATION_LABEL)
        .cloned()
        .unwrap_or_default();
    let helper = format!("{}-fill", spec.name);
    let (existing, leftover) =
        tokio::try_join!(engine.volumes(&domain), engine.container(&helper))?;
    let todo: Vec<&FilesVolume> = volumes
        .iter()
        .filter(|v| leftover.is_some() || !existing.iter().any(|e| e.name == v.name))
        .collect();
    if todo.is_empty() {
        return Ok(());
    }
    for v in &todo {
        if !existing.iter().any(|e| e.name == v.name) {
            journal.push(Done::FilesVolume(v.name.clone()));
        }
    }
    let labels: std::collections::HashMap<String, String> = BTreeMap::from([
        (ASSOCIATION_LABEL.to_string(), domain),
        (KIND_LABEL.to_string(), "files".to_string()),
    ])
    .into_iter()
    .collect();
    let mut helper_labels = labels.clone();
    helper_labels.insert(KIND_LABEL.to_string(), "helper".to_string());
    let mounts = todo
        .iter()
        .enumerate()
        .map(|(i, v)| bollard::models::Mount {
            target: Some(format!("/v{i}")),
            source: Some(v.name.clone()),
            typ: Some(bollard::models::MountType::VOLUME),
            volume_options: Some(bollard::models::MountVolumeOptions {
                labels: Some(labels.clone()),
                ..Default::default()
            }),
            ..Default::default()
        })
        .collect();
    let body = bollard::models::ContainerCreateBody {
        image: Some(TOOL_IMAGE.to_string()),
        cmd: Some(vec!["/voisin-tool".into()]),
        labels: Some(helper_labels),
        network_disabled: Some(true),
        host_config: Some(bollard::models::HostConfig {
            mounts: Some(mounts),
            ..Default::default()
        }),
        ..Default::default()
    };
    engine.remove(&helper).await?;
    engine.create_container(&helper, body, &[]).await?;
    let mut entries = Vec::new();
    for (i, v) in todo.iter().enumerate() {
        for f in &v.files {
            let file = f.path.rsplit('/').next().unwrap_or(&f.path);
            entries.push((format!("v{i}/{file}"), f));
        }
    }
    let tar = create::files_tar("/", entries.iter().map(|(n, f)| (n.as_str(), *f)))
        .map_err(|e| DeployError::Local(e.to_string()))?;
    engine.upload(&helper, tar).await?;
    engine.remove(&helper).await?;
    Ok(())
}

/// Starts a container, turning a taken port into its own error.
async fn start(engine: &Engine, spec: &ContainerSpec, name: &str) -> Result<(), DeployError> {
    match engine.start(name).await {
        Ok(()) => Ok(()),
        Err(e) => {
            let message = e.engine_message().to_string();
            if message.contains("port is already allocated")
                || message.contains("address already in use")
            {
                let port = spec
                    .ports
                    .iter()
                    .map(|p| p.host.to_string())
                    .find(|p| message.contains(&format!(":{p}")))
                    .or_else(|| spec.ports.first().map(|p| p.host.to_string()))
                    .unwrap_or_default();
                return Err(DeployError::PortTaken {
                    container: spec.name.clone(),
                    port,
                });
            }
            Err(e.into())
        }
    }
}

/// What the after-start steps of a run did, gathered from every branch.
#[derive(Debug, Default)]
struct Steps {
    /// Step key → id of the container it ran (or was found done) in.
    done: Vec<(String, String)>,
    /// The first step that failed.
    failure: Option<DeployError>,
    run: usize,
    skipped: usize,
}

/// Runs, in order, the steps the plan names for one container, once it is
/// healthy. A failing step stops that container's steps; it is kept apart
/// from the deploy's own errors, because it undoes nothing.
async fn steps_of(
    engine: &Engine,
    desired: &DesiredState,
    plan: &Plan,
    container: &str,
    reporter: &Arc<dyn Reporter>,
    results: &Mutex<Steps>,
) -> Result<(), DeployError> {
    let to_run: BTreeSet<&str> = plan
        .steps
        .iter()
        .filter(|s| s.container == container)
        .map(|s| s.key.as_str())
        .collect();
    if to_run.is_empty() {
        return Ok(());
    }
    let id = engine
        .container(container)
        .await?
        .map(|c| c.id)
        .unwrap_or_default();
    for step in desired
        .after_start
        .iter()
        .filter(|s| s.container == container)
    {
        let key = crate::plan::step_key(step);
        if !to_run.contains(key.as_str()) {
            continue;
        }
        let outcome = run_step(engine, step, container, reporter).await?;
        let Ok(mut results) = results.lock() else {
            return Ok(());
        };
        match outcome {
            StepOutcome::Failed(failure) => {
                results.failure.get_or_insert(failure);
                return Ok(());
            }
            StepOutcome::Skipped => results.skipped += 1,
            StepOutcome::Ran => results.run += 1,
        }
        results.done.push((key, id.clone()));
    }
    Ok(())
}

/// How one after-start step went.
pub(crate) enum StepOutcome {
    /// Its guard said it was done.
    Skipped,
    /// It ran and succeeded.
    Ran,
    /// It ran and failed: what to report (it undoes nothing).
    Failed(DeployError),
}

/// Runs one after-start step in `container` (a name or an id): its guard,
/// then, unless the guard says it is done, its command.
pub(crate) async fn run_step(
    engine: &Engine,
    step: &crate::render::state::Exec,
    container: &str,
    reporter: &Arc<dyn Reporter>,
) -> Result<StepOutcome, DeployError> {
    let key = crate::plan::step_key(step);
    let env: Vec<String> = step
        .env
        .iter()
        .map(|(k, v)| format!("{k}={}", v.expose()))
        .collect();
    let what = format!("{} in {}", step.doc, step.container);
    reporter.begin(&key, &what);
    let done = !step.unless.is_empty()
        && engine
            .exec(container, &step.unless, step.user.as_deref(), &env, None)
            .await?
            .code
            == 0;
    if done {
        reporter.done(&key, &what);
        return Ok(StepOutcome::Skipped);
    }
    let out = engine
        .exec(container, &step.command, step.user.as_deref(), &env, None)
        .await?;
    if out.code != 0 {
        reporter.failed(&key, &what);
        return Ok(StepOutcome::Failed(DeployError::step_failed(
            step, &out, &env,
        )));
    }
    reporter.done(&key, &what);
    Ok(StepOutcome::Ran)
}

/// Records the steps done (even when a later one failed), then says the
/// first failure.
async fn record_steps(
    engine: &Engine,
    desired: &DesiredState,
    results: Steps,
    services: Option<BTreeMap<String, record::Deployed>>,
    summary: &mut Summary,
) -> Result<(), DeployError> {
    summary.steps_run = results.run;
    summary.steps_skipped = results.skipped;
    let mut rec = record::read(engine, &desired.association).await?;
    let mut changed = !results.done.is_empty();
    rec.steps.extend(results.done);
    if let Some(services) = services
        && rec.services != services
    {
        rec.services = services;
        changed = true;
    }
    // One write for both: each is a container made and swapped in, and the
    // deploy waits for it at its very end.
    if changed {
        record::write(engine, &desired.association, &desired.domain, &rec).await?;
    }
    results.failure.map_or(Ok(()), Err)
}

/// The last lines a command printed, with any value of its environment
/// (which may hold passwords) masked.
pub(crate) fn tail(stderr: &[u8], stdout: &[u8], env: &[String]) -> String {
    let text = if stderr.iter().any(|b| !b.is_ascii_whitespace()) {
        stderr
    } else {
        stdout
    };
    let mut text = String::from_utf8_lossy(text).to_string();
    for e in env {
        if let Some((_, value)) = e.split_once('=')
            && value.len() >= 4
        {
            text = text.replace(value, "[secret]");
        }
    }
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = lines.len().saturating_sub(5);
    if lines.is_empty() {
        String::new()
    } else {
        format!(":\n    {}", lines[start..].join("\n    "))
    }
}

/// After a successful run: the replaced containers kept aside and files
/// volumes no container uses are removed, and networks no longer wanted.
async fn finish(
    engine: &Engine,
    plan: &Plan,
    reporter: &Arc<dyn Reporter>,
) -> Result<(), DeployError> {
    for c in plan
        .containers
        .iter()
        .filter(|c| c.action == Action::Replace)
    {
        engine.remove(&format!("{}{OLD_SUFFIX}", c.name)).await?;
    }
    for n in plan.networks.iter().filter(|n| n.action == Action::Remove) {
        engine.remove_network(&n.name).await?;
        reporter.done(&n.name, &format!("network {} removed", n.name));
    }
    // An image rebuilt from a newer voisin leaves the old one unnamed.
    for i in &plan.images {
        if let Some(old) = &i.previous_id {
            engine.remove_image(old).await?;
        }
    }
    // Replaced containers released their old files volumes just now.
    for v in &plan.stale_files_volumes {
        if let Err(e) = engine.remove_volume(v).await {
            // Still in use by a container someone made by hand: harmless.
            if !e.is_conflict() {
                return Err(e.into());
            }
        }
    }
    Ok(())
}

/// Puts back what a failed run changed, newest first. Best effort: each
/// step is tried even when an earlier one failed, and what cannot be put
/// back is said.
async fn rollback(engine: &Engine, done: Vec<Done>, reporter: &Arc<dyn Reporter>) {
    // Containers first (newest first), then what they used.
    let (containers, others): (Vec<Done>, Vec<Done>) = done
        .into_iter()
        .rev()
        .partition(|d| matches!(d, Done::Created(_) | Done::Replaced(_)));
    for d in containers.into_iter().chain(others) {
        let result: Result<(), EngineError> = async {
            match &d {
                Done::Created(name) => engine.remove(name).await,
                Done::Replaced(name) => {
                    let old = format!("{name}{OLD_SUFFIX}");
                    engine.remove(&format!("{name}{NEXT_SUFFIX}")).await?;
                    if engine.container(&old).await?.is_some() {
                        engine.remove(name).await?;
                        engine.rename(&old, name).await?;
                    }
                    match engine.container(name).await? {
                        Some(c) if !c.state.running => engine.start(name).await,
                        _ => Ok(()),
                    }
                }
                Done::FilesVolume(name) | Done::Volume(name) => {
                    match engine.remove_volume(name).await {
                        Err(e) if e.is_conflict() => Ok(()),
                        other => other,
                    }
                }
                Done::Network(name) => engine.remove_network(name).await,
            }
        }
        .await;
        if let Err(e) = result {
            reporter.note(&format!("could not put back {d:?}: {e}"));
        }
    }
}
