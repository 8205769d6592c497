//! The desired state as a docker-compose file: the way out for an
//! association that leaves voisin, and a peer to measure voisin against.
//! Files voisin would upload into containers are bind-mounted read-only
//! from the `files/` folder written beside it.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::state::{ContainerSpec, DesiredState};

/// Where a container's file is written, relative to the compose file.
pub fn file_path(container: &str, path: &str) -> String {
    format!("files/{container}/{}", path.trim_start_matches('/'))
}

/// The compose document for `state`.
pub fn compose(state: &DesiredState) -> Value {
    let services: BTreeMap<&str, Value> = state
        .containers
        .iter()
        .map(|c| (c.name.as_str(), service(state, c)))
        .collect();
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
    let volumes: BTreeMap<&str, Value> = state
        .volumes
        .iter()
        .map(|v| {
            (
                v.name.as_str(),
                json!({ "name": v.name, "labels": v.labels }),
            )
        })
        .collect();
    json!({
        "version": "2.4",
        "services": services,
        "networks": networks,
        "volumes": volumes,
    })
}

/// One container as a compose service.
fn service(state: &DesiredState, c: &ContainerSpec) -> Value {
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
        c.files
            .iter()
            .map(|f| format!("./{}:{}:ro", file_path(&c.name, &f.path), f.path)),
    );
    let networks: BTreeMap<&str, Value> = c
        .networks
        .iter()
        .map(|n| (n.network.as_str(), json!({ "aliases": n.aliases })))
        .collect();
    let depends_on: BTreeMap<&str, Value> = c
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
