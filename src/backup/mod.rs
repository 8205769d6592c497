//! Backups: each service's catalog steps in order (`before`, `dumps`,
//! volumes, `after`), one snapshot per service per run in a restic-format
//! repository; restores that put volumes and dumps back and bring the
//! service up behind its health check; verification by test restores.
//!
//! The engine work is async and goes through [`crate::engine`]; rustic is
//! synchronous and runs on blocking threads. Volume contents are read and
//! written by `voisin agent` in a helper container ([`agent`]), whose
//! container doubles as a marker: while a backup's helper exists, that
//! service's `after` steps are owed, and the next run that takes the lock
//! runs them ([`recover`]).

pub mod agent;
pub mod keep;
pub mod repo;
pub mod source;
pub mod swarm;
pub mod tree;

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use rustic_core::repofile::{SnapshotFile, StringList};
use rustic_core::{BackupOptions, ParentOptions, SnapshotOptions};
use tokio::io::AsyncWriteExt as _;

use crate::deploy::DeployError;
use crate::engine::create::KIND_LABEL;
use crate::engine::{ASSOCIATION_LABEL, Engine, EngineError, ExecChunk, build};
use crate::progress::Reporter;
use crate::render::DesiredState;
use crate::render::state::{ContainerSpec, DumpSpec, Exec, ServiceBackup};
use repo::{INCOMPLETE_TAG, Repo, RepoError, Snapshot, TAG};
use source::{ChannelReader, Problems, ServiceSource, Volumes};

/// What can stop a backup, a restore or a verification.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The repository.
    #[error(transparent)]
    Repo(#[from] RepoError),
    /// A step, a health check, the engine.
    #[error(transparent)]
    Deploy(#[from] DeployError),
    /// The engine.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The backup of a service failed; nothing of it was kept.
    #[error("the backup of `{service}` failed; no snapshot was kept:\n    {problems}")]
    Failed {
        /// The service.
        service: String,
        /// What went wrong.
        problems: String,
    },
    /// A restore step failed.
    #[error("restoring `{service}` failed: {message}")]
    Restore {
        /// The service.
        service: String,
        /// What went wrong.
        message: String,
    },
    /// No such service is backed up.
    #[error("no service `{name}` is backed up here")]
    UnknownService {
        /// What was asked for.
        name: String,
        /// What exists.
        known: Vec<String>,
    },
    /// The service has not been deployed on this engine.
    #[error("`{service}` is not deployed here: its volume `{volume}` does not exist")]
    NotDeployed {
        /// The service.
        service: String,
        /// The missing volume.
        volume: String,
    },
    /// No such snapshot.
    #[error("no snapshot `{0}` of this association in the repository")]
    NoSnapshot(String),
    /// Interrupted.
    #[error("interrupted")]
    Interrupted,
    /// A local failure (a thread, a file).
    #[error("{0}")]
    Local(String),
}

impl BackupError {
    /// What to do about it.
    pub fn hint(&self) -> Option<String> {
        match self {
            Self::Repo(e) => e.hint(),
            Self::Deploy(e) => e.hint(),
            Self::Engine(e) => e.hint().map(str::to_string),
            Self::Failed { .. } => Some(
                "the earlier snapshots are untouched; fix the cause and run `voisin backup` again".into(),
            ),
            Self::UnknownService { known, .. } => Some(format!(
                "the services with backups are: {}",
                known.join(", ")
            )),
            Self::NoSnapshot(_) => Some("`voisin backup list` shows the snapshots".into()),
            Self::NotDeployed { .. } => Some(
                "run `voisin deploy` first (on a new machine: deploy, then restore)".into(),
            ),
            Self::Restore { .. } => Some(
                "the safety snapshot taken before holds the data as it was: `voisin backup list` shows it"
                    .into(),
            ),
            _ => None,
        }
    }
}

fn local(e: impl std::fmt::Display) -> BackupError {
    BackupError::Local(e.to_string())
}

/// Where a service's containers are found: on one engine, or on a swarm
/// each on the node that runs its task. Helpers run on `home`, the engine
/// that holds the service's volumes.
#[derive(Clone)]
pub struct Places {
    /// The engine that holds the volumes.
    pub home: Arc<Engine>,
    /// Containers found elsewhere than under their own name on `home`: the
    /// engine that runs each, and its id there.
    away: HashMap<String, (Arc<Engine>, String)>,
}

impl Places {
    /// Everything on one engine, each container under its own name.
    pub fn one(engine: &Arc<Engine>) -> Self {
        Self {
            home: engine.clone(),
            away: HashMap::new(),
        }
    }

    /// `home`, with `container` found on `engine` as `id`.
    #[must_use]
    pub fn with(mut self, container: &str, engine: &Arc<Engine>, id: &str) -> Self {
        self.away
            .insert(container.to_string(), (engine.clone(), id.to_string()));
        self
    }

    /// The engine that runs `container`, and the name or id it has there.
    pub fn of<'a>(&'a self, container: &'a str) -> (&'a Arc<Engine>, &'a str) {
        self.away
            .get(container)
            .map_or((&self.home, container), |(e, id)| (e, id.as_str()))
    }
}

/// Which helper container, for which service and purpose.
pub fn helper_name(association: &str, purpose: &str, service: &str) -> String {
    format!("{association}-voisin-{purpose}-{service}")
}

/// The helper image: the running voisin executable, nothing else. Built
/// once per executable.
pub async fn ensure_agent_image(engine: &Engine) -> Result<String, BackupError> {
    let sha = build::exe_sha256().map_err(local)?;
    let fingerprint = build::fingerprint(&sha, &[]);
    let tag = format!("voisin-agent:{}", &fingerprint[..12]);
    if engine.image(&tag).await?.is_none() {
        let context = build::voisin_context(&[], &fingerprint).map_err(local)?;
        engine.build_image(&tag, context).await?;
        // The images of earlier executables are of no more use.
        for old in engine.images_named("voisin-agent").await? {
            if old != tag {
                engine.remove_image(&old).await?;
            }
        }
    }
    Ok(tag)
}

/// Picks the services asked for (all when none is).
pub fn chosen<'a>(
    desired: &'a DesiredState,
    names: &[String],
) -> Result<Vec<&'a ServiceBackup>, BackupError> {
    if names.is_empty() {
        return Ok(desired.backups.iter().collect());
    }
    names
        .iter()
        .map(|n| {
            desired
                .backups
                .iter()
                .find(|b| &b.service == n)
                .ok_or_else(|| BackupError::UnknownService {
                    name: n.clone(),
                    known: desired.backups.iter().map(|b| b.service.clone()).collect(),
                })
        })
        .collect()
}

/// Runs steps in order; the first that fails stops them.
pub async fn run_steps(
    places: &Places,
    steps: &[Exec],
    reporter: &Arc<dyn Reporter>,
) -> Result<(), DeployError> {
    for step in steps {
        let (engine, container) = places.of(&step.container);
        let env: Vec<String> = step
            .env
            .iter()
            .map(|(k, v)| format!("{k}={}", v.expose()))
            .collect();
        let what = format!("{} in {}", step.doc, step.container);
        reporter.begin(&what, &what);
        if !step.unless.is_empty()
            && engine
                .exec(container, &step.unless, step.user.as_deref(), &env, None)
                .await?
                .code
                == 0
        {
            reporter.done(&what, &what);
            continue;
        }
        let out = engine
            .exec(container, &step.command, step.user.as_deref(), &env, None)
            .await?;
        if out.code != 0 {
            reporter.failed(&what, &what);
            return Err(DeployError::step_failed(step, &out, &env));
        }
        reporter.done(&what, &what);
    }
    Ok(())
}

/// The labels of a helper container.
fn helper_labels(desired: &DesiredState, purpose: &str, service: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (ASSOCIATION_LABEL.to_string(), desired.domain.clone()),
        (KIND_LABEL.to_string(), purpose.to_string()),
        ("voisin.service".to_string(), service.to_string()),
    ])
}

/// Creates and starts a helper with the service's volumes mounted under
/// `/v/NAME`.
async fn start_helper(
    engine: &Engine,
    image: &str,
    name: &str,
    mounts: &[(String, String, bool)],
    labels: &BTreeMap<String, String>,
) -> Result<(), BackupError> {
    engine.remove(name).await?;
    let command: Vec<String> = ["voisin", "agent", "idle"].map(String::from).to_vec();
    let body = crate::engine::create::helper(image, &command, mounts, labels);
    engine.create_container(name, body, &[]).await?;
    engine.start(name).await?;
    Ok(())
}

/// What the leftovers of interrupted runs owe: a backup's `after` steps
/// (maintenance mode off), a restore's service started again. Run under
/// the lock by every command that takes it; `interrupted` names what the
/// run that died (or was stopped with Ctrl-C) was doing, when known.
pub async fn recover(
    engine: &Arc<Engine>,
    desired: &DesiredState,
    reporter: &Arc<dyn Reporter>,
    interrupted: Option<&str>,
) -> Result<(), BackupError> {
    if let Some(command) = interrupted {
        await_in_flight(engine, desired, command).await?;
    }
    recover_with(&Places::one(engine), engine, desired, reporter).await
}

/// [`recover`] of the helpers on `engine`, with the service's containers
/// found through `places` (on a swarm, each on its own node).
pub async fn recover_with(
    places: &Places,
    engine: &Engine,
    desired: &DesiredState,
    reporter: &Arc<dyn Reporter>,
) -> Result<(), BackupError> {
    let containers = engine.containers(&desired.domain).await?;
    for c in containers {
        let Some(kind) = c.labels.get(KIND_LABEL) else {
            continue;
        };
        let service = c.labels.get("voisin.service").cloned().unwrap_or_default();
        let Some(b) = desired.backups.iter().find(|b| b.service == service) else {
            if matches!(kind.as_str(), "backup" | "restore" | "verify") {
                engine.remove(&c.name).await?;
            }
            continue;
        };
        match kind.as_str() {
            "probe" => engine.remove(&c.name).await?,
            "backup" => {
                reporter.note(&format!(
                    "an interrupted backup of `{service}` left its `after` steps undone: running them"
                ));
                run_steps(places, &b.after, reporter).await?;
                engine.remove(&c.name).await?;
            }
            "restore" => {
                reporter.note(&format!(
                    "a restore of `{service}` was interrupted: its data may be partly restored; starting it again (run `voisin restore` to finish)"
                ));
                engine.remove(&c.name).await?;
                for spec in desired.containers.iter().filter(|s| s.service == service) {
                    // Started already (304), or not a container of this
                    // engine (a swarm's task, started by scaling: 404).
                    engine.start(&spec.name).await.or_else(|e| {
                        if e.status() == Some(304) || e.is_not_found() {
                            Ok(())
                        } else {
                            Err(e)
                        }
                    })?;
                }
            }
            "verify" => {
                engine.remove(&c.name).await?;
                for v in engine.volumes(&desired.domain).await? {
                    if v.labels.get(KIND_LABEL).is_some_and(|k| k == "verify") {
                        engine.remove_volume(&v.name).await?;
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// The engine finishes a request whose sender died: a helper that a
/// killed run asked for can appear after the next command has looked.
/// Its name is reserved from the start of the request, though, so trying
/// to create a container of that name tells: a conflict means one exists
/// or is on its way, and it is waited for, so that the look that follows
/// sees it. Only after a run that died, for the helpers its command makes.
async fn await_in_flight(
    engine: &Engine,
    desired: &DesiredState,
    command: &str,
) -> Result<(), BackupError> {
    let purposes: &[&str] = if command.contains("verify") {
        &["verify"]
    } else if command.contains("restore") || command.contains("upgrade") {
        &["backup", "restore"]
    } else if command.contains("backup") {
        &["backup"]
    } else {
        &[]
    };
    let mut labels = BTreeMap::from([
        (ASSOCIATION_LABEL.to_string(), desired.domain.clone()),
        (KIND_LABEL.to_string(), "probe".to_string()),
    ]);
    for purpose in purposes {
        for service in &desired.backups {
            let name = helper_name(&desired.association, purpose, &service.service);
            labels.insert("voisin.service".into(), service.service.clone());
            let body = crate::engine::create::marker(&labels);
            match engine.create_container(&name, body, &[]).await {
                Ok(_) => engine.remove(&name).await?,
                Err(e) if e.is_conflict() => {
                    // Bounded: a create takes well under a second; past
                    // the bound the look below finds it or it is gone.
                    for _ in 0..100 {
                        if engine.container(&name).await?.is_some() {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

/// Whether interrupted backups or restores left helpers, or a run died
/// holding the lock (and so something may be owed that [`recover`] does).
pub async fn leftovers(engine: &Engine, desired: &DesiredState) -> Result<bool, EngineError> {
    Ok(engine.containers(&desired.domain).await?.iter().any(|c| {
        c.labels.get(KIND_LABEL).is_some_and(|k| match k.as_str() {
            "backup" | "restore" | "verify" | "probe" => true,
            "lock" => crate::deploy::lock::is_stale(&c.labels),
            _ => false,
        })
    }))
}

/// Refuses a service whose volumes the engine does not have: mounting
/// them would make empty, unlabelled ones.
pub(crate) async fn volumes_exist(
    engine: &Engine,
    desired: &DesiredState,
    service: &ServiceBackup,
) -> Result<(), BackupError> {
    if service.volumes.is_empty() {
        return Ok(());
    }
    let present: Vec<String> = engine
        .volumes(&desired.domain)
        .await?
        .into_iter()
        .map(|v| v.name)
        .collect();
    for (_, volume) in &service.volumes {
        if !present.contains(volume) {
            return Err(BackupError::NotDeployed {
                service: service.service.clone(),
                volume: volume.clone(),
            });
        }
    }
    Ok(())
}

/// How a service's backup went.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Taken {
    /// The snapshot.
    pub snapshot: Snapshot,
    /// How long it took.
    pub seconds: f64,
}

/// Backs one service up: `before`, dumps and volumes into one snapshot,
/// `after` whatever happened. Nothing of a failed backup is kept.
pub async fn backup_service(
    places: &Places,
    desired: &DesiredState,
    service: &ServiceBackup,
    repo: &Arc<Repo>,
    reason: &str,
    reporter: &Arc<dyn Reporter>,
) -> Result<Taken, BackupError> {
    let started = Instant::now();
    let engine = &places.home;
    volumes_exist(engine, desired, service).await?;
    let helper = helper_name(&desired.association, "backup", &service.service);
    // The helper reads the volumes, and marks that `after` is owed: a
    // service with neither (the board: one dump) needs none.
    let needs_helper =
        !service.volumes.is_empty() || !service.before.is_empty() || !service.after.is_empty();
    if needs_helper {
        let image = ensure_agent_image(engine).await?;
        let mounts: Vec<(String, String, bool)> = service
            .volumes
            .iter()
            .map(|(name, volume)| (volume.clone(), format!("/v/{name}"), true))
            .collect();
        // The marker comes first: from here on, `after` is owed.
        start_helper(
            engine,
            &image,
            &helper,
            &mounts,
            &helper_labels(desired, "backup", &service.service),
        )
        .await?;
    }
    let taken = async {
        run_steps(places, &service.before, reporter).await?;
        take(places, desired, service, repo, reason, &helper, reporter).await
    }
    .await;
    let after = run_steps(places, &service.after, reporter).await;
    if after.is_ok() && needs_helper {
        engine.remove(&helper).await?;
    }
    let snapshot = taken?;
    after?;
    Ok(Taken {
        snapshot,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Streams an exec's standard output into a channel; a non-zero exit or a
/// broken stream is a problem and ends the channel with an error, so that
/// the reader never sees a clean end of a failed dump.
async fn pump(
    engine: Arc<Engine>,
    stream: crate::engine::ExecStream,
    tx: tokio::sync::mpsc::Sender<io::Result<bytes::Bytes>>,
    problems: Problems,
    what: String,
) {
    let crate::engine::ExecStream {
        id,
        input,
        mut output,
    } = stream;
    drop(input);
    let mut stderr = Vec::new();
    let mut broken = None;
    while let Some(item) = output.next().await {
        match item {
            Ok(ExecChunk::Stdout(bytes)) => {
                if tx.send(Ok(bytes)).await.is_err() {
                    broken = Some("its reader stopped".to_string());
                    break;
                }
            }
            Ok(ExecChunk::Stderr(bytes)) => {
                if stderr.len() < 64 * 1024 {
                    stderr.extend_from_slice(&bytes);
                }
            }
            Err(e) => {
                broken = Some(e.to_string());
                break;
            }
        }
    }
    let code = exit_code(&engine, &id).await;
    let failure = match (broken, code) {
        (Some(why), _) => Some(why),
        (None, Ok(0)) => None,
        (None, Ok(code)) => Some(format!(
            "exit code {code}{}",
            crate::deploy::tail(&stderr, &[], &[])
        )),
        (None, Err(e)) => Some(e.to_string()),
    };
    if let Some(why) = failure {
        let message = format!("{what} failed: {why}");
        problems.push(message.clone());
        let _ = tx.send(Err(io::Error::other(message))).await;
    }
}

/// An exec's exit code, once the engine has it.
async fn exit_code(engine: &Engine, id: &str) -> Result<i64, EngineError> {
    for _ in 0..100 {
        if let Some(code) = engine.exec_code(id).await? {
            return Ok(code);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(-1)
}

/// Channels to the agent serving a service's volumes: its stream of
/// frames, and where to ask for files.
type Served = (
    tokio::sync::mpsc::Receiver<io::Result<bytes::Bytes>>,
    tokio::sync::mpsc::UnboundedSender<usize>,
);

/// Starts `voisin agent serve` in the helper: requests go to its input,
/// its output is pumped into a channel.
async fn serve_volumes(
    engine: &Arc<Engine>,
    helper: &str,
    problems: &Problems,
    pumps: &mut Vec<tokio::task::JoinHandle<()>>,
) -> Result<Served, BackupError> {
    let command: Vec<String> = ["voisin", "agent", "serve", "/v"]
        .map(String::from)
        .to_vec();
    let stream = engine.exec_stream(helper, &command, None, true).await?;
    let crate::engine::ExecStream {
        id,
        mut input,
        output,
    } = stream;
    let (req_tx, mut req_rx) = tokio::sync::mpsc::unbounded_channel::<usize>();
    tokio::spawn(async move {
        while let Some(i) = req_rx.recv().await {
            if input.write_all(format!("{i}\n").as_bytes()).await.is_err() {
                break;
            }
            let _ = input.flush().await;
        }
        let _ = input.shutdown().await;
    });
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let stream = crate::engine::ExecStream {
        id,
        input: Box::pin(tokio::io::sink()),
        output,
    };
    pumps.push(tokio::spawn(pump(
        engine.clone(),
        stream,
        tx,
        problems.clone(),
        "reading the volumes".into(),
    )));
    Ok((rx, req_tx))
}

/// Starts each of the service's dumps in its container, its output pumped
/// into a reader for the snapshot.
async fn start_dumps(
    places: &Places,
    service: &ServiceBackup,
    problems: &Problems,
    pumps: &mut Vec<tokio::task::JoinHandle<()>>,
    reporter: &Arc<dyn Reporter>,
) -> Result<Vec<(String, ChannelReader)>, BackupError> {
    let mut dumps = Vec::new();
    for d in &service.dumps {
        reporter.note(&format!("dumping {} from {}", d.file, d.container));
        let (engine, container) = places.of(&d.container);
        let user = d.user.as_deref();
        let stream = engine
            .exec_stream(container, &d.command, user, false)
            .await?;
        let (tx, rx) = tokio::sync::mpsc::channel(32);
        let what = format!("the dump `{}` in `{}`", d.file, d.container);
        pumps.push(tokio::spawn(pump(
            engine.clone(),
            stream,
            tx,
            problems.clone(),
            what,
        )));
        dumps.push((d.file.clone(), ChannelReader::new(rx)));
    }
    Ok(dumps)
}

async fn take(
    places: &Places,
    desired: &DesiredState,
    service: &ServiceBackup,
    repo: &Arc<Repo>,
    reason: &str,
    helper: &str,
    reporter: &Arc<dyn Reporter>,
) -> Result<Snapshot, BackupError> {
    let problems = Problems::default();
    let mut pumps = Vec::new();
    let dumps = start_dumps(places, service, &problems, &mut pumps, reporter).await?;
    let volumes = if service.volumes.is_empty() {
        None
    } else {
        Some(serve_volumes(&places.home, helper, &problems, &mut pumps).await?)
    };

    let parent = snapshots_of(repo, &desired.domain)
        .await?
        .into_iter()
        .rev()
        .find(|s| repo::tag_value(s, "service").as_deref() == Some(&service.service))
        .map(|s| s.id.to_hex().to_string());
    let tags = vec![
        TAG.to_string(),
        INCOMPLETE_TAG.to_string(),
        format!("association={}", desired.domain),
        format!("service={}", service.service),
        format!("entry={}", service.entry),
        format!("reason={reason}"),
    ];
    let domain = desired.domain.clone();
    let service_name = service.service.clone();
    let archive_repo = repo.clone();
    let archive_problems = problems.clone();
    reporter.begin(&service_name, &format!("backing up {service_name}"));
    let archived = tokio::task::spawn_blocking(move || -> Result<SnapshotFile, String> {
        let listed = match volumes {
            Some((rx, req_tx)) => Some(
                Volumes::list(ChannelReader::new(rx), req_tx, archive_problems)
                    .map_err(|e| format!("listing the volumes: {e}"))?,
            ),
            None => None,
        };
        let src = ServiceSource::new(dumps, listed);
        let mut snap_opts = SnapshotOptions::default().host(domain);
        for t in &tags {
            snap_opts = snap_opts.add_tags(t).map_err(|e| e.to_string())?;
        }
        let snap = SnapshotFile::from_options(&snap_opts).map_err(|e| e.to_string())?;
        let parent_opts = match parent {
            Some(id) => ParentOptions::default().parents(vec![id]),
            None => ParentOptions::default().force(true),
        };
        let opts = BackupOptions::default().parent_opts(parent_opts);
        archive_repo
            .archive(&opts, &src, snap, &[PathBuf::from("/")])
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(local)?;
    for p in pumps {
        let _ = p.await;
    }
    let snap = match archived {
        Ok(snap) => snap,
        Err(e) => {
            problems.push(e);
            reporter.failed(&service_name, &format!("backing up {service_name}"));
            return Err(BackupError::Failed {
                service: service_name,
                problems: problems.list().join("\n    "),
            });
        }
    };
    let kept = keep_or_drop(repo, snap, problems.list()).await?;
    let Some(_) = kept else {
        reporter.failed(&service_name, &format!("backing up {service_name}"));
        return Err(BackupError::Failed {
            service: service_name,
            problems: problems.list().join("\n    "),
        });
    };
    // The kept snapshot has a new id (the id is its content's hash).
    let saved = snapshots_of(repo, &desired.domain)
        .await?
        .into_iter()
        .rev()
        .find(|s| repo::tag_value(s, "service").as_deref() == Some(&service_name))
        .ok_or_else(|| local("the snapshot just saved is not in the repository"))?;
    reporter.done(&service_name, &format!("backed up {service_name}"));
    Ok(Snapshot::from_file(&saved))
}

/// Keeps a snapshot written without a problem (saved again without the
/// incomplete tag, then the incomplete one removed); drops any other.
async fn keep_or_drop(
    repo: &Arc<Repo>,
    snap: SnapshotFile,
    found: Vec<String>,
) -> Result<Option<SnapshotFile>, BackupError> {
    let finish_repo = repo.clone();
    tokio::task::spawn_blocking(move || -> Result<Option<SnapshotFile>, String> {
        let incomplete = snap.id;
        if !found.is_empty() {
            finish_repo
                .delete_snapshots(&[incomplete])
                .map_err(|e| e.to_string())?;
            return Ok(None);
        }
        let mut complete = snap.clone();
        complete.tags.remove_all(&[INCOMPLETE_TAG
            .parse::<StringList>()
            .map_err(|e| e.to_string())?]);
        finish_repo
            .save_snapshots(vec![complete])
            .map_err(|e| e.to_string())?;
        finish_repo
            .delete_snapshots(&[incomplete])
            .map_err(|e| e.to_string())?;
        Ok(Some(snap))
    })
    .await
    .map_err(local)?
    .map_err(local)
}

/// The association's complete snapshots, oldest first, read on a blocking
/// thread: the sftp backend runs a runtime of its own, which cannot start
/// inside this one.
pub async fn snapshots_of(
    repo: &Arc<Repo>,
    association: &str,
) -> Result<Vec<SnapshotFile>, BackupError> {
    let repo = repo.clone();
    let association = association.to_string();
    tokio::task::spawn_blocking(move || repo::snapshots(repo.as_ref(), &association))
        .await
        .map_err(local)?
        .map_err(BackupError::from)
}

/// [`forget_incomplete`] on a blocking thread.
pub async fn forget_incomplete_of(
    repo: &Arc<Repo>,
    association: &str,
) -> Result<usize, BackupError> {
    let repo = repo.clone();
    let association = association.to_string();
    tokio::task::spawn_blocking(move || forget_incomplete(&repo, &association))
        .await
        .map_err(local)?
}

/// Removes what interrupted backups left half-written (never listed, never
/// restored; `prune` then frees their data).
pub fn forget_incomplete(repo: &Repo, association: &str) -> Result<usize, BackupError> {
    let all = repo.get_all_snapshots().map_err(local)?;
    let ids: Vec<_> = all
        .iter()
        .filter(|s| {
            s.tags.contains(INCOMPLETE_TAG)
                && repo::tag_value(s, "association").as_deref() == Some(association)
        })
        .map(|s| s.id)
        .collect();
    if !ids.is_empty() {
        repo.delete_snapshots(&ids).map_err(local)?;
    }
    Ok(ids.len())
}

/// A writer whose bytes an async task sends on (to an exec's input).
pub struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<io::Result<bytes::Bytes>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    const SIZE: usize = 256 * 1024;

    /// Writes into `tx`.
    pub fn new(tx: tokio::sync::mpsc::Sender<io::Result<bytes::Bytes>>) -> Self {
        Self {
            tx,
            buf: Vec::with_capacity(Self::SIZE),
        }
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= Self::SIZE {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = bytes::Bytes::from(std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(Self::SIZE),
        ));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the command stopped reading"))
    }
}

/// Feeds what `produce` writes into a command's input in a container, and
/// waits for the command to end. Gives what `produce` returned.
async fn feed<T: Send + 'static>(
    engine: &Arc<Engine>,
    container: &str,
    command: &[String],
    user: Option<&str>,
    produce: impl FnOnce(&mut ChannelWriter) -> io::Result<T> + Send + 'static,
) -> Result<T, String> {
    let stream = engine
        .exec_stream(container, command, user, true)
        .await
        .map_err(|e| e.to_string())?;
    let crate::engine::ExecStream {
        id,
        mut input,
        mut output,
    } = stream;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<io::Result<bytes::Bytes>>(16);
    let writer = tokio::spawn(async move {
        while let Some(Ok(chunk)) = rx.recv().await {
            if input.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = input.shutdown().await;
    });
    let reader = tokio::spawn(async move {
        let mut printed = Vec::new();
        while let Some(item) = output.next().await {
            match item {
                Ok(ExecChunk::Stdout(b) | ExecChunk::Stderr(b)) => {
                    if printed.len() < 64 * 1024 {
                        printed.extend_from_slice(&b);
                    }
                }
                Err(_) => break,
            }
        }
        printed
    });
    let produced = tokio::task::spawn_blocking(move || {
        let mut w = ChannelWriter::new(tx);
        let out = produce(&mut w)?;
        w.flush()?;
        Ok::<_, io::Error>(out)
    })
    .await
    .map_err(|e| e.to_string())?;
    let _ = writer.await;
    let printed = reader.await.unwrap_or_default();
    let code = exit_code(engine, &id).await.map_err(|e| e.to_string())?;
    let tail = crate::deploy::tail(&printed, &[], &[]);
    if code != 0 {
        return Err(format!(
            "`{}` exited with code {code}{tail}",
            command.join(" ")
        ));
    }
    produced.map_err(|e| format!("{e}{tail}"))
}

/// Replaces the contents of the helper's `/v/NAME` with the tar that
/// `produce` writes, through the engine's archive endpoint: several times
/// faster than a command's input, and the engine keeps the owners, modes,
/// links and extended attributes the tar's headers give. A `produce` that
/// fails fails the upload rather than leaving a short archive extracted as
/// if whole.
async fn put_volume<T: Send + 'static>(
    engine: &Arc<Engine>,
    helper: &str,
    name: &str,
    produce: impl FnOnce(&mut ChannelWriter) -> io::Result<T> + Send + 'static,
) -> Result<T, String> {
    let dir = format!("/v/{name}");
    let clean: Vec<String> = ["voisin", "agent", "clean", dir.as_str()]
        .map(String::from)
        .to_vec();
    let out = engine
        .exec(helper, &clean, None, &[], None)
        .await
        .map_err(|e| e.to_string())?;
    if out.code != 0 {
        return Err(format!(
            "emptying it failed{}",
            crate::deploy::tail(&out.stderr, &out.stdout, &[])
        ));
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<bytes::Bytes>>(16);
    let failed = tx.clone();
    let produced = tokio::task::spawn_blocking(move || {
        let mut w = ChannelWriter::new(tx);
        let result = produce(&mut w).and_then(|out| w.flush().map(|()| out));
        if let Err(e) = &result {
            let _ = failed.blocking_send(Err(io::Error::other(e.to_string())));
        }
        result
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let uploaded = engine.upload_stream(helper, &dir, stream).await;
    let produced = produced.await.map_err(|e| e.to_string())?;
    let out = produced.map_err(|e| e.to_string())?;
    uploaded.map_err(|e| e.to_string())?;
    Ok(out)
}

/// Runs the agent's `digest` of a folder in a helper container.
async fn digest_in(engine: &Engine, helper: &str, dir: &str) -> Result<Vec<agent::Digest>, String> {
    let command: Vec<String> = ["voisin", "agent", "digest", dir]
        .map(String::from)
        .to_vec();
    let out = engine
        .exec(helper, &command, None, &[], None)
        .await
        .map_err(|e| e.to_string())?;
    if out.code != 0 {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())
}

/// The snapshot of `service` to restore: `wanted` (an id or its prefix),
/// or the newest.
pub fn pick(
    snapshots: &[SnapshotFile],
    service: &str,
    wanted: Option<&str>,
) -> Result<SnapshotFile, BackupError> {
    let mut of_service = snapshots
        .iter()
        .filter(|s| repo::tag_value(s, "service").as_deref() == Some(service));
    match wanted {
        Some(id) => of_service
            .rfind(|s| s.id.to_hex().starts_with(id))
            .cloned()
            .ok_or_else(|| BackupError::NoSnapshot(format!("{id} (of {service})"))),
        None => of_service
            .next_back()
            .cloned()
            .ok_or_else(|| BackupError::NoSnapshot(format!("of {service}"))),
    }
}

/// Puts one service back as `snap` holds it: `restore.before`, its
/// containers that use the volumes stopped, the volumes replaced, the
/// containers started behind their health checks, the dumps loaded,
/// `restore.after`.
pub async fn restore_service(
    engine: &Arc<Engine>,
    desired: &DesiredState,
    service: &ServiceBackup,
    repo: &Arc<Repo>,
    snap: &SnapshotFile,
    reporter: &Arc<dyn Reporter>,
) -> Result<(), BackupError> {
    volumes_exist(engine, desired, service).await?;
    let places = Places::one(engine);
    run_steps(&places, &service.restore_before, reporter).await?;
    let users = restore_volumes(engine, desired, service, repo, snap, reporter).await?;
    for spec in &users {
        engine.start(&spec.name).await?;
    }
    for spec in &users {
        crate::deploy::health::wait(engine, spec, &spec.name).await?;
    }
    restore_dumps(&places, service, repo, snap, reporter).await
}

/// The containers of `service` that mount the volumes it backs up.
pub(crate) fn volume_users<'d>(
    desired: &'d DesiredState,
    service: &ServiceBackup,
) -> Vec<&'d ContainerSpec> {
    let volume_names: Vec<&str> = service.volumes.iter().map(|(_, v)| v.as_str()).collect();
    desired
        .containers
        .iter()
        .filter(|c| c.service == service.service)
        .filter(|c| {
            c.mounts
                .iter()
                .any(|m| volume_names.contains(&m.volume.as_str()))
        })
        .collect()
}

/// The middle of a restore: the containers that use the service's volumes
/// stopped, and the volumes' contents replaced by the snapshot's. The
/// containers are left stopped (they are returned): a restore starts them
/// again, an upgrade's rollback puts the old version's back first.
pub async fn restore_volumes<'d>(
    engine: &Arc<Engine>,
    desired: &'d DesiredState,
    service: &ServiceBackup,
    repo: &Arc<Repo>,
    snap: &SnapshotFile,
    reporter: &Arc<dyn Reporter>,
) -> Result<Vec<&'d ContainerSpec>, BackupError> {
    let users = volume_users(desired, service);
    if service.volumes.is_empty() {
        return Ok(users);
    }
    let failed = |message: String| BackupError::Restore {
        service: service.service.clone(),
        message,
    };
    let image = ensure_agent_image(engine).await?;
    let helper = helper_name(&desired.association, "restore", &service.service);
    let mounts: Vec<(String, String, bool)> = service
        .volumes
        .iter()
        .map(|(n, v)| (v.clone(), format!("/v/{n}"), false))
        .collect();
    start_helper(
        engine,
        &image,
        &helper,
        &mounts,
        &helper_labels(desired, "restore", &service.service),
    )
    .await?;
    for spec in users.iter().rev() {
        reporter.note(&format!("stopping {}", spec.name));
        match engine.stop(&spec.name, spec.stop_grace_seconds).await {
            // Gone already (an upgrade interrupted mid-replacement, being
            // rolled back): nothing of it writes to the volume.
            Err(e) if e.is_not_found() => {}
            other => other?,
        }
    }
    for (volume, _) in &service.volumes {
        reporter.begin(volume, &format!("restoring the volume {volume}"));
        let repo = repo.clone();
        let tree = snap.tree;
        let path = format!("volumes/{volume}");
        put_volume(engine, &helper, volume, move |w| {
            let node = tree::node_at(&repo, tree, &path)?;
            tree::write_tar(&repo, &node, w)
        })
        .await
        .map_err(|e| failed(format!("the volume `{volume}`: {e}")))?;
        reporter.done(volume, &format!("restored the volume {volume}"));
    }
    engine.remove(&helper).await?;
    Ok(users)
}

/// The end of a restore, once the service runs again: the dumps loaded,
/// then `restore.after`.
pub async fn restore_dumps(
    places: &Places,
    service: &ServiceBackup,
    repo: &Arc<Repo>,
    snap: &SnapshotFile,
    reporter: &Arc<dyn Reporter>,
) -> Result<(), BackupError> {
    for load in &service.loads {
        load_dump(places, repo, snap, load, reporter)
            .await
            .map_err(|message| BackupError::Restore {
                service: service.service.clone(),
                message,
            })?;
    }
    run_steps(places, &service.restore_after, reporter).await?;
    Ok(())
}

async fn load_dump(
    places: &Places,
    repo: &Arc<Repo>,
    snap: &SnapshotFile,
    load: &DumpSpec,
    reporter: &Arc<dyn Reporter>,
) -> Result<(), String> {
    reporter.begin(
        &load.file,
        &format!("loading {} into {}", load.file, load.container),
    );
    let repo = repo.clone();
    let tree = snap.tree;
    let path = format!("dumps/{}", load.file);
    let (engine, container) = places.of(&load.container);
    feed(
        engine,
        container,
        &load.command,
        load.user.as_deref(),
        move |w| {
            let node = tree::node_at(&repo, tree, &path)?;
            repo.dump(&node, w)
                .map_err(|e| io::Error::other(e.to_string()))
        },
    )
    .await
    .map_err(|e| format!("loading `{}`: {e}", load.file))?;
    reporter.done(
        &load.file,
        &format!("loaded {} into {}", load.file, load.container),
    );
    Ok(())
}

/// What a test restore of one snapshot found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TestRestore {
    /// The service.
    pub service: String,
    /// The snapshot.
    pub snapshot: String,
    /// Entries compared.
    pub entries: usize,
    /// Bytes of dumps read back.
    pub dump_bytes: u64,
    /// Differences found (empty when identical).
    pub differences: Vec<String>,
}

/// Restores `snap` into throwaway volumes and compares what lands there,
/// entry by entry (content hash, owner, mode), with the snapshot; reads
/// every dump back.
pub async fn test_restore(
    engine: &Arc<Engine>,
    desired: &DesiredState,
    service: &ServiceBackup,
    repo: &Arc<Repo>,
    snap: &SnapshotFile,
) -> Result<TestRestore, BackupError> {
    let mut result = TestRestore {
        service: service.service.clone(),
        snapshot: snap.id.to_hex().to_string(),
        entries: 0,
        dump_bytes: 0,
        differences: Vec::new(),
    };
    for d in &service.dumps {
        let repo = repo.clone();
        let tree = snap.tree;
        let path = format!("dumps/{}", d.file);
        let bytes = tokio::task::spawn_blocking(move || -> io::Result<u64> {
            let node = tree::node_at(&repo, tree, &path)?;
            let mut content = tree::Content::new(&repo, &node)?;
            io::copy(&mut content, &mut io::sink())
        })
        .await
        .map_err(local)?;
        match bytes {
            Ok(n) => result.dump_bytes += n,
            Err(e) => result
                .differences
                .push(format!("the dump `{}` cannot be read: {e}", d.file)),
        }
    }
    if service.volumes.is_empty() {
        return Ok(result);
    }
    let image = ensure_agent_image(engine).await?;
    let helper = helper_name(&desired.association, "verify", &service.service);
    let labels = helper_labels(desired, "verify", &service.service);
    let mut mounts = Vec::new();
    for (name, _) in &service.volumes {
        let volume = format!("{helper}-{name}");
        engine.remove_volume(&volume).await.ok();
        engine.create_volume(&volume, &labels).await?;
        mounts.push((volume, format!("/v/{name}"), false));
    }
    start_helper(engine, &image, &helper, &mounts, &labels).await?;
    let compared = async {
        for (name, _) in &service.volumes {
            let repo = repo.clone();
            let tree = snap.tree;
            let path = format!("volumes/{name}");
            let expected = put_volume(engine, &helper, name, move |w| {
                let node = tree::node_at(&repo, tree, &path)?;
                tree::write_tar(&repo, &node, w)
            })
            .await;
            let expected = match expected {
                Ok(e) => e,
                Err(e) => {
                    result
                        .differences
                        .push(format!("the volume `{name}` cannot be restored: {e}"));
                    continue;
                }
            };
            let found = digest_in(engine, &helper, &format!("/v/{name}"))
                .await
                .map_err(local)?;
            result.entries += expected.len();
            result.differences.extend(compare(name, &expected, &found));
        }
        Ok::<_, BackupError>(())
    }
    .await;
    engine.remove(&helper).await?;
    for (volume, _, _) in &mounts {
        engine.remove_volume(volume).await?;
    }
    compared?;
    Ok(result)
}

/// The differences between what a snapshot holds and what a volume holds.
pub fn compare(volume: &str, expected: &[agent::Digest], found: &[agent::Digest]) -> Vec<String> {
    let index: BTreeMap<&str, &agent::Digest> =
        found.iter().map(|d| (d.path.as_str(), d)).collect();
    let mut out = Vec::new();
    for e in expected {
        match index.get(e.path.as_str()) {
            None => out.push(format!("{volume}/{}: missing after restore", e.path)),
            Some(f) if *f != e => out.push(format!(
                "{volume}/{}: {} {:o} {}:{} {} restored as {} {:o} {}:{} {}",
                e.path,
                e.kind,
                e.mode,
                e.uid,
                e.gid,
                short(&e.hash),
                f.kind,
                f.mode,
                f.uid,
                f.gid,
                short(&f.hash)
            )),
            Some(_) => {}
        }
    }
    let wanted: std::collections::BTreeSet<&str> =
        expected.iter().map(|d| d.path.as_str()).collect();
    for f in found {
        if !wanted.contains(f.path.as_str()) {
            out.push(format!(
                "{volume}/{}: present after restore but not in the snapshot",
                f.path
            ));
        }
    }
    out
}

fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

/// rustic's repository check: its errors, one line each. On some damage
/// (a tree that cannot be read) rustic panics in its own threads instead
/// of answering: that is caught, silenced, and reported as an error too.
pub fn check(repo: &Repo, subset: rustic_core::ReadSubsetOption) -> Vec<String> {
    static PANICS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|info| {
        let text = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        if let Ok(mut p) = PANICS.lock() {
            p.push(text.chars().take(200).collect());
        }
    }));
    let opts = rustic_core::CheckOptions::default()
        .read_data(true)
        .read_data_subset(subset);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| repo.check(opts)));
    // rustic's own threads may still be failing: give them a moment to
    // panic into the silent hook rather than onto the admin's screen.
    std::thread::sleep(Duration::from_millis(200));
    std::panic::set_hook(previous);
    let mut errors: Vec<String> = match result {
        Err(_) => vec!["the repository check stopped on damaged data".to_string()],
        Ok(Err(e)) => vec![first_line(&e.to_string())],
        Ok(Ok(results)) => results
            .0
            .iter()
            // rustic does not export the level's type: its name is what
            // tells an error from a warning.
            .filter(|(level, _)| format!("{level:?}") == "Error")
            .map(|(_, e)| e.to_string())
            .collect(),
    };
    if let Ok(mut p) = PANICS.lock()
        && !p.is_empty()
        && errors.iter().all(|e| !e.contains("stopped"))
    {
        errors.push("the repository check stopped on damaged data".to_string());
        p.clear();
    }
    errors
}

/// Which snapshots a damaged repository no longer restores: every blob
/// each snapshot needs is read back and its checksum verified (once per
/// blob, however many snapshots share it).
pub fn damaged_snapshots(repo: &Repo, snapshots: &[SnapshotFile]) -> Vec<(SnapshotFile, String)> {
    let mut known: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut out = Vec::new();
    for snap in snapshots {
        if let Some(why) = tree_damage(repo, snap.tree, &mut known) {
            out.push((snap.clone(), why));
        }
    }
    out
}

fn tree_damage(
    repo: &Repo,
    tree: rustic_core::TreeId,
    known: &mut BTreeMap<String, Option<String>>,
) -> Option<String> {
    let key = format!("tree:{}", tree.to_hex().as_str());
    if let Some(seen) = known.get(&key) {
        return seen.clone();
    }
    let found = match repo.get_tree(&tree) {
        Err(e) => Some(format!(
            "a folder cannot be read: {}",
            first_line(&e.to_string())
        )),
        Ok(t) => t.nodes.iter().find_map(|node| {
            if let Some(sub) = node.subtree {
                return tree_damage(repo, sub, known);
            }
            node.content.as_ref()?.iter().find_map(|id| {
                let hex = id.to_hex().to_string();
                let key = format!("data:{hex}");
                if let Some(seen) = known.get(&key) {
                    return seen.clone();
                }
                let r = repo
                    .cat_blob(rustic_core::repofile::BlobType::Data, &hex)
                    .err()
                    .map(|e| {
                        format!(
                            "`{}` is damaged: {}",
                            node.name().to_string_lossy(),
                            first_line(&e.to_string())
                        )
                    });
                known.insert(key, r.clone());
                r
            })
        }),
    };
    known.insert(key, found.clone());
    found
}

fn first_line(text: &str) -> String {
    text.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .to_string()
}

/// What `backup verify` proved, kept beside the manifest (`.voisin/`) for
/// `status` and `prune`: per service, the snapshot restored identically and
/// when.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Verified {
    /// By service.
    pub services: BTreeMap<String, VerifiedRestore>,
}

/// One service's last verified restore.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VerifiedRestore {
    /// The snapshot's id.
    pub snapshot: String,
    /// When, in seconds since the Unix epoch.
    pub at: i64,
}

impl Verified {
    fn path(state_dir: &std::path::Path) -> PathBuf {
        state_dir.join("backups-verified.json")
    }

    /// Reads it; nothing verified yet when there is no file.
    pub fn read(state_dir: &std::path::Path) -> Self {
        std::fs::read(Self::path(state_dir))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Writes it (through a temporary file, so it is whole or absent).
    pub fn write(&self, state_dir: &std::path::Path) -> io::Result<()> {
        std::fs::create_dir_all(state_dir)?;
        let tmp = state_dir.join("backups-verified.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?)?;
        std::fs::rename(tmp, Self::path(state_dir))
    }
}
