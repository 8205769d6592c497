//! The semantic check of a manifest that has the right shape: names the
//! outside world must accept, references between sections, and settings
//! typed by the catalog. Every rule reports with the position of the value
//! at fault and keeps going, so one run shows every problem.

use std::collections::{BTreeMap, BTreeSet};

use super::{Manifest, Service};
use crate::catalog::{Catalog, Entry};
use crate::diagnostic::{Diagnostic, did_you_mean, one_of};
use crate::document::tree::Kind;
use crate::document::{Document, Path, Target};
use crate::names;
use crate::units;

/// Backends restic understands besides a local path.
const REMOTE_BACKENDS: &[&str] = &["sftp", "rest", "s3", "b2", "azure", "gs", "swift", "rclone"];

/// Checks `manifest`, read from `doc`, against `catalog`.
pub fn validate(doc: &Document, manifest: &Manifest, catalog: &Catalog) -> Vec<Diagnostic> {
    let mut v = Validator {
        doc,
        manifest,
        catalog,
        out: Vec::new(),
    };
    v.association();
    v.engine();
    v.members();
    v.services();
    v.sender_addresses();
    v.proxy();
    v.backup();
    v.operations();
    v.public_address();
    v.out
}

struct Validator<'a> {
    doc: &'a Document,
    manifest: &'a Manifest,
    catalog: &'a Catalog,
    out: Vec<Diagnostic>,
}

impl<'a> Validator<'a> {
    fn push(&mut self, diagnostic: Diagnostic, path: &Path, target: Target) {
        self.out.push(self.doc.diag(diagnostic, path, target));
    }

    fn error(&mut self, code: &'static str, path: &Path, message: String, hint: Option<String>) {
        self.push(
            Diagnostic::error(code, message).with_hint_opt(hint),
            path,
            Target::Value,
        );
    }

    /// The line a value is on, for messages that point back at it.
    fn line_of(&self, path: &Path) -> usize {
        self.doc.locate(path, Target::Value).line
    }

    fn dns_name(&mut self, path: &Path, name: &str, what: &str) -> bool {
        match names::check_dns_name(name) {
            Ok(()) => true,
            Err(why) => {
                self.error(
                    "invalid-hostname",
                    path,
                    format!("`{name}` is not a valid {what}: {why}"),
                    Some("write a name like `pret.amis-quartier.org`".into()),
                );
                false
            }
        }
    }

    fn email(&mut self, path: &Path, address: &str) -> Option<(String, String)> {
        match names::check_email(address) {
            Ok((local, domain)) => Some((local.to_string(), domain.to_string())),
            Err(why) => {
                self.error(
                    "invalid-email",
                    path,
                    format!("`{address}` is not a mail address: {why}"),
                    Some("write an address like `bureau@amis-quartier.org`".into()),
                );
                None
            }
        }
    }

    fn association(&mut self) {
        let manifest = self.manifest;
        let a = &manifest.association;
        if a.name.trim().is_empty() {
            self.error(
                "empty-value",
                &"association.name".into(),
                "the association's name is empty".into(),
                Some("write the name members know it by".into()),
            );
        }
        self.dns_name(&"association.domain".into(), &a.domain, "domain");
        self.email(&"association.contact".into(), &a.contact);
        if a.timezone.parse::<chrono_tz::Tz>().is_err() {
            let hint = did_you_mean(&a.timezone, chrono_tz::TZ_VARIANTS.iter().map(|t| t.name()))
                .unwrap_or_else(|| "write an IANA zone name, like `Europe/Paris` or `UTC`".into());
            self.error(
                "unknown-timezone",
                &"association.timezone".into(),
                format!("`{}` is not a time zone", a.timezone),
                Some(hint),
            );
        }
        if let Some(mx) = &a.secondary_mx {
            let path = "association.secondary_mx".into();
            if self.dns_name(&path, mx, "host name") {
                let own = manifest
                    .services
                    .get(crate::dns::MAIL_ROLE)
                    .and_then(|s| s.host.as_deref());
                if own.is_none() {
                    self.push(
                        Diagnostic::warning(
                            "secondary-mx-without-mail",
                            "a backup mail server is named but the association runs no `mail` service",
                        )
                        .with_hint("add a `mail` service, or remove `secondary_mx`"),
                        &path,
                        Target::Value,
                    );
                } else if own.is_some_and(|h| h.eq_ignore_ascii_case(mx)) {
                    self.error(
                        "secondary-mx-is-primary",
                        &path,
                        format!("`{mx}` is the association's own mail server"),
                        Some("name the partner association's backup mail server here".into()),
                    );
                }
            }
        }
        if let Some(addr) = &a.public_address {
            if let Some(v4) = &addr.ipv4
                && v4.parse::<std::net::Ipv4Addr>().is_err()
            {
                self.error(
                    "invalid-address",
                    &"association.public_address.ipv4".into(),
                    format!("`{v4}` is not an IPv4 address"),
                    Some("write four numbers, like `203.0.113.7`".into()),
                );
            }
            if let Some(v6) = &addr.ipv6
                && v6.parse::<std::net::Ipv6Addr>().is_err()
            {
                self.error(
                    "invalid-address",
                    &"association.public_address.ipv6".into(),
                    format!("`{v6}` is not an IPv6 address"),
                    Some("write an address like `2001:db8::7`".into()),
                );
            }
        }
    }

    fn engine(&mut self) {
        let manifest = self.manifest;
        let Some(engine) = &manifest.engine else {
            return;
        };
        self.engine_host(&Path::from("engine"), &engine.host, engine.tls.is_some());
        if let Some(swarm) = &engine.swarm {
            self.swarm(swarm);
        }
    }

    /// An engine's address (`AT.host`) and whether it has `AT.tls`.
    fn engine_host(&mut self, at: &Path, host: &str, tls: bool) {
        let path = at.key("host");
        if let Some(rest) = host.strip_prefix("tcp://") {
            let name = rest.rsplit_once(':').map_or(rest, |(h, port)| {
                if port.parse::<u16>().is_err() {
                    self.error(
                        "invalid-engine",
                        &path,
                        format!("`{port}` is not a port number"),
                        Some("write `tcp://host:2376`".into()),
                    );
                }
                h
            });
            if name.parse::<std::net::IpAddr>().is_err() && name != "localhost" {
                self.dns_name(&path, name, "engine host");
            }
            if !tls {
                self.push(
                    Diagnostic::error("engine-without-tls", "a remote engine over `tcp://` must use TLS")
                        .with_hint("add `tls: { ca: certs/ca.pem, cert: certs/cert.pem, key: certs/key.pem }`: without it anyone on the network controls the engine"),
                    &path,
                    Target::Value,
                );
            }
        } else if let Some(socket) = host.strip_prefix("unix://") {
            if !socket.starts_with('/') {
                self.error(
                    "invalid-engine",
                    &path,
                    format!("the socket path `{socket}` is not absolute"),
                    Some("write `unix:///var/run/docker.sock`".into()),
                );
            }
            if tls {
                self.push(
                    Diagnostic::error("invalid-engine", "`tls` applies only to a `tcp://` engine")
                        .with_hint("remove `tls`, or give a `tcp://` host"),
                    &at.key("tls"),
                    Target::Key,
                );
            }
        } else {
            self.error(
                "invalid-engine",
                &path,
                format!("`{host}` is not an engine address"),
                Some("write `unix:///var/run/docker.sock` or `tcp://host:2376`".into()),
            );
        }
    }

    /// `engine.swarm`: its nodes, their engines, and where services are pinned.
    fn swarm(&mut self, swarm: &crate::manifest::Swarm) {
        if swarm.nodes.is_empty() {
            self.push(
                Diagnostic::error("swarm-without-nodes", "a swarm needs at least one node")
                    .with_hint("list each machine under `nodes:` by its name in `docker node ls`, with its engine's `host`"),
                &"engine.swarm.nodes".into(),
                Target::Value,
            );
        }
        if !swarm.encrypt {
            self.push(
                Diagnostic::warning(
                    "swarm-unencrypted",
                    "traffic between the swarm's machines is not encrypted",
                )
                .with_hint("passwords and mail cross between machines in clear: keep `encrypt: false` only on a private network of the association's own"),
                &"engine.swarm.encrypt".into(),
                Target::Value,
            );
        }
        if let Some(proxy) = self.loopback_proxy() {
            self.push(
                Diagnostic::error(
                    "swarm-loopback",
                    format!("the `{proxy}` proxy publishes services on this machine's loopback, which a swarm cannot do"),
                )
                .with_hint("a swarm serves the public: give the `proxy` service a real proxy entry (`traefik`), or remove `engine.swarm` for a local trial"),
                &"engine.swarm".into(),
                Target::Key,
            );
        }
        let mut pinned: BTreeMap<&str, &str> = BTreeMap::new();
        for (node, spec) in &swarm.nodes {
            let at = Path::from("engine.swarm.nodes").key(node.as_str());
            // A machine's own name, often a single label (`stockage`).
            let label_ok = |l: &str| {
                !l.is_empty()
                    && l.len() <= 63
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            };
            if node.len() > 253 || !node.split('.').all(label_ok) {
                self.push(
                    Diagnostic::error(
                        "invalid-hostname",
                        format!("`{node}` is not a machine's host name"),
                    )
                    .with_hint("write the node's name as `docker node ls` shows it"),
                    &at,
                    Target::Key,
                );
            }
            self.engine_host(&at, &spec.host, spec.tls.is_some());
            for (i, service) in spec.services.iter().enumerate() {
                let path = at.key("services").index(i);
                // The proxy is a service too, though it has its own section.
                if service != "proxy" && !self.manifest.services.contains_key(service) {
                    let mut known: Vec<&str> =
                        self.manifest.services.keys().map(String::as_str).collect();
                    known.push("proxy");
                    self.error(
                        "unknown-service",
                        &path,
                        format!("`{service}` is not a service of this manifest"),
                        Some(format!(
                            "write one of {}",
                            known
                                .iter()
                                .map(|k| format!("`{k}`"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )),
                    );
                } else if let Some(first) = pinned.insert(service, node) {
                    self.error(
                        "pinned-twice",
                        &path,
                        format!("`{service}` is pinned to `{first}` and to `{node}`"),
                        Some("a service's data lives on one machine: pin it to one node".into()),
                    );
                }
            }
        }
    }

    fn members(&mut self) {
        let domain = self.manifest.association.domain.clone();
        // With no valid domain, comparing mailboxes to it only adds noise.
        let domain_ok = names::check_dns_name(&domain).is_ok();
        let mut ids: BTreeMap<&str, usize> = BTreeMap::new();
        let mut mailboxes: BTreeMap<String, usize> = BTreeMap::new();
        let manifest = self.manifest;
        for (i, m) in manifest.members.iter().enumerate() {
            let base = Path::from("members").index(i);
            if let Err(why) = names::check_member_id(&m.id) {
                // From the id itself (`Loïc`), else from the name (`1042`).
                let hint = names::suggest_member_id(&m.id)
                    .or_else(|| names::suggest_member_id(&m.name))
                    .filter(|s| !ids.contains_key(s.as_str()))
                    .map_or_else(
                        || {
                            "ids become account names: write something like `alice` or `jean-luc`"
                                .to_string()
                        },
                        |s| format!("ids become account names: write `{s}`"),
                    );
                self.error(
                    "invalid-member-id",
                    &base.key("id"),
                    format!("`{}` is not a valid member id: {why}", m.id),
                    Some(hint),
                );
            } else if let Some(first) = ids.get(m.id.as_str()) {
                self.error(
                    "duplicate-member",
                    &base.key("id"),
                    format!(
                        "the member id `{}` is used twice (first on line {})",
                        m.id,
                        self.line_of(&Path::from("members").index(*first).key("id"))
                    ),
                    Some("give each member a distinct id".into()),
                );
            } else {
                ids.insert(&m.id, i);
            }
            if m.name.trim().is_empty() {
                self.error(
                    "empty-value",
                    &base.key("name"),
                    format!("the member `{}` has an empty name", m.id),
                    Some("write the name other members know them by".into()),
                );
            }
            if let Some(mailbox) = &m.mailbox {
                let path = base.key("mailbox");
                if let Some((local, mdomain)) = self.email(&path, mailbox) {
                    if domain_ok && mdomain != domain {
                        self.error(
                            "mailbox-outside-domain",
                            &path,
                            format!("the mailbox `{mailbox}` is not in the association's domain `{domain}`"),
                            Some(format!("write `{local}@{domain}`, or put an outside address under `contact:` instead")),
                        );
                    }
                    let key = mailbox.to_lowercase();
                    if let Some(first) = mailboxes.get(&key) {
                        self.error("duplicate-mailbox", &path, format!("the mailbox `{mailbox}` is used twice (first on line {})", self.line_of(&Path::from("members").index(*first).key("mailbox"))), Some("each member needs a mailbox of their own; use an alias to share one".into()));
                    } else {
                        mailboxes.insert(key, i);
                    }
                }
            }
            if let Some(contact) = &m.contact {
                self.email(&base.key("contact"), contact);
            }
            if m.mailbox.is_none() && m.contact.is_none() {
                // Some members have no address at all (an elderly household):
                // they sign in with the password `members credentials` prints.
                self.push(
                    Diagnostic::warning("unreachable-member", format!("the member `{}` has neither `mailbox` nor `contact`", m.id))
                        .with_hint(format!("voisin cannot mail them a sign-in link or a reminder: hand them the password `voisin members credentials {}` prints, or add a `contact:` address", m.id)),
                    &base,
                    Target::Value,
                );
            }
            if let Some(quota) = &m.quota
                && let Err(e) = units::parse_size(quota)
            {
                self.error("invalid-size", &base.key("quota"), e.message, Some(e.hint));
            }
        }
    }

    fn services(&mut self) {
        let roles: BTreeSet<&str> = self
            .catalog
            .roles()
            .into_iter()
            .filter(|r| *r != "proxy")
            .collect();
        let mut hosts: BTreeMap<String, String> = BTreeMap::new();
        let manifest = self.manifest;
        // Document order, so that "already used" points back at the first use.
        let mut order: Vec<&String> = manifest.services.keys().collect();
        if let Some(Kind::Map(entries)) = self.doc.root.get("services").map(|n| &n.kind) {
            let position = |name: &str| {
                entries
                    .iter()
                    .position(|(k, _)| k.scalar_text() == Some(name))
            };
            order.sort_by_key(|name| position(name));
        }
        for role in order {
            let service = &manifest.services[role];
            let base = Path::from("services").key(role.as_str());
            if !roles.contains(role.as_str()) {
                let hint = if role == "proxy" {
                    "the proxy has its own top-level `proxy:` section".to_string()
                } else {
                    did_you_mean(role, roles.iter().copied()).unwrap_or_else(|| {
                        format!(
                            "services are named by role: {}",
                            one_of(roles.iter().copied())
                        )
                    })
                };
                self.push(
                    Diagnostic::error(
                        "unknown-role",
                        format!("no catalog entry provides the role `{role}`"),
                    )
                    .with_hint(hint),
                    &base,
                    Target::Key,
                );
                continue;
            }
            let entry = self.entry_for(&base, role, &service.entry);
            self.host(&base, service, entry, &mut hosts);
            let Some(entry) = entry else {
                continue;
            };
            if let Some(proxy) = self.loopback_proxy()
                && !entry.works_on_loopback
                && !entry.containers.is_empty()
            {
                let why = if role == "mail" {
                    "mail needs a public domain name and certificates".to_string()
                } else {
                    format!("`{}` needs a public domain name", entry.name)
                };
                self.push(
                    Diagnostic::error(
                        "not-on-loopback",
                        format!(
                            "the `{role}` service cannot run behind the `{proxy}` proxy, which serves services on this machine only: {why}"
                        ),
                    )
                    .with_hint(format!(
                        "for a trial on this machine, keep only services that work locally (the lending board); to run `{role}` for real, remove `proxy: {{ use: {proxy} }}` and give a domain that points at this machine"
                    )),
                    &base.key("use"),
                    Target::Value,
                );
            }
            if !service.aliases.is_empty() {
                if role == "mail" {
                    self.aliases(&base, service);
                } else {
                    self.push(
                        Diagnostic::error(
                            "misplaced-key",
                            format!("`aliases` applies only to the mail service, not `{role}`"),
                        )
                        .with_hint("move the aliases under `services.mail`"),
                        &base.key("aliases"),
                        Target::Key,
                    );
                }
            }
            self.settings(&base, &service.settings, entry);
        }
    }

    /// Services that send mail get an account `ROLE@DOMAIN` on the mail
    /// service: no member's mailbox and no alias may take that address.
    fn sender_addresses(&mut self) {
        let manifest = self.manifest;
        if !manifest.services.contains_key("mail") {
            return;
        }
        let senders: BTreeSet<&str> = manifest
            .services
            .iter()
            .filter(|(_, s)| self.catalog.get(&s.entry).is_some_and(|e| e.sends_mail))
            .map(|(role, _)| role.as_str())
            .collect();
        let domain = &manifest.association.domain;
        for (i, member) in manifest.members.iter().enumerate() {
            let Some((local, _)) = member.mailbox.as_deref().and_then(|m| m.split_once('@')) else {
                continue;
            };
            if let Some(role) = senders.get(local.to_lowercase().as_str()) {
                self.error(
                    "reserved-address",
                    &Path::from("members").index(i).key("mailbox"),
                    format!(
                        "`{local}@{domain}` is the address the `{role}` service sends mail from"
                    ),
                    Some(format!("give `{}` another mailbox", member.id)),
                );
            }
        }
        if let Some(mail) = manifest.services.get("mail") {
            for alias in mail.aliases.keys() {
                if let Some(role) = senders.get(alias.to_lowercase().as_str()) {
                    self.push(
                        Diagnostic::error(
                            "reserved-address",
                            format!("`{alias}@{domain}` is the address the `{role}` service sends mail from"),
                        )
                        .with_hint("choose another name for the alias"),
                        &Path::from("services.mail.aliases").key(alias.as_str()),
                        Target::Key,
                    );
                }
            }
        }
    }

    fn entry_for(&mut self, base: &Path, role: &str, name: &str) -> Option<&'a Entry> {
        let path = base.key("use");
        let catalog = self.catalog;
        match catalog.get(name) {
            Some(entry) if entry.role == role => Some(entry),
            Some(entry) => {
                let same_role: Vec<&str> = catalog.of_role(role).map(|e| e.name.as_str()).collect();
                self.error(
                    "wrong-role",
                    &path,
                    format!("`{name}` provides `{}`, not `{role}`", entry.role),
                    Some(format!(
                        "for `{role}`, use {}",
                        one_of(same_role.iter().copied())
                    )),
                );
                None
            }
            None => {
                let same_role: Vec<&str> = catalog.of_role(role).map(|e| e.name.as_str()).collect();
                let hint = did_you_mean(name, catalog.entries.keys().map(String::as_str))
                    .unwrap_or_else(|| {
                        format!(
                            "for `{role}`, the catalog offers {}",
                            one_of(same_role.iter().copied())
                        )
                    });
                self.error(
                    "unknown-entry",
                    &path,
                    format!("the catalog has no entry named `{name}`"),
                    Some(hint),
                );
                None
            }
        }
    }

    fn host(
        &mut self,
        base: &Path,
        service: &Service,
        entry: Option<&Entry>,
        hosts: &mut BTreeMap<String, String>,
    ) {
        let role = base.segs().last().map_or_else(String::new, |s| match s {
            crate::document::Seg::Key(k) => k.clone(),
            crate::document::Seg::Index(i) => i.to_string(),
        });
        // With an unknown entry, still check the host that is given. Behind
        // a loopback proxy, services are reached by port: no host is needed.
        let entry_needs_host = entry.is_none_or(|e| e.needs_host);
        let needs_host = entry_needs_host && self.loopback_proxy().is_none();
        match (&service.host, needs_host) {
            // Kept for going live; unused behind the loopback proxy.
            (Some(_), false) if entry_needs_host => {}
            (None, true) if entry.is_none() => {}
            (None, true) => {
                let role_name = entry.map_or("service", |e| e.role.as_str());
                let example = format!("{role_name}.{}", self.manifest.association.domain);
                self.push(
                    Diagnostic::error(
                        "missing-host",
                        format!("the `{role}` service needs a `host`"),
                    )
                    .with_hint(format!(
                        "add `host: {example}`; it is the name members reach the service at"
                    )),
                    base,
                    Target::Key,
                );
            }
            (Some(_), false) => {
                self.push(
                    Diagnostic::warning(
                        "unused-host",
                        format!(
                            "`{}` has no public host; `host` is ignored",
                            entry.map_or("", |e| e.name.as_str())
                        ),
                    )
                    .with_hint("remove `host`"),
                    &base.key("host"),
                    Target::Key,
                );
            }
            (Some(host), true) => {
                let path = base.key("host");
                if self.dns_name(&path, host, "host name") {
                    self.outside_domain(&path, host);
                    if let Some(other) = hosts.get(host) {
                        self.error(
                            "duplicate-host",
                            &path,
                            format!("`{host}` is already the host of the `{other}` service"),
                            Some(
                                "give each service a host of its own, like `mail.…` and `cloud.…`"
                                    .into(),
                            ),
                        );
                    } else {
                        hosts.insert(host.clone(), role);
                    }
                }
            }
            (None, false) => {}
        }
    }

    /// A host outside the association's domain is allowed (a domain of a
    /// member's own), but its DNS records are not in the association's zone.
    fn outside_domain(&mut self, path: &Path, host: &str) {
        let domain = self.manifest.association.domain.as_str();
        if names::check_dns_name(domain).is_err()
            || host == domain
            || host.ends_with(&format!(".{domain}"))
        {
            return;
        }
        let first = host.split('.').next().unwrap_or(host);
        self.push(
            Diagnostic::warning(
                "host-outside-domain",
                format!("`{host}` is not in the association's domain `{domain}`"),
            )
            .with_hint(format!("write `{first}.{domain}`; a host elsewhere needs its records in that other domain's zone, which `voisin dns` does not print")),
            path,
            Target::Value,
        );
    }

    /// Mail cannot arrive at a machine DNS does not point to.
    fn public_address(&mut self) {
        let manifest = self.manifest;
        if manifest.association.public_address.is_some() {
            return;
        }
        let Some(mail) = manifest.services.get("mail") else {
            return;
        };
        if self
            .catalog
            .get(&mail.entry)
            .is_none_or(|e| e.role != "mail")
            || mail.host.is_none()
        {
            return;
        }
        self.push(
            Diagnostic::warning(
                "missing-public-address",
                "the mail service needs the machine's public address, and the association gives none",
            )
            .with_hint("add `public_address: { ipv4: 203.0.113.7 }` under `association` with the machine's address: other servers deliver mail to it, and `voisin dns` prints its MX and A records from it"),
            &Path::from("association"),
            Target::Key,
        );
    }

    fn aliases(&mut self, base: &Path, service: &Service) {
        let manifest = self.manifest;
        let members: Vec<&str> = manifest.members.iter().map(|m| m.id.as_str()).collect();
        let taken: BTreeSet<String> = manifest
            .members
            .iter()
            .filter_map(|m| m.mailbox.as_deref())
            .filter_map(|mb| mb.split_once('@').map(|(l, _)| l.to_lowercase()))
            .collect();
        let domain = manifest.association.domain.as_str();
        for (alias, targets) in &service.aliases {
            let path = base.key("aliases").key(alias.as_str());
            if let Some((local, at)) = alias.rsplit_once('@') {
                // People write the whole address; the key is only its local part.
                let hint = if at.eq_ignore_ascii_case(domain)
                    && names::check_local_part(local).is_ok()
                {
                    format!("an alias is the part before `@`: write `{local}`")
                } else {
                    format!(
                        "an alias is an address in `{domain}`: write the part before `@` alone, like `{}`",
                        local.split('@').next().unwrap_or("bureau")
                    )
                };
                self.push(
                    Diagnostic::error(
                        "invalid-alias",
                        format!("the alias `{alias}` is a whole address"),
                    )
                    .with_hint(hint),
                    &path,
                    Target::Key,
                );
            } else if let Err(why) = names::check_local_part(alias) {
                self.push(
                    Diagnostic::error(
                        "invalid-alias",
                        format!("`{alias}` cannot be an address: {why}"),
                    )
                    .with_hint("write letters, digits, `.`, `_` or `-`, like `bureau`"),
                    &path,
                    Target::Key,
                );
            } else if taken.contains(&alias.to_lowercase()) {
                self.push(
                    Diagnostic::error(
                        "alias-is-mailbox",
                        format!("`{alias}` is already a member's mailbox"),
                    )
                    .with_hint("an alias needs an address of its own"),
                    &path,
                    Target::Key,
                );
            }
            if targets.is_empty() {
                self.error(
                    "empty-alias",
                    &path,
                    format!("the alias `{alias}` delivers to nobody"),
                    Some("list at least one member id or address, like `[alice]` or `[alice, loic.perrin@free.fr]`".into()),
                );
            }
            for (i, target) in targets.iter().enumerate() {
                let tpath = path.index(i);
                if target.contains('@') {
                    // An outside address: mail is forwarded there.
                    self.email(&tpath, target);
                    continue;
                }
                let Some(member) = manifest.members.iter().find(|m| &m.id == target) else {
                    let hint = did_you_mean(target, members.iter().copied()).unwrap_or_else(|| {
                        "aliases deliver to members (their `id`) or to outside addresses (with `@`)"
                            .into()
                    });
                    self.error(
                        "unknown-member",
                        &tpath,
                        format!("no member has the id `{target}`"),
                        Some(hint),
                    );
                    continue;
                };
                if member.mailbox.is_none() && member.contact.is_none() {
                    self.error(
                        "member-without-mailbox",
                        &tpath,
                        format!("the member `{target}` has no address to deliver to"),
                        Some(format!(
                            "give `{target}` a `mailbox:` or a `contact:`, or remove them from the alias"
                        )),
                    );
                }
            }
        }
    }

    fn settings(
        &mut self,
        base: &Path,
        given: &BTreeMap<String, serde_json::Value>,
        entry: &Entry,
    ) {
        for (name, value) in given {
            let path = base.key("settings").key(name.as_str());
            let Some(setting) = entry.settings.get(name) else {
                let known = entry.settings.keys().map(String::as_str);
                let hint = did_you_mean(name, known.clone()).unwrap_or_else(|| {
                    if entry.settings.is_empty() {
                        format!("`{}` has no settings", entry.name)
                    } else {
                        format!("`{}` has the settings {}", entry.name, one_of(known))
                    }
                });
                self.push(
                    Diagnostic::error(
                        "unknown-setting",
                        format!("`{}` has no setting `{name}`", entry.name),
                    )
                    .with_hint(hint),
                    &path,
                    Target::Key,
                );
                continue;
            };
            if let Err(misfit) = setting.check(value) {
                let subject = match misfit.item {
                    Some(i) => format!("item {} of `{name}`", i + 1),
                    None => format!("`{name}`"),
                };
                let message = if misfit.message.starts_with("must ") {
                    format!("{subject} {}", misfit.message)
                } else {
                    format!("{subject}: {}", misfit.message)
                };
                let at = misfit.item.map_or_else(|| path.clone(), |i| path.index(i));
                self.error("invalid-setting", &at, message, misfit.hint);
            }
        }
        for (name, setting) in &entry.settings {
            if setting.default.is_none() && !given.contains_key(name) {
                self.push(
                    Diagnostic::error(
                        "missing-setting",
                        format!("`{}` needs the setting `{name}`", entry.name),
                    )
                    .with_hint(format!(
                        "add `{name}:` under `settings:` ({})",
                        setting.doc.trim_end_matches('.')
                    )),
                    base,
                    Target::Key,
                );
            }
        }
    }

    /// The proxy entry's name when it is a `loopback` one (a local trial).
    fn loopback_proxy(&self) -> Option<&'a str> {
        let name = self.manifest.proxy.as_ref()?.entry.as_str();
        self.catalog
            .get(name)
            .filter(|e| e.loopback)
            .map(|e| e.name.as_str())
    }

    fn proxy(&mut self) {
        let manifest = self.manifest;
        let Some(proxy) = &manifest.proxy else {
            if self.catalog.get(&super::default_proxy()).is_none()
                && self.manifest.services.values().any(|s| {
                    s.host.is_some() && self.catalog.get(&s.entry).is_some_and(|e| e.needs_host)
                })
            {
                self.push(
                    Diagnostic::error(
                        "unknown-entry",
                        format!(
                            "the catalog has no `{}` entry for the proxy",
                            super::default_proxy()
                        ),
                    )
                    .with_hint("add a `proxy:` section naming a proxy entry of the catalog"),
                    &Path::default(),
                    Target::Value,
                );
            }
            return;
        };
        let base = Path::from("proxy");
        if let Some(entry) = self.entry_for(&base, "proxy", &proxy.entry) {
            self.settings(&base, &proxy.settings, entry);
        }
        if let Some(email) = &proxy.acme_email {
            self.email(&base.key("acme_email"), email);
        }
    }

    fn backup(&mut self) {
        let manifest = self.manifest;
        let Some(backup) = &manifest.backup else {
            return;
        };
        let repo = &backup.repository;
        let path = Path::from("backup.repository");
        if repo.trim().is_empty() {
            self.error(
                "empty-value",
                &path,
                "the backup repository is empty".into(),
                Some("write an absolute path, like `/srv/voisin-backups`".into()),
            );
        } else if let Some((scheme, _)) = repo.split_once(':').filter(|(s, _)| !s.contains('/')) {
            if !REMOTE_BACKENDS.contains(&scheme) {
                let hint =
                    did_you_mean(scheme, REMOTE_BACKENDS.iter().copied()).unwrap_or_else(|| {
                        format!(
                            "write an absolute path, or one of {} followed by `:`",
                            one_of(REMOTE_BACKENDS.iter().copied())
                        )
                    });
                self.error(
                    "invalid-repository",
                    &path,
                    format!("`{scheme}:` is not a backup backend"),
                    Some(hint),
                );
            }
        } else if !repo.starts_with('/') {
            self.error("invalid-repository", &path, format!("the repository path `{repo}` is not absolute"), Some("write an absolute path, like `/srv/voisin-backups`, so it does not depend on where voisin runs".into()));
        }
        if backup.password_file.as_os_str().is_empty() {
            self.error(
                "empty-value",
                &"backup.password_file".into(),
                "the password file is empty".into(),
                Some("name the file holding the repository's password".into()),
            );
        }
        let keep = &backup.keep;
        let kpath = Path::from("backup.keep");
        if let Some(within) = &keep.within {
            match units::parse_duration(within) {
                Err(e) => self.error(
                    "invalid-duration",
                    &kpath.key("within"),
                    e.message,
                    Some(e.hint),
                ),
                Ok(d) if d.as_secs() < 3_600 => self.error(
                    "keep-too-short",
                    &kpath.key("within"),
                    format!("keeping snapshots `within: {within}` keeps less than an hour of them"),
                    Some("keep at least a day, like `within: 2d`".into()),
                ),
                Ok(_) => {}
            }
        }
        let counts = [
            keep.last,
            keep.hourly,
            keep.daily,
            keep.weekly,
            keep.monthly,
            keep.yearly,
        ];
        let any_count = counts.iter().flatten().any(|n| *n > 0);
        if keep.within.is_none() && !any_count {
            self.push(
                Diagnostic::error("keep-nothing", "this keep policy keeps no snapshot").with_hint(
                    "keep some, like `keep: { within: 2d, daily: 7, weekly: 4, monthly: 12 }`",
                ),
                &kpath,
                Target::Key,
            );
        } else if keep.within.is_none() {
            self.push(
                Diagnostic::warning("keep-counts-only", "this keep policy counts snapshots but keeps none by age")
                    .with_hint("add `within: 2d`: if backups go wrong for a while, counts alone can keep only the bad ones"),
                &kpath,
                Target::Key,
            );
        }
    }

    fn duration_at(&mut self, path: &Path, text: &str, at_least: u64, what: &str) {
        match units::parse_duration(text) {
            Err(e) => self.error("invalid-duration", path, e.message, Some(e.hint)),
            Ok(d) if d.as_secs() < at_least => self.error(
                "duration-too-short",
                path,
                format!("`{text}` is too short for {what}"),
                Some(format!("write at least `{}`", human_secs(at_least))),
            ),
            Ok(_) => {}
        }
    }

    #[allow(clippy::too_many_lines)]
    fn operations(&mut self) {
        let manifest = self.manifest;
        let Some(ops) = &manifest.operations else {
            return;
        };
        let base = Path::from("operations");
        if let Err(e) = units::parse_time_of_day(&ops.backup_at) {
            self.error(
                "invalid-time",
                &base.key("backup_at"),
                e.message,
                Some(e.hint),
            );
        }
        if let Err(e) = units::parse_weekly(&ops.verify_at) {
            self.error(
                "invalid-time",
                &base.key("verify_at"),
                e.message,
                Some(e.hint),
            );
        }
        // The watch and its reminders: more often than a minute is noise
        // that a small machine pays for.
        self.duration_at(&base.key("watch_every"), &ops.watch_every, 60, "the watch");
        self.duration_at(
            &base.key("remind_every"),
            &ops.remind_every,
            600,
            "reminders",
        );
        let limits = base.key("limits");
        for (key, text) in [
            ("snapshot_age", &ops.limits.snapshot_age),
            ("verified_age", &ops.limits.verified_age),
            ("certificate", &ops.limits.certificate),
        ] {
            self.duration_at(&limits.key(key), text, 3_600, "this limit");
        }
        if let Err(e) = units::parse_free_space(&ops.limits.disk_free) {
            self.error(
                "invalid-size",
                &limits.key("disk_free"),
                e.message,
                Some(e.hint),
            );
        }
        let Some(alerts) = &ops.alerts else {
            return;
        };
        let apath = base.key("alerts");
        if alerts.smtp.is_none() && alerts.webhook.is_none() {
            self.push(
                Diagnostic::error("no-alert-channel", "alerts have no channel").with_hint(
                    "add `smtp:` (an outside relay) or `webhook:` (like an ntfy topic), or both",
                ),
                &apath,
                Target::Key,
            );
        }
        self.alert_recipients(alerts, &apath);
        self.alert_channels(alerts, &apath);
    }

    fn alert_channels(&mut self, alerts: &super::Alerts, apath: &Path) {
        let manifest = self.manifest;
        if let Some(smtp) = &alerts.smtp {
            let spath = apath.key("smtp");
            if smtp.host.parse::<std::net::IpAddr>().is_err() {
                self.dns_name(&spath.key("host"), &smtp.host, "relay host name");
            }
            self.email(&spath.key("from"), &smtp.from);
            if smtp.security == super::SmtpSecurity::None
                && !smtp
                    .host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|a| a.is_loopback())
                && smtp.host != "localhost"
            {
                self.push(
                    Diagnostic::warning("smtp-unencrypted", format!("alerts go to `{}` unencrypted", smtp.host))
                        .with_hint("use `security: starttls` (port 587) or `tls` (port 465) for a relay across the internet"),
                    &spath.key("security"),
                    Target::Value,
                );
            }
            // An outside relay sends to the association's own domain through
            // the association's own mail server: the one that may be down.
            if manifest.services.contains_key("mail")
                && alerts.webhook.is_none()
                && self.recipients(alerts).iter().all(|a| self.own_domain(a))
            {
                self.push(
                    Diagnostic::warning("alerts-need-own-mail", "every alert address is in the association's own domain")
                        .with_hint("when the association's mail is down, no alert reaches them: add an outside address to `to`, or a `webhook`"),
                    apath,
                    Target::Key,
                );
            }
        }
        if let Some(hook) = &alerts.webhook {
            let hpath = apath.key("webhook").key("url");
            match hook.url.parse::<url::Url>() {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
                    if u.scheme() == "http"
                        && !u.host_str().is_some_and(|h| {
                            h == "localhost"
                                || h.parse::<std::net::IpAddr>()
                                    .is_ok_and(|a| a.is_loopback() || is_private(a))
                        })
                    {
                        self.push(
                            Diagnostic::warning(
                                "webhook-unencrypted",
                                "alerts go to the webhook unencrypted",
                            )
                            .with_hint("use an `https://` address"),
                            &hpath,
                            Target::Value,
                        );
                    }
                }
                _ => self.error(
                    "invalid-url",
                    &hpath,
                    format!("`{}` is not a web address", hook.url),
                    Some("write an address like `https://ntfy.sh/amis-quartier-alertes`".into()),
                ),
            }
        }
    }

    fn own_domain(&self, address: &str) -> bool {
        address
            .rsplit_once('@')
            .is_some_and(|(_, d)| d.eq_ignore_ascii_case(&self.manifest.association.domain))
    }

    /// The addresses alert mail goes to: `to` (members by id, or
    /// addresses), else the admins; a member's outside contact first.
    fn recipients(&self, alerts: &super::Alerts) -> Vec<String> {
        super::alert_recipients(self.manifest, alerts)
    }

    fn alert_recipients(&mut self, alerts: &super::Alerts, apath: &Path) {
        let manifest = self.manifest;
        for (i, to) in alerts.to.iter().enumerate() {
            let path = apath.key("to").index(i);
            if to.contains('@') {
                self.email(&path, to);
            } else if let Some(member) = manifest.members.iter().find(|m| &m.id == to) {
                if member.contact.is_none() && member.mailbox.is_none() {
                    self.error(
                        "member-unreachable",
                        &path,
                        format!("`{to}` has no address to send alerts to"),
                        Some(format!(
                            "give `{to}` a `contact` address outside the association"
                        )),
                    );
                }
            } else {
                let hint = did_you_mean(to, manifest.members.iter().map(|m| m.id.as_str()))
                    .unwrap_or_else(|| "name a member by id, or write an address".into());
                self.error(
                    "unknown-member",
                    &path,
                    format!("no member has the id `{to}`"),
                    Some(hint),
                );
            }
        }
        if alerts.smtp.is_some() && self.recipients(alerts).is_empty() {
            self.push(
                Diagnostic::error("no-alert-recipient", "alert mail has nobody to go to")
                    .with_hint("list addresses or member ids in `to`, or give a member `roles: [admin]` and a `contact`"),
                apath,
                Target::Key,
            );
        }
    }
}

/// Seconds as the shortest duration people write: `1h`, `10m`, `45s`.
fn human_secs(secs: u64) -> String {
    match secs {
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3_600 == 0 => format!("{}h", s / 3_600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// Addresses of a private network, where plain http stays on the premises.
fn is_private(address: std::net::IpAddr) -> bool {
    match address {
        std::net::IpAddr::V4(a) => a.is_private() || a.is_link_local(),
        std::net::IpAddr::V6(a) => a.is_unique_local() || a.is_unicast_link_local(),
    }
}
