//! Backup and restore on a swarm. A service's volumes live on the node
//! that runs its stateful task: helpers run on that node's own engine, and
//! every step and dump runs in the container of its service's running copy,
//! on whichever node that is. A restore stops a service by scaling it to no
//! copies (a stopped container would be started again by the swarm), and
//! starts it again by scaling it back, behind its health check.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rustic_core::repofile::SnapshotFile;

use super::{BackupError, Places, Repo};
use crate::deploy::DeployError;
use crate::deploy::swarm::{self, Swarm};
use crate::engine::Engine;
use crate::plan::swarm::{SwarmObserved, running_container};
use crate::progress::Reporter;
use crate::render::DesiredState;
use crate::render::state::{ContainerSpec, ServiceBackup};

/// Where backups and restores run: one engine, or the nodes of a swarm.
pub enum Ground {
    /// One engine.
    One(Arc<Engine>),
    /// A swarm, through its manager.
    Swarm(Swarm),
}

impl Ground {
    /// The engine that holds the association's lock: the engine itself, or
    /// the swarm's manager.
    pub fn lock_engine(&self) -> &Arc<Engine> {
        match self {
            Self::One(e) => e,
            Self::Swarm(s) => &s.manager,
        }
    }

    /// Settles what interrupted runs left on the swarm's nodes (helpers,
    /// `after` steps owed); the lock engine's own are settled by the lock's
    /// holder (`commands::backup::locked`).
    pub async fn recover_nodes(
        &self,
        desired: &DesiredState,
        reporter: &Arc<dyn Reporter>,
    ) -> Result<(), BackupError> {
        let Self::Swarm(s) = self else {
            return Ok(());
        };
        for (_, engine) in &s.nodes {
            let Some(engine) = engine else { continue };
            if !super::leftovers(engine, desired).await? {
                continue;
            }
            let places = self.places(desired, None).await?;
            super::recover_with(&places, engine, desired, reporter).await?;
        }
        // A service at no copies was stopped by a restore that did not
        // finish (nothing else scales voisin's services to 0): it runs again,
        // with whatever its volumes hold; the safety snapshot has the rest.
        let names = swarm::network_names(&s.manager, &desired.domain).await?;
        for service in s.manager.services(&desired.domain, &names).await? {
            let Some(spec) = desired.containers.iter().find(|c| c.name == service.name) else {
                continue;
            };
            if Engine::replicas(&service) == 0 {
                reporter.note(&format!(
                    "a restore of `{}` was interrupted: starting it again (run `voisin restore` to finish)",
                    spec.service
                ));
                scale(s, desired, spec, 1).await?;
            }
        }
        Ok(())
    }

    /// Where `service`'s containers are, for backing it up or restoring it
    /// (`None`: every service's, for settling leftovers).
    pub async fn places(
        &self,
        desired: &DesiredState,
        service: Option<&ServiceBackup>,
    ) -> Result<Places, BackupError> {
        match self {
            Self::One(e) => Ok(Places::one(e)),
            Self::Swarm(s) => {
                let observed = Box::pin(swarm::observe(s, desired)).await?;
                locate(s, &observed, desired, service)
            }
        }
    }

    /// Puts one service back as `snap` holds it (see
    /// [`super::restore_service`]); on a swarm the service is stopped and
    /// started by scaling it.
    pub async fn restore_service(
        &self,
        desired: &DesiredState,
        service: &ServiceBackup,
        repo: &Arc<Repo>,
        snap: &SnapshotFile,
        reporter: &Arc<dyn Reporter>,
    ) -> Result<(), BackupError> {
        let s = match self {
            Self::One(e) => {
                return super::restore_service(e, desired, service, repo, snap, reporter).await;
            }
            Self::Swarm(s) => s,
        };
        let places = self.places(desired, Some(service)).await?;
        super::volumes_exist(&places.home, desired, service).await?;
        super::run_steps(&places, &service.restore_before, reporter).await?;
        let users = super::volume_users(desired, service);
        for spec in users.iter().rev() {
            reporter.note(&format!("stopping {}", spec.name));
            scale(s, desired, spec, 0).await?;
        }
        // Nothing of the service runs: the helper (on the volumes' node)
        // finds no container of its own name to stop there.
        super::restore_volumes(&places.home, desired, service, repo, snap, reporter).await?;
        for spec in &users {
            reporter.note(&format!("starting {}", spec.name));
            scale(s, desired, spec, 1).await?;
        }
        // Its copies are new containers: find them again.
        let places = self.places(desired, Some(service)).await?;
        super::restore_dumps(&places, service, repo, snap, reporter).await
    }
}

/// Finds each container of `service` (of every service, for `None`) in
/// its running copy's node; `home` is the node of the copy that mounts the
/// service's volumes (or of its first running copy, for a service without
/// volumes). A container that backup or restore needs and that has no
/// running copy, or whose node does not answer, is an error that says so.
fn locate(
    s: &Swarm,
    observed: &SwarmObserved,
    desired: &DesiredState,
    service: Option<&ServiceBackup>,
) -> Result<Places, BackupError> {
    let mine = |c: &&ContainerSpec| service.is_none_or(|b| b.service == c.service);
    let mut found = Vec::new();
    for c in desired.containers.iter().filter(mine) {
        let task = running_container(observed, &c.name);
        let node = task
            .and_then(|t| t.node_id.as_ref())
            .and_then(|id| observed.nodes.iter().find(|n| &n.id == id));
        let (Some(task), Some(node)) = (task, node) else {
            if service.is_some() {
                return Err(BackupError::Engine(crate::engine::EngineError::Failed(
                    format!(
                        "`{}` has no running copy on the swarm: `voisin status` shows where it should run, and whether that node is down",
                        c.name
                    ),
                )));
            }
            continue;
        };
        let Some(engine) = s.node(&node.hostname) else {
            if service.is_none() {
                continue;
            }
            return Err(BackupError::Engine(crate::engine::EngineError::Failed(
                format!(
                    "`{}` runs on the node `{}`, whose engine does not answer",
                    c.name, node.hostname
                ),
            )));
        };
        found.push((
            c,
            engine.clone(),
            task.container_id.clone().unwrap_or_default(),
        ));
    }
    let volumes: Vec<&str> = service
        .map(|b| b.volumes.iter().map(|(_, v)| v.as_str()).collect())
        .unwrap_or_default();
    let home = found
        .iter()
        .find(|(c, _, _)| {
            c.mounts
                .iter()
                .any(|m| volumes.contains(&m.volume.as_str()))
        })
        .or_else(|| found.first())
        .map_or_else(|| s.manager.clone(), |(_, e, _)| e.clone());
    Ok(found
        .iter()
        .fold(Places::one(&home), |places, (c, engine, id)| {
            places.with(&c.name, engine, id)
        }))
}

/// Scales the swarm service of `spec` to `replicas` copies and waits: for
/// none to run (0), or for one to run healthy.
async fn scale(
    s: &Swarm,
    desired: &DesiredState,
    spec: &ContainerSpec,
    replicas: i64,
) -> Result<(), BackupError> {
    let names = swarm::network_names(&s.manager, &desired.domain).await?;
    let service = s
        .manager
        .services(&desired.domain, &names)
        .await?
        .into_iter()
        .find(|o| o.name == spec.name)
        .ok_or_else(|| {
            BackupError::Engine(crate::engine::EngineError::Failed(format!(
                "`{}` is not a service of the swarm: run `voisin deploy` first",
                spec.name
            )))
        })?;
    s.manager.scale(&service, replicas).await?;
    if replicas > 0 {
        return Ok(swarm::settle(s, desired, spec).await?);
    }
    let deadline = Instant::now() + crate::deploy::health::bound(spec) + Duration::from_mins(1);
    loop {
        let tasks = s.manager.tasks(std::slice::from_ref(&service.id)).await?;
        // A task is over once it leaves the states in which its container
        // may still run (`shutdown` asked, `complete`, `failed`…).
        let running = tasks.iter().any(|t| {
            matches!(
                t.state.as_str(),
                "running" | "starting" | "preparing" | "assigned" | "accepted" | "ready"
            )
        });
        if !running {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(DeployError::Unhealthy(format!(
                "`{}` did not stop within {} s",
                spec.name,
                crate::deploy::health::bound(spec).as_secs() + 60
            ))
            .into());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
