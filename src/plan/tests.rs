//! The plan without an engine: desired states from the examples against
//! observed states made by hand.

use super::*;
use crate::catalog::{Source, load};
use crate::engine::RunState;
use crate::secrets::Store;

fn desired(example: &str) -> DesiredState {
    let catalog = load(&Source::BuiltIn).expect("built-in catalog").catalog;
    let path = format!("{}/examples/{example}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("example");
    let manifest = crate::manifest::check(example, &text, &catalog)
        .manifest
        .expect("a valid example");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut store = Store::empty(dir.path());
    crate::render::render(&manifest, &catalog, &mut store).expect("renders")
}

/// What the engine would report for a container created from `spec`.
fn as_observed(spec: &ContainerSpec, image: &ImageInfo) -> ObservedContainer {
    let mut env: Vec<String> = image.env.clone();
    env.extend(spec.env.iter().map(|(k, v)| format!("{k}={v}")));
    let mut ports = spec.ports.clone();
    ports.sort_by_key(|p| (p.host, p.container));
    ObservedContainer {
        id: format!("id-{}", spec.name),
        name: spec.name.clone(),
        labels: create::labels(spec),
        image: spec.image.clone(),
        image_id: image.id.clone(),
        env,
        cmd: if spec.command.is_empty() {
            image.cmd.clone()
        } else {
            spec.command.clone()
        },
        entrypoint: if spec.entrypoint.is_empty() {
            image.entrypoint.clone()
        } else {
            spec.entrypoint.clone()
        },
        user: spec.user.clone().unwrap_or_default(),
        hostname: spec.hostname.clone().unwrap_or_default(),
        mounts: create::all_mounts(spec),
        tmpfs: spec.tmpfs.clone(),
        networks: spec
            .networks
            .iter()
            .map(|a| (a.network.clone(), a.aliases.clone()))
            .collect(),
        ports,
        health: spec.health.clone(),
        memory_bytes: spec.memory_bytes,
        pids_limit: spec.pids_limit,
        cap_add: spec.cap_add.clone(),
        cap_drop: spec.cap_drop.clone(),
        security_opt: spec.security_opt.clone(),
        read_only: spec.read_only,
        restart: spec.restart.clone(),
        log_max_size: spec.log_max_size.clone(),
        log_max_files: spec.log_max_files,
        stop_grace_seconds: spec.stop_grace_seconds,
        state: RunState {
            status: "running".into(),
            running: true,
            ..RunState::default()
        },
    }
}

fn image() -> ImageInfo {
    ImageInfo {
        id: "sha256:1".into(),
        env: vec!["PATH=/usr/bin".into()],
        ..ImageInfo::default()
    }
}

/// Everything deployed as `desired` says, steps done.
fn deployed(desired: &DesiredState) -> Observed {
    let mut observed = Observed::default();
    for spec in &desired.containers {
        observed.containers.push(as_observed(spec, &image()));
        let mut info = image();
        if spec.build.is_some() {
            info.labels
                .insert(crate::engine::build::SOURCE_LABEL.into(), "fp".into());
            observed
                .wanted_builds
                .insert(spec.image.clone(), "fp".into());
        }
        observed.images.insert(spec.image.clone(), Some(info));
        for fv in create::files_volumes(spec) {
            observed.volumes.push(ObservedVolume {
                name: fv.name,
                labels: BTreeMap::from([(KIND_LABEL.to_string(), "files".to_string())]),
            });
        }
    }
    for n in &desired.networks {
        observed.networks.push(ObservedNetwork {
            name: n.name.clone(),
            subnet: n.subnet.clone(),
            labels: n.labels.clone(),
            id: String::new(),
            driver: "bridge".into(),
        });
    }
    for v in &desired.volumes {
        observed.volumes.push(ObservedVolume {
            name: v.name.clone(),
            labels: v.labels.clone(),
        });
    }
    for step in &desired.after_start {
        observed
            .steps_done
            .insert(step_key(step), format!("id-{}", step.container));
    }
    observed
}

#[test]
fn an_empty_engine_gets_everything_created() {
    let d = desired("full-association.yaml");
    let p = plan(&d, &Observed::default());
    assert!(p.containers.iter().all(|c| c.action == Action::Create));
    assert!(p.networks.iter().all(|c| c.action == Action::Create));
    assert_eq!(p.steps.len(), d.after_start.len());
    assert!(p.images.iter().any(|i| i.action == ImageAction::Build));
    assert!(p.images.iter().any(|i| i.action == ImageAction::Pull));
}

#[test]
fn a_deployed_bundle_plans_nothing() {
    let d = desired("full-association.yaml");
    let p = plan(&d, &deployed(&d));
    assert!(p.is_empty(), "{}", text(&p));
    assert!(text(&p).starts_with("nothing to do: 7 containers"));
}

#[test]
fn an_environment_change_by_hand_is_named_without_its_value() {
    let d = desired("board-only.yaml");
    let mut o = deployed(&d);
    for e in &mut o.containers[0].env {
        if e.starts_with("VOISIN_BOARD_LOCALE=") {
            *e = "VOISIN_BOARD_LOCALE=xx-secret-looking".into();
        }
    }
    let p = plan(&d, &o);
    let c = &p.containers[0];
    assert_eq!(c.action, Action::Replace);
    assert_eq!(c.reasons, ["environment `VOISIN_BOARD_LOCALE` changed"]);
    assert!(!text(&p).contains("xx-secret-looking"));
}

#[test]
fn a_stopped_container_is_started_and_a_removed_one_created() {
    let d = desired("full-association.yaml");
    let mut o = deployed(&d);
    o.containers[0].state = RunState {
        status: "exited".into(),
        running: false,
        exit_code: 137,
        ..RunState::default()
    };
    let removed = o.containers.remove(1);
    let p = plan(&d, &o);
    let first = p.container(&d.containers[0].name).expect("planned");
    assert_eq!(first.action, Action::Start);
    assert_eq!(first.reasons, ["stopped (exit code 137)"]);
    assert_eq!(
        p.container(&removed.name).expect("planned").action,
        Action::Create
    );
}

#[test]
fn a_changed_file_replaces_only_its_container_and_reruns_its_steps() {
    let mut d = desired("full-association.yaml");
    let o = deployed(&d);
    let mail = d
        .containers
        .iter_mut()
        .find(|c| c.container == "mail")
        .expect("mail");
    let file = mail
        .files
        .iter_mut()
        .find(|f| f.path.ends_with("postfix-virtual.cf"))
        .expect("aliases file");
    file.content = crate::render::state::Content::Text("changed".into());
    let path = file.path.clone();
    let p = plan(&d, &o);
    let changed: Vec<&str> = p
        .containers
        .iter()
        .filter(|c| c.action != Action::Keep)
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(changed, ["amis-quartier-mail-mail"]);
    assert!(
        p.containers
            .iter()
            .any(|c| c.reasons.contains(&format!("file `{path}` changed")))
    );
}

#[test]
fn leftovers_of_an_interrupted_replacement_are_cleaned_first() {
    let d = desired("board-only.yaml");
    let mut o = deployed(&d);
    let mut old = o.containers[0].clone();
    old.name = format!("{}{OLD_SUFFIX}", old.name);
    o.containers[0].name = format!("{}{NEXT_SUFFIX}", o.containers[0].name);
    o.containers.push(old);
    let p = plan(&d, &o);
    assert_eq!(
        p.cleanup,
        [
            Cleanup::Remove {
                name: format!("{}{NEXT_SUFFIX}", d.containers[0].name)
            },
            Cleanup::Restore {
                from: format!("{}{OLD_SUFFIX}", d.containers[0].name),
                to: d.containers[0].name.clone()
            }
        ]
    );
    assert_eq!(
        p.containers[0].action,
        Action::Keep,
        "the restored container is up to date"
    );
}

#[test]
fn a_new_voisin_executable_rebuilds_the_board_image_and_replaces_the_board() {
    let d = desired("board-only.yaml");
    let mut o = deployed(&d);
    o.wanted_builds
        .insert("voisin-board:0.1.0".into(), "other".into());
    let p = plan(&d, &o);
    assert_eq!(p.images[0].action, ImageAction::Build);
    assert_eq!(p.containers[0].action, Action::Replace);
}

#[test]
fn a_container_no_longer_wanted_is_removed_but_its_volume_kept() {
    let d = desired("board-only.yaml");
    let mut o = deployed(&d);
    let mut extra = o.containers[0].clone();
    extra.name = "tilleuls-games-app".into();
    o.containers.push(extra);
    o.volumes.push(ObservedVolume {
        name: "tilleuls-games-data".into(),
        labels: BTreeMap::new(),
    });
    let p = plan(&d, &o);
    assert_eq!(
        p.container("tilleuls-games-app").expect("planned").action,
        Action::Remove
    );
    let v = p
        .volumes
        .iter()
        .find(|v| v.name == "tilleuls-games-data")
        .expect("listed");
    assert_eq!(v.action, Action::Keep);
}
