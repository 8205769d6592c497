//! Resolve and render: manifest + catalog + secrets → [`DesiredState`].
//!
//! Pure apart from the secrets store, which generates what is missing the
//! first time; given the same secrets, the same manifest always renders to
//! the same bytes. Nothing here talks to Docker.

pub mod compose;
pub mod context;
pub mod state;
pub mod templates;

use std::collections::{BTreeMap, BTreeSet};

use tera::Context;

use crate::catalog::{Catalog, Container, Entry, Members, Step};
use crate::manifest::{Manifest, default_proxy};
use crate::secrets::{Secret, Store, generate};
use crate::units;
use context::{Inputs, ServiceView};
pub use state::DesiredState;
use state::{
    Attachment, CertificateSpec, ContainerSpec, Content, DumpSpec, Exec, FileSpec, HealthSpec,
    Mount, Network, Port, Route, ServiceBackup, ServiceEntry, UpgradePath, Volume,
};
use templates::Templates;

/// Why a manifest could not be rendered. The manifest has been checked
/// first, so these are problems of the catalog's entries and templates.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// A template failed: tera names the variable and shows the line.
    #[error("cannot render {what} of the catalog entry `{entry}`:\n{message}")]
    Template {
        /// The catalog entry.
        entry: String,
        /// Which template or field.
        what: String,
        /// tera's report (template text only, never a value).
        message: String,
    },
    /// A rendered value does not fit where it goes.
    #[error("the catalog entry `{entry}` gives {what} `{value}`, which {why}")]
    Value {
        /// The catalog entry.
        entry: String,
        /// Which field.
        what: String,
        /// The value (never a secret: only fields without secrets are checked).
        value: String,
        /// What is wrong.
        why: String,
    },
}

/// One service of the bundle: its role, manifest section and catalog entry.
struct Active<'a> {
    role: String,
    entry: &'a Entry,
    host: Option<String>,
    settings: BTreeMap<String, serde_json::Value>,
    /// Behind a `loopback` proxy: the port of 127.0.0.1 its route is published on.
    loopback_port: Option<u16>,
}

impl Active<'_> {
    /// Where people reach the service, when it has a web route.
    fn url(&self) -> String {
        match (self.loopback_port, &self.host) {
            (Some(port), _) => format!("http://127.0.0.1:{port}"),
            (None, Some(host)) if self.has_route() => format!("https://{host}"),
            _ => String::new(),
        }
    }

    fn has_route(&self) -> bool {
        self.entry.containers.values().any(|c| c.route.is_some())
    }
}

/// Renders `manifest` with `catalog`, taking secrets from `secrets` and
/// generating those that are missing.
pub fn render(
    manifest: &Manifest,
    catalog: &Catalog,
    secrets: &mut Store,
) -> Result<DesiredState, RenderError> {
    let active = active_services(manifest, catalog);
    let slug = slug(&manifest.association.domain);
    let mut inputs = Inputs::new(manifest, &slug, &active_views(&active), secrets);
    let mut templates = Templates::new();
    for (name, source) in &catalog.template_sources {
        templates
            .add_file(name, source)
            .map_err(|e| RenderError::Template {
                entry: name.split('/').next().unwrap_or_default().to_string(),
                what: format!("the template `templates/{name}`"),
                message: e.to_string(),
            })?;
    }

    let routes = routes(&slug, &active);
    let loopback = active.iter().any(|a| a.loopback_port.is_some());
    let mut state = DesiredState {
        association: slug.clone(),
        domain: manifest.association.domain.clone(),
        networks: Vec::new(),
        volumes: Vec::new(),
        containers: Vec::new(),
        routes: routes.clone(),
        after_start: Vec::new(),
        backups: Vec::new(),
        entries: Vec::new(),
        certificates: None,
        urls: active
            .iter()
            .map(|a| (a.role.clone(), a.url()))
            .filter(|(_, url)| !url.is_empty())
            .collect(),
    };
    // Behind a loopback proxy nothing runs between people and services,
    // so there is no edge network to fix a subnet for.
    if !loopback {
        state.networks.push(Network {
            name: format!("{slug}-edge"),
            subnet: Some(inputs.edge_subnet.clone()),
            labels: labels(manifest, None, None),
        });
    }
    let present: BTreeSet<&str> = active.iter().map(|a| a.role.as_str()).collect();
    for service in &active {
        if service.entry.containers.is_empty() {
            continue;
        }
        state.networks.push(Network {
            name: format!("{slug}-{}", service.role),
            subnet: None,
            labels: labels(manifest, Some(&service.role), None),
        });
        let mut renderer = ServiceRenderer {
            manifest,
            slug: &slug,
            service,
            templates: &mut templates,
            present: &present,
            mail_role: active
                .iter()
                .find(|a| a.role == "mail")
                .map(|a| (a.role.as_str(), a.entry)),
        };
        let context = inputs.context(&service_view(service), &routes, false);
        let secret_context = inputs.context(&service_view(service), &routes, true);
        let mut volumes = BTreeSet::new();
        let mut containers = Vec::new();
        for (name, container) in &service.entry.containers {
            volumes.extend(container.volumes.keys().cloned());
            containers.push(renderer.container(
                name,
                container,
                &context,
                &secret_context,
                inputs.store(),
            )?);
        }
        for volume in volumes {
            state.volumes.push(Volume {
                name: format!("{slug}-{}-{volume}", service.role),
                service: service.role.clone(),
                labels: labels(manifest, Some(&service.role), None),
            });
        }
        state.containers.extend(in_dependency_order(containers));
        state.after_start.extend(renderer.steps(
            &service.entry.after_start,
            &context,
            &secret_context,
        )?);
        renderer.extras(&mut state, &context, &secret_context)?;
    }
    for container in &mut state.containers {
        let hash = container.spec_hash();
        container.labels.insert("voisin.spec".into(), hash);
    }
    Ok(state)
}

/// The association's short name: the first label of its domain.
pub fn slug(domain: &str) -> String {
    domain.split('.').next().unwrap_or(domain).to_string()
}

fn labels(
    manifest: &Manifest,
    service: Option<&str>,
    container: Option<&str>,
) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    labels.insert(
        "voisin.association".into(),
        manifest.association.domain.clone(),
    );
    if let Some(s) = service {
        labels.insert("voisin.service".into(), s.to_string());
    }
    if let Some(c) = container {
        labels.insert("voisin.container".into(), c.to_string());
    }
    labels
}

fn active_services<'a>(manifest: &'a Manifest, catalog: &'a Catalog) -> Vec<Active<'a>> {
    let (proxy_name, proxy_given) = manifest
        .proxy
        .as_ref()
        .map_or((default_proxy(), BTreeMap::new()), |p| {
            (p.entry.clone(), p.settings.clone())
        });
    let proxy = catalog
        .get(&proxy_name)
        .map(|entry| (entry, with_defaults(entry, &proxy_given)));
    let loopback = proxy.as_ref().is_some_and(|(e, _)| e.loopback);
    let mut active = Vec::new();
    for (role, service) in &manifest.services {
        if let Some(entry) = catalog.get(&service.entry) {
            active.push(Active {
                role: role.clone(),
                entry,
                // A host given to an entry without one is ignored (`check`
                // warns about it).
                host: service.host.clone().filter(|_| entry.needs_host),
                settings: with_defaults(entry, &service.settings),
                loopback_port: None,
            });
        }
    }
    active.sort_by(|a, b| a.role.cmp(&b.role));
    if loopback && let Some((_, settings)) = &proxy {
        // Each web service on the next loopback port, in the order of roles.
        let first = settings
            .get("port")
            .and_then(serde_json::Value::as_u64)
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or(8080);
        let mut next = first;
        for service in active.iter_mut().filter(|a| a.has_route()) {
            service.loopback_port = Some(next);
            next = next.saturating_add(1);
        }
    }
    let wants_proxy = active
        .iter()
        .any(|a| a.host.is_some() || a.loopback_port.is_some());
    if wants_proxy && let Some((entry, settings)) = proxy {
        active.push(Active {
            role: "proxy".into(),
            entry,
            host: None,
            settings,
            loopback_port: None,
        });
        active.sort_by(|a, b| a.role.cmp(&b.role));
    }
    active
}

fn with_defaults(
    entry: &Entry,
    given: &BTreeMap<String, serde_json::Value>,
) -> BTreeMap<String, serde_json::Value> {
    entry
        .settings
        .iter()
        .filter_map(|(name, setting)| {
            given
                .get(name)
                .or(setting.default.as_ref())
                .map(|v| (name.clone(), v.clone()))
        })
        .collect()
}

fn service_view(service: &Active<'_>) -> ServiceView {
    ServiceView {
        role: service.role.clone(),
        entry: service.entry.name.clone(),
        host: service.host.clone(),
        url: service.url(),
        settings: service.settings.clone(),
        sends_mail: service.entry.sends_mail,
        member_hashes: service.entry.member_hashes.clone(),
    }
}

fn active_views(active: &[Active<'_>]) -> Vec<ServiceView> {
    active.iter().map(service_view).collect()
}

/// The web routes: each service's host to its container with a `route`.
fn routes(slug: &str, active: &[Active<'_>]) -> Vec<Route> {
    let mut routes = Vec::new();
    for service in active {
        let Some(host) = service
            .host
            .as_ref()
            .filter(|_| service.loopback_port.is_none())
        else {
            continue;
        };
        for (name, container) in &service.entry.containers {
            if let Some(route) = &container.route {
                routes.push(Route {
                    name: service.role.clone(),
                    host: host.clone(),
                    url: format!("http://{slug}-{}-{name}:{}", service.role, route.port),
                    dav_redirect: route.dav_redirect.clone(),
                    same_origin_frames: route.same_origin_frames,
                });
            }
        }
    }
    routes
}

/// Orders a service's containers so that each comes after those it depends on.
fn in_dependency_order(mut pending: Vec<ContainerSpec>) -> Vec<ContainerSpec> {
    let mut ordered: Vec<ContainerSpec> = Vec::with_capacity(pending.len());
    while !pending.is_empty() {
        let ready = pending
            .iter()
            .position(|c| {
                c.depends_on
                    .iter()
                    .all(|d| ordered.iter().any(|o| &o.name == d))
            })
            .unwrap_or(0);
        ordered.push(pending.remove(ready));
    }
    ordered
}

struct ServiceRenderer<'r, 'a> {
    manifest: &'a Manifest,
    slug: &'a str,
    service: &'a Active<'a>,
    templates: &'r mut Templates,
    present: &'r BTreeSet<&'a str>,
    mail_role: Option<(&'a str, &'a Entry)>,
}

impl ServiceRenderer<'_, '_> {
    fn entry(&self) -> &str {
        &self.service.entry.name
    }

    /// How the service is backed up and restored, with container names,
    /// volumes and commands resolved; `None` when its entry says nothing.
    fn backup(
        &mut self,
        context: &Context,
        secret_context: &Context,
    ) -> Result<Option<ServiceBackup>, RenderError> {
        let entry = self.service.entry;
        if entry.backup.is_none() && entry.restore.is_none() {
            return Ok(None);
        }
        let backup = entry.backup.clone().unwrap_or_default();
        let restore = entry.restore.clone().unwrap_or_default();
        let mut dumps = |list: &[crate::catalog::Dump]| -> Result<Vec<DumpSpec>, RenderError> {
            list.iter()
                .map(|d| {
                    Ok(DumpSpec {
                        container: self.full_name(&d.container),
                        user: d.user.clone(),
                        command: self.list(
                            &format!("the dump `{}`", d.file),
                            &d.command,
                            context,
                        )?,
                        file: d.file.clone(),
                    })
                })
                .collect()
        };
        let taken = dumps(&backup.dumps)?;
        let loads = dumps(&restore.loads)?;
        let slug = self.slug;
        let role = &self.service.role;
        Ok(Some(ServiceBackup {
            service: role.clone(),
            entry: format!("{}@{}", entry.name, entry.version),
            containers: entry.containers.keys().map(|c| self.full_name(c)).collect(),
            volumes: backup
                .volumes
                .iter()
                .map(|v| (v.clone(), format!("{slug}-{role}-{v}")))
                .collect(),
            before: self.steps(&backup.before, context, secret_context)?,
            dumps: taken,
            after: self.steps(&backup.after, context, secret_context)?,
            restore_before: self.steps(&restore.before, context, secret_context)?,
            loads,
            restore_after: self.steps(&restore.after, context, secret_context)?,
        }))
    }

    /// What the service adds besides its containers: its backup steps, its
    /// entry with its upgrade paths, and a proxy's certificate store.
    fn extras(
        &mut self,
        state: &mut DesiredState,
        context: &Context,
        secret_context: &Context,
    ) -> Result<(), RenderError> {
        if let Some(b) = self.backup(context, secret_context)? {
            state.backups.push(b);
        }
        state
            .entries
            .push(self.entry_state(context, secret_context)?);
        if state.certificates.is_none() {
            state.certificates = self.certificates();
        }
        Ok(())
    }

    /// The entry and version, with its upgrade paths resolved.
    fn entry_state(
        &mut self,
        context: &Context,
        secret_context: &Context,
    ) -> Result<ServiceEntry, RenderError> {
        let entry = self.service.entry;
        let mut upgrades = Vec::new();
        for u in &entry.upgrades {
            upgrades.push(UpgradePath {
                from: u.from.clone(),
                steps: self.steps(&u.steps, context, secret_context)?,
                checks: self.steps(&u.checks, context, secret_context)?,
            });
        }
        Ok(ServiceEntry {
            service: self.service.role.clone(),
            entry: entry.name.clone(),
            version: entry.version.clone(),
            upgrades,
        })
    }

    /// Where the service keeps certificates, when it is a proxy that says.
    fn certificates(&self) -> Option<CertificateSpec> {
        let store = self.service.entry.certificates.as_ref()?;
        Some(CertificateSpec {
            container: self.full_name(&store.container),
            path: store.path.clone(),
            format: store.format,
        })
    }

    fn full_name(&self, container: &str) -> String {
        format!("{}-{}-{container}", self.slug, self.service.role)
    }

    fn text(&mut self, what: &str, source: &str, context: &Context) -> Result<String, RenderError> {
        let owner = self.entry().to_string();
        self.templates
            .render_str(&owner, source, context)
            .map_err(|e| RenderError::Template {
                entry: owner,
                what: what.to_string(),
                message: e.to_string(),
            })
    }

    fn list(
        &mut self,
        what: &str,
        items: &[String],
        context: &Context,
    ) -> Result<Vec<String>, RenderError> {
        items.iter().map(|i| self.text(what, i, context)).collect()
    }

    fn invalid(&self, what: &str, value: &str, why: impl Into<String>) -> RenderError {
        RenderError::Value {
            entry: self.entry().to_string(),
            what: what.to_string(),
            value: value.to_string(),
            why: why.into(),
        }
    }

    fn seconds(&self, what: &str, text: &str) -> Result<u64, RenderError> {
        units::parse_duration(text)
            .map(|d| d.as_secs())
            .map_err(|e| self.invalid(what, text, e.message))
    }

    #[allow(clippy::too_many_lines)]
    fn container(
        &mut self,
        name: &str,
        spec: &Container,
        context: &Context,
        secret_context: &Context,
        store: &mut Store,
    ) -> Result<ContainerSpec, RenderError> {
        let full = self.full_name(name);
        let at = |field: &str| format!("`containers.{name}.{field}`");
        let mut env = BTreeMap::new();
        for (key, value) in &spec.env {
            env.insert(
                key.clone(),
                self.text(&at(&format!("env.{key}")), value, context)?,
            );
        }
        let mut files = Vec::new();
        for file in &spec.files {
            let path = self.text(&at("files.path"), &file.path, context)?;
            let template = format!("{}/{}", self.entry(), file.template);
            let rendered = self
                .templates
                .render_file(
                    &template,
                    if file.secret { secret_context } else { context },
                )
                .map_err(|e| RenderError::Template {
                    entry: self.entry().to_string(),
                    what: format!("the template `templates/{template}`"),
                    message: e.to_string(),
                })?;
            let (uid, gid) = owner(&file.owner)
                .ok_or_else(|| self.invalid(&at("files.owner"), &file.owner, "is not `uid:gid`"))?;
            files.push(FileSpec {
                path,
                mode: file.mode.clone(),
                uid,
                gid,
                content: if file.secret {
                    Content::Secret(Secret::new(rendered))
                } else {
                    Content::Text(rendered)
                },
            });
        }
        for secret in &spec.secrets {
            let value = store.get_or_create(
                &format!("{}.{secret}", self.service.role),
                generate::password,
            );
            let (uid, gid) = spec
                .secret_owners
                .get(secret)
                .or(spec.user.as_ref())
                .and_then(|o| owner(o))
                .unwrap_or((0, 0));
            files.push(FileSpec {
                path: format!("/run/secrets/{secret}"),
                mode: "0400".into(),
                uid,
                gid,
                content: Content::Secret(value),
            });
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));

        let mut mounts: Vec<Mount> = spec
            .volumes
            .iter()
            .map(|(volume, path)| Mount {
                volume: format!("{}-{}-{volume}", self.slug, self.service.role),
                path: path.clone(),
                read_only: false,
            })
            .collect();
        for borrowed in &spec.borrow {
            if self.present.contains(borrowed.role.as_str()) {
                mounts.push(Mount {
                    volume: format!("{}-{}-{}", self.slug, borrowed.role, borrowed.volume),
                    path: borrowed.path.clone(),
                    read_only: true,
                });
            }
        }

        let hostname = match &spec.hostname {
            Some(h) => Some(self.text(&at("hostname"), h, context)?),
            None => None,
        };
        // A container named for a public host (the mail server) answers to
        // that name on its network too, so that clients inside the bundle
        // connect to the name its certificate is for.
        let mut networks = vec![Attachment {
            network: format!("{}-{}", self.slug, self.service.role),
            aliases: std::iter::once(name.to_string())
                .chain(hostname.clone())
                .collect(),
        }];
        let behind_proxy = self.service.loopback_port.is_none();
        if behind_proxy && (spec.route.is_some() || self.service.role == "proxy") {
            networks.push(Attachment {
                network: format!("{}-edge", self.slug),
                aliases: Vec::new(),
            });
        }
        if let Some((mail_role, _)) = self.mail_role
            && mail_role != self.service.role
            && spec.secrets.iter().any(|s| s == "smtp_password")
        {
            networks.push(Attachment {
                network: format!("{}-{mail_role}", self.slug),
                aliases: vec![format!("{}-{name}", self.service.role)],
            });
        }
        networks.sort_by(|a, b| a.network.cmp(&b.network));

        let mut ports = Vec::new();
        for port in &spec.ports {
            ports.push(parse_port(port).ok_or_else(|| {
                self.invalid(
                    &at("ports"),
                    port,
                    "is not `HOST:CONTAINER` or `HOST:CONTAINER/udp`",
                )
            })?);
        }
        if let (Some(port), Some(route)) = (self.service.loopback_port, &spec.route) {
            ports.push(Port {
                host_ip: Some("127.0.0.1".into()),
                host: port,
                container: route.port,
                protocol: "tcp".into(),
            });
        }
        let health = match &spec.health {
            None => None,
            Some(h) => Some(HealthSpec {
                test: self.list(&at("health.test"), &h.test, context)?,
                interval_seconds: self.seconds(&at("health.interval"), &h.interval)?,
                timeout_seconds: self.seconds(&at("health.timeout"), &h.timeout)?,
                retries: h.retries,
                start_period_seconds: self.seconds(&at("health.start_period"), &h.start_period)?,
            }),
        };
        let memory = self.text(&at("limits.memory"), &spec.limits.memory, context)?;
        let memory_bytes = units::parse_size(&memory)
            .map_err(|e| self.invalid(&at("limits.memory"), &memory, e.message))?;
        let mut cap_add = spec.security.cap_add.clone();
        cap_add.sort();
        Ok(ContainerSpec {
            name: full.clone(),
            service: self.service.role.clone(),
            container: name.to_string(),
            image: spec.image.clone(),
            build: spec.build,
            hostname,
            entrypoint: self.list(&at("entrypoint"), &spec.entrypoint, context)?,
            command: self.list(&at("command"), &spec.command, context)?,
            user: spec.user.clone(),
            env,
            files,
            mounts,
            tmpfs: spec.tmpfs.clone(),
            networks,
            ports,
            health,
            depends_on: spec.depends_on.iter().map(|d| self.full_name(d)).collect(),
            memory_bytes,
            pids_limit: spec.limits.pids,
            cap_add,
            cap_drop: vec!["ALL".into()],
            security_opt: if spec.security.no_new_privileges {
                vec!["no-new-privileges:true".into()]
            } else {
                Vec::new()
            },
            read_only: spec.security.read_only,
            restart: "unless-stopped".into(),
            log_max_size: "10m".into(),
            log_max_files: 3,
            stop_grace_seconds: self.seconds(&at("stop_grace"), &spec.stop_grace)?,
            labels: labels(self.manifest, Some(&self.service.role), Some(name)),
        })
    }

    fn steps(
        &mut self,
        steps: &[Step],
        context: &Context,
        secret_context: &Context,
    ) -> Result<Vec<Exec>, RenderError> {
        let mut out = Vec::new();
        for step in steps {
            // Each run with whom or what it is for, named when it fails.
            let runs: Vec<(Context, Option<String>)> = if let Some(which) = step.for_members {
                let members = secret_context
                    .get("members")
                    .and_then(|m| m.as_array())
                    .map(<[tera::Value]>::to_vec)
                    .unwrap_or_default();
                members
                    .into_iter()
                    .filter(|m| match which {
                        Members::All => true,
                        Members::Admins => {
                            m.get_from_path("admin").and_then(tera::Value::as_bool) == Some(true)
                        }
                        Members::Mailboxes => {
                            m.get_from_path("mailbox").is_some_and(|v| !v.is_none())
                        }
                    })
                    .map(|m| {
                        let id = m
                            .get_from_path("id")
                            .and_then(tera::Value::as_str)
                            .map(|id| format!("member `{id}`"));
                        let mut c = secret_context.clone();
                        c.insert_value("member", m);
                        (c, id)
                    })
                    .collect()
            } else if let Some(setting) = &step.for_items_of {
                let items = self
                    .service
                    .settings
                    .get(setting)
                    .and_then(serde_json::Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                items
                    .into_iter()
                    .map(|item| {
                        let about = match &item {
                            serde_json::Value::String(s) => format!("`{s}`"),
                            other => format!("`{other}`"),
                        };
                        let mut c = context.clone();
                        c.insert("item", &item);
                        (c, Some(about))
                    })
                    .collect()
            } else {
                vec![(context.clone(), None)]
            };
            for (run, about) in runs {
                let what = format!("the step `{}`", step.doc);
                let mut env = BTreeMap::new();
                for (key, value) in &step.env {
                    // Step environments carry passwords: kept secret whatever they hold.
                    env.insert(
                        key.clone(),
                        Content::Secret(Secret::new(self.text(&what, value, &run)?)),
                    );
                }
                out.push(Exec {
                    doc: step.doc.clone(),
                    about,
                    container: self.full_name(&step.container),
                    user: step.user.clone(),
                    command: self.list(&what, &step.command, &run)?,
                    unless: self.list(&what, &step.unless, &run)?,
                    env,
                });
            }
        }
        Ok(out)
    }
}

/// Reads an owner given as `uid:gid` (or one number for both).
pub fn owner(text: &str) -> Option<(u32, u32)> {
    let (u, g) = text.split_once(':').unwrap_or((text, text));
    Some((u.parse().ok()?, g.parse().ok()?))
}

fn parse_port(text: &str) -> Option<Port> {
    let (ports, protocol) = text.split_once('/').unwrap_or((text, "tcp"));
    if protocol != "tcp" && protocol != "udp" {
        return None;
    }
    let (host, container) = ports.split_once(':')?;
    Some(Port {
        host_ip: None,
        host: host.parse().ok()?,
        container: container.parse().ok()?,
        protocol: protocol.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Source, load};

    fn rendered(example: &str) -> DesiredState {
        let catalog = load(&Source::BuiltIn).expect("built-in catalog").catalog;
        let path = format!("{}/examples/{example}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).expect("example");
        let checked = crate::manifest::check(example, &text, &catalog);
        let manifest = checked.manifest.expect("a valid example");
        let dir = tempfile::tempdir().expect("temp dir");
        let mut store = Store::empty(dir.path());
        render(&manifest, &catalog, &mut store).expect("renders")
    }

    #[test]
    fn containers_come_after_what_they_depend_on() {
        let state = rendered("full-association.yaml");
        let names: Vec<&str> = state.containers.iter().map(|c| c.name.as_str()).collect();
        for (i, c) in state.containers.iter().enumerate() {
            for dep in &c.depends_on {
                let at = names
                    .iter()
                    .position(|n| n == dep)
                    .expect("a known container");
                assert!(at < i, "{} comes before {dep}", c.name);
            }
        }
        assert_eq!(
            names,
            [
                "amis-quartier-board-board",
                "amis-quartier-cloud-db",
                "amis-quartier-cloud-redis",
                "amis-quartier-cloud-app",
                "amis-quartier-cloud-cron",
                "amis-quartier-mail-mail",
                "amis-quartier-proxy-traefik",
            ]
        );
    }

    #[test]
    fn services_that_send_mail_reach_the_mail_server_by_its_public_name() {
        let state = rendered("full-association.yaml");
        let app = state
            .containers
            .iter()
            .find(|c| c.container == "app")
            .expect("the cloud app");
        assert!(
            app.networks
                .iter()
                .any(|n| n.network == "amis-quartier-mail")
        );
        assert_eq!(app.env["SMTP_HOST"], "mail.amis-quartier.org");
        assert_eq!(app.env["SMTP_NAME"], "cloud@amis-quartier.org");
        let mail = state
            .containers
            .iter()
            .find(|c| c.container == "mail")
            .expect("the mail server");
        let on_mail_net = mail
            .networks
            .iter()
            .find(|n| n.network == "amis-quartier-mail")
            .expect("its own network");
        assert_eq!(on_mail_net.aliases, ["mail", "mail.amis-quartier.org"]);
        let db = state
            .containers
            .iter()
            .find(|c| c.container == "db")
            .expect("the database");
        assert_eq!(
            db.networks.len(),
            1,
            "the database is reachable from its own service only"
        );
    }

    #[test]
    fn the_proxy_routes_every_web_host_and_certifies_the_mail_host() {
        let state = rendered("full-association.yaml");
        let hosts: Vec<(&str, &str)> = state
            .routes
            .iter()
            .map(|r| (r.host.as_str(), r.url.as_str()))
            .collect();
        assert_eq!(
            hosts,
            [
                (
                    "pret.amis-quartier.org",
                    "http://amis-quartier-board-board:8080"
                ),
                (
                    "cloud.amis-quartier.org",
                    "http://amis-quartier-cloud-app:80"
                ),
            ]
        );
        let traefik = state
            .containers
            .iter()
            .find(|c| c.container == "traefik")
            .expect("the proxy");
        let dynamic = traefik
            .files
            .iter()
            .find(|f| f.path.ends_with("dynamic.yml"))
            .expect("dynamic config");
        assert!(
            dynamic
                .content
                .expose()
                .contains("Host(`mail.amis-quartier.org`)")
        );
        let mail = state
            .containers
            .iter()
            .find(|c| c.container == "mail")
            .expect("mail");
        assert!(
            mail.mounts
                .iter()
                .any(|m| m.volume == "amis-quartier-proxy-acme" && m.read_only)
        );
    }

    #[test]
    fn a_bundle_without_mail_has_no_mail_accounts_or_network() {
        let state = rendered("board-only.yaml");
        assert!(state.networks.iter().all(|n| !n.name.ends_with("-mail")));
        let board = state
            .containers
            .iter()
            .find(|c| c.container == "board")
            .expect("the board");
        assert_eq!(board.env["VOISIN_BOARD_SMTP_HOST"], "");
        assert_eq!(board.env["VOISIN_BOARD_LOCALE"], "fr");
        assert_eq!(
            board.env["VOISIN_BOARD_CATEGORIES"],
            "livres,dvd,outils,jeux,services"
        );
    }

    #[test]
    fn each_member_gets_a_cloud_account_and_admins_the_admin_group() {
        let state = rendered("full-association.yaml");
        let adds: Vec<&str> = state
            .after_start
            .iter()
            .filter(|e| e.command.get(2).is_some_and(|c| c == "user:add"))
            .map(|e| e.command.last().expect("an id").as_str())
            .collect();
        assert_eq!(adds, ["alice", "bob", "chloe", "david"]);
        let admins: Vec<&str> = state
            .after_start
            .iter()
            .filter(|e| e.command.get(2).is_some_and(|c| c == "group:adduser"))
            .map(|e| e.command.last().expect("an id").as_str())
            .collect();
        assert_eq!(admins, ["alice"]);
        let add = state
            .after_start
            .iter()
            .find(|e| e.command.get(2).is_some_and(|c| c == "user:add"))
            .expect("a step");
        assert!(
            add.env["OC_PASS"].is_secret(),
            "passwords reach occ as secret environment"
        );
    }
}
