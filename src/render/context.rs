//! What templates see. Two contexts per service: the ordinary one, and the
//! one for templates marked `secret: true`, which adds passwords, hashes and
//! keys. A template that is not marked cannot reach a secret, even by
//! mistake.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use sha2::{Digest as _, Sha256};
use tera::Context;

use super::state::Route;
use crate::catalog::PasswordHash;
use crate::manifest::{Locale, Manifest};
use crate::secrets::{Secret, Store, generate};

/// A service as templates see it.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceView {
    /// Its role (`mail`, `cloud`…), also its name.
    pub role: String,
    /// The catalog entry.
    pub entry: String,
    /// Its public host.
    pub host: Option<String>,
    /// Where people reach it: `https://HOST`, or `http://127.0.0.1:PORT`
    /// behind a `loopback` proxy; empty for a service with no web route.
    pub url: String,
    /// Its settings, defaults filled in.
    pub settings: BTreeMap<String, serde_json::Value>,
    /// Whether it sends mail through the association's mail service.
    #[serde(skip)]
    pub sends_mail: bool,
    /// Hashes of members' passwords its templates use.
    #[serde(skip)]
    pub member_hashes: Vec<PasswordHash>,
}

#[derive(Debug, Clone, Serialize)]
struct MemberView {
    id: String,
    name: String,
    /// Where mail for the member goes: the mailbox, else the outside contact.
    email: String,
    mailbox: Option<String>,
    contact: Option<String>,
    admin: bool,
    /// Absent (rather than null) without a quota, so `default` applies.
    #[serde(skip_serializing_if = "Option::is_none")]
    quota: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    password: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sha512_crypt: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    argon2: Option<String>,
}

/// Everything shared by the services' contexts, and the secrets store.
pub struct Inputs<'a> {
    manifest: &'a Manifest,
    slug: String,
    services: Vec<ServiceView>,
    store: &'a mut Store,
    /// The subnet of the edge network, which the proxy talks to services on.
    pub edge_subnet: String,
}

impl<'a> Inputs<'a> {
    /// Prepares the inputs, generating every secret the bundle needs.
    pub fn new(
        manifest: &'a Manifest,
        slug: &str,
        services: &[ServiceView],
        store: &'a mut Store,
    ) -> Self {
        let has = |role: &str| services.iter().any(|s| s.role == role);
        // The hashes the entries' templates use, made once with each password.
        let hashes: BTreeSet<PasswordHash> = services
            .iter()
            .flat_map(|s| s.member_hashes.iter().copied())
            .collect();
        for member in &manifest.members {
            let password = store.get_or_create(
                &format!("member.{}.password", member.id),
                generate::password,
            );
            for hash in &hashes {
                let (suffix, make): (&str, fn(&Secret) -> Secret) = match hash {
                    PasswordHash::Sha512Crypt => ("sha512_crypt", generate::sha512_crypt),
                    PasswordHash::Argon2 => ("argon2", generate::argon2),
                };
                store.get_or_create(&format!("member.{}.{suffix}", member.id), || {
                    make(&password)
                });
            }
        }
        for service in services {
            if service.sends_mail && has("mail") {
                let key = format!("{}.smtp_password", service.role);
                let password = store.get_or_create(&key, generate::password);
                store.get_or_create(&format!("{key}.sha512_crypt"), || {
                    generate::sha512_crypt(&password)
                });
            }
        }
        if has("mail") {
            store.get_or_create("mail.dkim_private_key", generate::dkim_key);
        }
        // A fixed /24 for the edge network, derived from the domain so that
        // two associations on one engine do not collide, in a range Docker
        // does not hand out by itself.
        let digest = Sha256::digest(manifest.association.domain.as_bytes());
        let edge_subnet = format!("10.213.{}.0/24", digest[0]);
        Self {
            manifest,
            slug: slug.to_string(),
            services: services.to_vec(),
            store,
            edge_subnet,
        }
    }

    /// The secrets store, for secrets generated while rendering containers.
    pub fn store(&mut self) -> &mut Store {
        self.store
    }

    fn secret(&self, name: &str) -> Option<String> {
        self.store.get(name).map(|s| s.expose().to_string())
    }

    /// The context of one service's templates; `secret` adds secrets.
    pub fn context(&self, service: &ServiceView, routes: &[Route], secret: bool) -> Context {
        let m = self.manifest;
        let a = &m.association;
        let mut c = Context::new();
        c.insert(
            "association",
            &serde_json::json!({
                "name": a.name,
                "domain": a.domain,
                "contact": a.contact,
                "locale": match a.locale { Locale::En => "en", Locale::Fr => "fr" },
                "timezone": a.timezone,
                "slug": self.slug,
            }),
        );
        let acme = m
            .proxy
            .as_ref()
            .and_then(|p| p.acme_email.clone())
            .unwrap_or_else(|| a.contact.clone());
        c.insert("proxy", &serde_json::json!({ "acme_email": acme }));
        c.insert(
            "network",
            &serde_json::json!({ "edge_subnet": self.edge_subnet }),
        );
        let services: BTreeMap<&str, serde_json::Value> = self
            .services
            .iter()
            .map(|s| {
                (
                    s.role.as_str(),
                    serde_json::json!({ "host": s.host, "entry": s.entry }),
                )
            })
            .collect();
        c.insert("services", &services);
        c.insert("members", &self.members(secret));

        let mail = self.services.iter().find(|s| s.role == "mail");
        self.insert_mail(&mut c, service);
        c.insert("routes", routes);
        let routed_hosts: Vec<&str> = routes.iter().map(|r| r.host.as_str()).collect();
        let certificate_hosts: Vec<&str> = self
            .services
            .iter()
            .filter_map(|s| s.host.as_deref())
            .filter(|h| !routed_hosts.contains(h))
            .collect();
        c.insert("certificate_hosts", &certificate_hosts);
        c.insert("settings", &service.settings);

        if secret {
            let senders: Vec<serde_json::Value> = self
                .services
                .iter()
                .filter(|s| s.sends_mail && mail.is_some())
                .map(|s| {
                    serde_json::json!({
                        "address": format!("{}@{}", s.role, a.domain),
                        "sha512_crypt": self.secret(&format!("{}.smtp_password.sha512_crypt", s.role)),
                    })
                })
                .collect();
            c.insert("mail_senders", &senders);
            let prefix = format!("{}.", service.role);
            let own: BTreeMap<String, String> = self
                .store
                .values()
                .filter_map(|(k, v)| {
                    k.strip_prefix(&prefix)
                        .map(|rest| (rest.to_string(), v.expose().to_string()))
                })
                .collect();
            c.insert("secrets", &own);
        }
        c.insert("service", service);
        c
    }

    /// `mail` (how this service reaches the mail server) and `aliases`.
    fn insert_mail(&self, c: &mut Context, service: &ServiceView) {
        let m = self.manifest;
        let a = &m.association;
        let mail = self.services.iter().find(|s| s.role == "mail");
        c.insert(
            "mail",
            &match mail {
                Some(mail) => serde_json::json!({
                    "host": mail.host,
                    // The public name, which the certificate is for; the
                    // mail server answers to it on its network.
                    "smtp_host": mail.host.clone().unwrap_or_else(|| "mail".into()),
                    "sender": format!("{}@{}", service.role, a.domain),
                }),
                None => serde_json::json!({ "host": "", "smtp_host": "", "sender": "" }),
            },
        );
        if service.role == "mail"
            && let Some(section) = m.services.get("mail")
        {
            let aliases: Vec<serde_json::Value> = section
                .aliases
                .iter()
                .map(|(alias, targets)| {
                    // A member id delivers to the mailbox, else forwards to
                    // the outside contact; an address (with `@`) is forwarded.
                    let targets: Vec<&str> = targets
                        .iter()
                        .filter_map(|target| {
                            if target.contains('@') {
                                return Some(target.as_str());
                            }
                            let x = m.members.iter().find(|x| &x.id == target)?;
                            x.mailbox.as_deref().or(x.contact.as_deref())
                        })
                        .collect();
                    serde_json::json!({ "address": format!("{alias}@{}", a.domain), "targets": targets })
                })
                .collect();
            c.insert("aliases", &aliases);
        } else {
            c.insert("aliases", &Vec::<serde_json::Value>::new());
        }
    }

    fn members(&self, secret: bool) -> Vec<MemberView> {
        let get = |name: String| if secret { self.secret(&name) } else { None };
        self.manifest
            .members
            .iter()
            .map(|m| MemberView {
                id: m.id.clone(),
                name: m.name.clone(),
                email: m
                    .mailbox
                    .clone()
                    .or_else(|| m.contact.clone())
                    .unwrap_or_default(),
                mailbox: m.mailbox.clone(),
                contact: m.contact.clone(),
                admin: m.roles.contains(&crate::manifest::Role::Admin),
                quota: m.quota.clone(),
                password: get(format!("member.{}.password", m.id)),
                sha512_crypt: get(format!("member.{}.sha512_crypt", m.id)),
                argon2: get(format!("member.{}.argon2", m.id)),
            })
            .collect()
    }
}

/// A member's initial credentials, for `voisin members credentials`.
pub fn member_password(store: &Store, id: &str) -> Option<Secret> {
    store.get(&format!("member.{id}.password")).cloned()
}
