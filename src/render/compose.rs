//! The desired state as a docker-compose file: the way out for an
//! association that leaves voisin, and a peer to measure voisin against.
//!
//! Files voisin would upload into containers, with their owner and mode,
//! are written under `files/` beside it. A bind mount would keep the host's
//! owner and mode (the board, uid 1000, could not read its root-owned 0400
//! members file), so a one-shot service, `voisin-files`, copies them into
//! volumes with the owner and mode each container expects, and every
//! container with files starts after it has finished. A file under one of
//! the container's own volumes goes into that volume (the mail server's
//! configuration folder); the others go into a volume per folder, mounted
//! read-only at that folder, which then holds voisin's files only.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{Value, json};

use super::state::{ContainerSpec, DesiredState};

/// Where a container's file is written, relative to the compose file.
pub fn file_path(container: &str, path: &str) -> String {
    format!("files/{container}/{}", path.trim_start_matches('/'))
}

/// The script `voisin-files` runs, relative to the compose file.
pub const INSTALL_SCRIPT: &str = "files/voisin-install.sh";

/// The image of `voisin-files`: any image with a POSIX shell, `cp`,
/// `chown`, `chmod`, `mkdir` and `mv` would do; busybox is the smallest,
/// pinned to a release like the catalog's images.
pub const FILES_IMAGE: &str = "busybox:1.37.0";

/// The compose service that puts files in place.
pub const FILES_SERVICE: &str = "voisin-files";

/// Where one file goes: into `volume`, at `relative` inside it.
struct Placement<'a> {
    container: &'a ContainerSpec,
    source: String,
    volume: String,
    relative: String,
    mode: &'a str,
    owner: String,
}

/// Where every file goes, and the volumes made for files, each with the
/// folder it is mounted at and the container that mounts it.
fn placements(state: &DesiredState) -> (Vec<Placement<'_>>, BTreeMap<String, (String, String)>) {
    let mut placed = Vec::new();
    let mut made = BTreeMap::new();
    for c in &state.containers {
        for f in &c.files {
            let own = c
                .mounts
                .iter()
                .filter(|m| !m.read_only && f.path.starts_with(&format!("{}/", m.path)))
                .max_by_key(|m| m.path.len());
            let (volume, relative) = if let Some(m) = own {
                (m.volume.clone(), f.path[m.path.len() + 1..].to_string())
            } else {
                let (folder, name) = f.path.rsplit_once('/').unwrap_or(("", &f.path));
                let volume = format!("{}-files{}", c.name, folder.replace('/', "-"));
                let folder = if folder.is_empty() { "/" } else { folder };
                made.insert(volume.clone(), (folder.to_string(), c.name.clone()));
                (volume, name.to_string())
            };
            placed.push(Placement {
                container: c,
                source: file_path(&c.name, &f.path),
                volume,
                relative,
                mode: &f.mode,
                owner: format!("{}:{}", f.uid, f.gid),
            });
        }
    }
    (placed, made)
}

/// The script `voisin-files` runs: one `put` per file. Each file is copied
/// beside its place, given its mode and owner, then renamed over the old
/// one, so a running container never reads half a file.
pub fn install_script(state: &DesiredState) -> String {
    let mut script = String::from(
        "#!/bin/sh\n\
         # Written by `voisin render --compose`: run by the `voisin-files` service,\n\
         # it puts each rendered file in place with the owner and mode its\n\
         # container expects.\n\
         set -eu\n\
         put() {\n  \
           mkdir -p \"$(dirname \"$2\")\"\n  \
           cp \"$1\" \"$2.voisin-new\"\n  \
           chmod \"$3\" \"$2.voisin-new\"\n  \
           chown \"$4\" \"$2.voisin-new\"\n  \
           mv -f \"$2.voisin-new\" \"$2\"\n\
         }\n",
    );
    let (placed, _) = placements(state);
    let mut last = "";
    for p in &placed {
        if p.container.name != last {
            let _ = writeln!(script, "# {}", p.container.name);
            last = &p.container.name;
        }
        let _ = writeln!(
            script,
            "put '/{}' '/volumes/{}/{}' {} {}",
            p.source, p.volume, p.relative, p.mode, p.owner
        );
    }
    script
}

/// The compose document for `state`.
pub fn compose(state: &DesiredState) -> Value {
    let (placed, made) = placements(state);
    let mut services: BTreeMap<&str, Value> = state
        .containers
        .iter()
        .map(|c| (c.name.as_str(), service(state, c, &made)))
        .collect();
    if !placed.is_empty() {
        let mut volumes = vec![format!("./files:/files:ro")];
        let mut targets: Vec<&str> = placed.iter().map(|p| p.volume.as_str()).collect();
        targets.sort_unstable();
        targets.dedup();
        volumes.extend(targets.iter().map(|v| format!("{v}:/volumes/{v}")));
        services.insert(
            FILES_SERVICE,
            json!({
                "image": FILES_IMAGE,
                "container_name": format!("{}-{FILES_SERVICE}", state.association),
                "entrypoint": ["sh", format!("/{INSTALL_SCRIPT}")],
                "volumes": volumes,
                "network_mode": "none",
                // Root, to give files away; nothing else.
                "user": "0:0",
                "cap_drop": ["ALL"],
                "cap_add": ["CHOWN", "DAC_OVERRIDE", "FOWNER"],
                "security_opt": ["no-new-privileges:true"],
                "read_only": true,
                "restart": "no",
                "labels": { "voisin.association": state.domain },
            }),
        );
    }
    let networks: BTreeMap<&str, Value> = state
        .networks
        .iter()
        .map(|n| {
            let mut net = json!({ "name": n.name, "labels": n.labels });
            if let Some(subnet) = &n.subnet {
                net["ipam"] = json!({ "config": [{ "subnet": subnet }] });
            }
            (n.name.as_str(), net)
        })
        .collect();
    let mut volumes: BTreeMap<&str, Value> = state
        .volumes
        .iter()
        .map(|v| {
            (
                v.name.as_str(),
                json!({ "name": v.name, "labels": v.labels }),
            )
        })
        .collect();
    for (volume, (_, container)) in &made {
        let service = state
            .containers
            .iter()
            .find(|c| &c.name == container)
            .map_or("", |c| c.service.as_str());
        volumes.insert(
            volume,
            json!({ "name": volume, "labels": {
                "voisin.association": state.domain,
                "voisin.service": service,
                "voisin.files": "true",
            }}),
        );
    }
    let mut document = json!({
        "version": "2.4",
        "services": services,
        "networks": networks,
        "volumes": volumes,
    });
    escape_dollars(&mut document);
    document
}

/// Compose replaces `$NAME` and `${NAME}` anywhere in the file with the
/// shell's variables; `$$` is a literal `$`. Every value voisin writes is
/// meant literally (an association named "A$B", a shell health check).
fn escape_dollars(value: &mut Value) {
    match value {
        Value::String(s) if s.contains('$') => *s = s.replace('$', "$$"),
        Value::Array(items) => items.iter_mut().for_each(escape_dollars),
        Value::Object(fields) => fields.values_mut().for_each(escape_dollars),
        _ => {}
    }
}

/// One container as a compose service.
fn service(
    state: &DesiredState,
    c: &ContainerSpec,
    made: &BTreeMap<String, (String, String)>,
) -> Value {
    let mut volumes: Vec<String> = c
        .mounts
        .iter()
        .map(|m| {
            format!(
                "{}:{}{}",
                m.volume,
                m.path,
                if m.read_only { ":ro" } else { "" }
            )
        })
        .collect();
    volumes.extend(
        made.iter()
            .filter(|(_, (_, owner))| owner == &c.name)
            .map(|(volume, (folder, _))| format!("{volume}:{folder}:ro")),
    );
    let networks: BTreeMap<&str, Value> = c
        .networks
        .iter()
        .map(|n| (n.network.as_str(), json!({ "aliases": n.aliases })))
        .collect();
    let depends_on = depends_on(state, c);
    let mut service = json!({
        "image": c.image,
        "container_name": c.name,
        "environment": c.env,
        "volumes": volumes,
        "networks": networks,
        "mem_limit": c.memory_bytes,
        "pids_limit": c.pids_limit,
        "cap_drop": c.cap_drop,
        "cap_add": c.cap_add,
        "security_opt": c.security_opt,
        "read_only": c.read_only,
        "restart": c.restart,
        "logging": { "driver": "json-file", "options": { "max-size": c.log_max_size, "max-file": c.log_max_files.to_string() } },
        "stop_grace_period": format!("{}s", c.stop_grace_seconds),
        "labels": c.labels,
    });
    let fields = service.as_object_mut().expect("a map");
    if let Some(h) = &c.hostname {
        fields.insert("hostname".into(), json!(h));
    }
    if !c.entrypoint.is_empty() {
        fields.insert("entrypoint".into(), json!(c.entrypoint));
    }
    if !c.command.is_empty() {
        fields.insert("command".into(), json!(c.command));
    }
    if let Some(u) = &c.user {
        fields.insert("user".into(), json!(u));
    }
    if !c.tmpfs.is_empty() {
        fields.insert("tmpfs".into(), json!(c.tmpfs));
    }
    if !c.ports.is_empty() {
        let ports: Vec<String> = c
            .ports
            .iter()
            .map(|p| match &p.host_ip {
                Some(ip) => format!("{ip}:{}:{}/{}", p.host, p.container, p.protocol),
                None => format!("{}:{}/{}", p.host, p.container, p.protocol),
            })
            .collect();
        fields.insert("ports".into(), json!(ports));
    }
    if let Some(h) = &c.health {
        let mut test = vec!["CMD".to_string()];
        test.extend(h.test.iter().cloned());
        fields.insert(
            "healthcheck".into(),
            json!({
                "test": test,
                "interval": format!("{}s", h.interval_seconds),
                "timeout": format!("{}s", h.timeout_seconds),
                "retries": h.retries,
                "start_period": format!("{}s", h.start_period_seconds),
            }),
        );
    }
    if !depends_on.is_empty() {
        fields.insert("depends_on".into(), json!(depends_on));
    }
    service
}

/// What a container waits for: its entry's containers (healthy, when they
/// have a health check), and `voisin-files` having put its files in place.
fn depends_on<'a>(state: &DesiredState, c: &'a ContainerSpec) -> BTreeMap<&'a str, Value> {
    let mut depends_on: BTreeMap<&'a str, Value> = c
        .depends_on
        .iter()
        .map(|d| {
            let healthy = state
                .containers
                .iter()
                .any(|o| &o.name == d && o.health.is_some());
            let condition = if healthy {
                "service_healthy"
            } else {
                "service_started"
            };
            (d.as_str(), json!({ "condition": condition }))
        })
        .collect();
    if !c.files.is_empty() {
        depends_on.insert(
            FILES_SERVICE,
            json!({ "condition": "service_completed_successfully" }),
        );
    }
    depends_on
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_dollar_is_written_for_compose_to_keep() {
        let mut doc = json!({
            "environment": { "NAME": "A$B ${HOME}" },
            "healthcheck": { "test": ["CMD", "sh", "-c", "echo $$ $x"] },
            "mem_limit": 5,
        });
        escape_dollars(&mut doc);
        assert_eq!(doc["environment"]["NAME"], "A$$B $${HOME}");
        assert_eq!(doc["healthcheck"]["test"][3], "echo $$$$ $$x");
        assert_eq!(doc["mem_limit"], 5);
    }
}
