//! Catalog lint: rules every entry must follow so that what voisin deploys
//! is reproducible and keeps secrets out of sight. `check` runs it on the
//! catalog in use, and the tests run it on the built-in one.

use std::collections::{BTreeMap, BTreeSet};

use super::load::Loaded;
use super::{Entry, SettingKind};
use crate::diagnostic::{Diagnostic, did_you_mean, one_of};
use crate::document::{Path, Target};

/// Words in an environment variable's name that mark it as a secret.
const SECRET_WORDS: &[&str] = &[
    "PASSWORD",
    "PASSWD",
    "SECRET",
    "TOKEN",
    "API_KEY",
    "PRIVATE_KEY",
];

/// Lints every entry; returns every finding.
pub fn lint(loaded: &Loaded) -> Vec<Diagnostic> {
    let mut found = Vec::new();
    for (name, entry) in &loaded.catalog.entries {
        let Some(doc) = loaded.documents.get(name) else {
            continue;
        };
        let at = |d: Diagnostic, path: &str, target| doc.diag(d, &Path::from(path), target);
        lint_containers(name, entry, &loaded.catalog.templates, &at, &mut found);
        lint_templates(
            name,
            entry,
            &loaded.catalog.template_sources,
            &at,
            &mut found,
        );
        lint_references(entry, &at, &mut found);
        lint_upstream(entry, &at, &mut found);
        lint_settings(entry, &at, &mut found);
    }
    // Reading order: file by file, top to bottom.
    found.sort_by(|a, b| {
        let key = |d: &Diagnostic| {
            d.location
                .as_ref()
                .map(|l| (l.file.clone(), l.line, l.column))
        };
        key(a).cmp(&key(b))
    });
    found
}

/// Places a finding at a path of the entry's document.
type At<'a> = dyn Fn(Diagnostic, &str, Target) -> Diagnostic + 'a;

fn lint_containers(
    name: &str,
    entry: &Entry,
    templates: &BTreeSet<String>,
    at: &At<'_>,
    found: &mut Vec<Diagnostic>,
) {
    for (cname, container) in &entry.containers {
        let base = format!("containers.{cname}");
        if !(2..=3).contains(&container.release_parts) {
            found.push(at(
                Diagnostic::error(
                    "release-parts",
                    format!(
                        "`release_parts` is {}, but release numbers have 2 or 3 parts",
                        container.release_parts
                    ),
                )
                .with_hint(
                    "leave it out for MAJOR.MINOR.PATCH, or give 2 for MAJOR.MINOR releases",
                ),
                &format!("{base}.release_parts"),
                Target::Value,
            ));
        } else if let Some(problem) = unpinned(&container.image, container.release_parts) {
            found.push(at(
                Diagnostic::error(
                    "unpinned-image",
                    format!("the image `{}` {problem}", container.image),
                )
                .with_hint(
                    "pin a release tag, like `traefik:v3.7.9`, so every deploy runs the same code",
                ),
                &format!("{base}.image"),
                Target::Value,
            ));
        }
        lint_secret_owners(&base, container, at, found);
        for (var, value) in &container.env {
            let upper = var.to_uppercase();
            let secret_like = SECRET_WORDS.iter().any(|w| upper.contains(w));
            if secret_like
                && !upper.ends_with("_FILE")
                && !value.is_empty()
                && !value.contains("{{")
            {
                found.push(at(
                        Diagnostic::error("literal-secret", format!("`{var}` holds a literal secret"))
                            .with_hint(format!(
                                "list the secret under `secrets:` and set `{var}_FILE` to its file instead"
                            )),
                        &format!("{base}.env.{var}"),
                        Target::Value,
                    ));
            }
        }
        for (i, file) in container.files.iter().enumerate() {
            // Absolute, in a folder of its own: `render --compose` mounts
            // each folder of files as a volume, which `/` cannot be.
            let folder = file.path.rsplit_once('/').map_or("", |(f, _)| f);
            if !file.path.starts_with('/')
                || folder.is_empty()
                || file.path.split('/').any(|part| part == "..")
            {
                found.push(at(
                    Diagnostic::error(
                        "file-path",
                        format!(
                            "the file path `{}` is not an absolute path inside a folder",
                            file.path
                        ),
                    )
                    .with_hint("give a path like `/etc/NAME/FILE`, without `..`"),
                    &format!("{base}.files[{i}].path"),
                    Target::Value,
                ));
            }
            let wanted = format!("{name}/{}", file.template);
            if !templates.contains(&wanted) {
                found.push(at(
                    Diagnostic::error(
                        "missing-template",
                        format!("the template `templates/{wanted}` does not exist"),
                    )
                    .with_hint(format!("add it under `templates/{name}/`, or fix the name")),
                    &format!("{base}.files[{i}].template"),
                    Target::Value,
                ));
            }
        }
    }
}

/// Each secret given an owner is one of the container's, owned by numbers.
fn lint_secret_owners(
    base: &str,
    container: &super::Container,
    at: &At<'_>,
    found: &mut Vec<Diagnostic>,
) {
    for (secret, owner) in &container.secret_owners {
        if !container.secrets.contains(secret) {
            found.push(at(
                Diagnostic::error(
                    "unknown-reference",
                    format!("no secret `{secret}` in this container's `secrets`"),
                )
                .with_hint(format!("add `{secret}` to `secrets`, or remove its owner")),
                &format!("{base}.secret_owners.{secret}"),
                Target::Key,
            ));
        }
        if crate::render::owner(owner).is_none() {
            found.push(at(
                Diagnostic::error(
                    "bad-owner",
                    format!("the owner `{owner}` of the secret `{secret}` is not `uid:gid`"),
                )
                .with_hint("give numbers, like `33:33`: the image's user names are not known here"),
                &format!("{base}.secret_owners.{secret}"),
                Target::Value,
            ));
        }
    }
}

/// Templates must parse: a typo in one is found by `check`, not at deploy.
fn lint_templates(
    name: &str,
    entry: &Entry,
    sources: &BTreeMap<String, String>,
    at: &At<'_>,
    found: &mut Vec<Diagnostic>,
) {
    for (cname, container) in &entry.containers {
        for (i, file) in container.files.iter().enumerate() {
            let key = format!("{name}/{}", file.template);
            let Some(source) = sources.get(&key) else {
                continue;
            };
            let mut templates = crate::render::templates::Templates::new();
            if let Err(e) = templates.add_file(&key, source) {
                found.push(at(
                    Diagnostic::error(
                        "bad-template",
                        format!("the template `templates/{key}` does not parse"),
                    )
                    .with_hint(e.to_string()),
                    &format!("containers.{cname}.files[{i}].template"),
                    Target::Value,
                ));
            }
        }
    }
}

/// Names that point inside the entry must exist: containers that others
/// depend on or run steps in, volumes to back up.
fn lint_references(entry: &Entry, at: &At<'_>, found: &mut Vec<Diagnostic>) {
    let containers: Vec<&str> = entry.containers.keys().map(String::as_str).collect();
    let volumes: BTreeSet<&str> = entry
        .containers
        .values()
        .flat_map(|c| c.volumes.keys().map(String::as_str))
        .collect();
    let mut unknown = |path: String, what: &str, name: &str, known: &[&str]| {
        let hint = did_you_mean(name, known.iter().copied())
            .unwrap_or_else(|| format!("the entry has {}", one_of(known.iter().copied())));
        found.push(at(
            Diagnostic::error(
                "unknown-reference",
                format!("no {what} `{name}` in this entry"),
            )
            .with_hint(hint),
            &path,
            Target::Value,
        ));
    };
    for (cname, container) in &entry.containers {
        for (i, dep) in container.depends_on.iter().enumerate() {
            if !containers.contains(&dep.as_str()) || dep == cname {
                unknown(
                    format!("containers.{cname}.depends_on[{i}]"),
                    "other container",
                    dep,
                    &containers,
                );
            }
        }
    }
    let mut steps: Vec<(String, &str)> = entry
        .after_start
        .iter()
        .enumerate()
        .map(|(i, s)| (format!("after_start[{i}].container"), s.container.as_str()))
        .collect();
    for (u, upgrade) in entry.upgrades.iter().enumerate() {
        for (kind, list) in [("steps", &upgrade.steps), ("checks", &upgrade.checks)] {
            steps.extend(list.iter().enumerate().map(|(i, s)| {
                (
                    format!("upgrades[{u}].{kind}[{i}].container"),
                    s.container.as_str(),
                )
            }));
        }
    }
    if let Some(backup) = &entry.backup {
        steps.extend(backup.before.iter().enumerate().map(|(i, s)| {
            (
                format!("backup.before[{i}].container"),
                s.container.as_str(),
            )
        }));
        steps.extend(
            backup
                .dumps
                .iter()
                .enumerate()
                .map(|(i, s)| (format!("backup.dumps[{i}].container"), s.container.as_str())),
        );
        steps.extend(
            backup
                .after
                .iter()
                .enumerate()
                .map(|(i, s)| (format!("backup.after[{i}].container"), s.container.as_str())),
        );
        let known: Vec<&str> = volumes.iter().copied().collect();
        for (i, volume) in backup.volumes.iter().enumerate() {
            if !volumes.contains(volume.as_str()) {
                unknown(format!("backup.volumes[{i}]"), "volume", volume, &known);
            }
        }
    }
    if let Some(restore) = &entry.restore {
        steps.extend(restore.before.iter().enumerate().map(|(i, s)| {
            (
                format!("restore.before[{i}].container"),
                s.container.as_str(),
            )
        }));
        steps.extend(restore.loads.iter().enumerate().map(|(i, s)| {
            (
                format!("restore.loads[{i}].container"),
                s.container.as_str(),
            )
        }));
        steps.extend(restore.after.iter().enumerate().map(|(i, s)| {
            (
                format!("restore.after[{i}].container"),
                s.container.as_str(),
            )
        }));
    }
    for (path, container) in steps {
        if !containers.contains(&container) {
            unknown(path, "container", container, &containers);
        }
    }
}

/// Each upstream contract and the certificate store name a container of
/// the entry, if any.
fn lint_upstream(entry: &Entry, at: &At<'_>, found: &mut Vec<Diagnostic>) {
    let containers: Vec<&str> = entry.containers.keys().map(String::as_str).collect();
    let named = entry
        .upstream
        .iter()
        .enumerate()
        .filter_map(|(i, c)| Some((format!("upstream[{i}].container"), c.container.as_ref()?)))
        .chain(
            entry
                .certificates
                .iter()
                .map(|c| ("certificates.container".to_string(), &c.container)),
        );
    for (path, name) in named {
        if !containers.contains(&name.as_str()) {
            let hint = did_you_mean(name, containers.iter().copied())
                .unwrap_or_else(|| format!("the entry has {}", one_of(containers.iter().copied())));
            found.push(at(
                Diagnostic::error(
                    "unknown-reference",
                    format!("no container `{name}` in this entry"),
                )
                .with_hint(hint),
                &path,
                Target::Value,
            ));
        }
    }
}

fn lint_settings(entry: &Entry, at: &At<'_>, found: &mut Vec<Diagnostic>) {
    for (sname, setting) in &entry.settings {
        let base = format!("settings.{sname}");
        let upper = sname.to_uppercase();
        if SECRET_WORDS.iter().any(|w| upper.contains(w)) && setting.default.is_some() {
            found.push(at(
                Diagnostic::error(
                    "literal-secret",
                    format!("the setting `{sname}` has a literal secret as default"),
                )
                .with_hint("secrets are generated by voisin; remove the default"),
                &format!("{base}.default"),
                Target::Value,
            ));
        }
        let wants_values = setting.kind == SettingKind::Enum
            || (setting.kind == SettingKind::List && setting.items == Some(SettingKind::Enum));
        if wants_values && setting.values.is_empty() {
            found.push(at(
                Diagnostic::error(
                    "setting-shape",
                    format!("the choice setting `{sname}` lists no `values`"),
                )
                .with_hint("add `values: [a, b]`"),
                &base,
                Target::Key,
            ));
        }
        if !wants_values && !setting.values.is_empty() {
            found.push(at(
                Diagnostic::error(
                    "setting-shape",
                    format!(
                        "`values` only applies to `enum` settings and lists of them, not `{sname}`"
                    ),
                )
                .with_hint("remove `values`, or make the type `enum`"),
                &format!("{base}.values"),
                Target::Key,
            ));
        }
        if setting.items.is_some() != (setting.kind == SettingKind::List) {
            found.push(at(
                Diagnostic::error(
                    "setting-shape",
                    format!("`items` goes with `type: list` and only with it (setting `{sname}`)"),
                )
                .with_hint("a list names the type of its items: `items: string`"),
                &base,
                Target::Key,
            ));
        }
        if let Some(default) = &setting.default
            && let Err(misfit) = setting.check(default)
        {
            found.push(at(
                Diagnostic::error(
                    "bad-default",
                    if misfit.message.starts_with("must ") {
                        format!("the default of `{sname}` {}", misfit.message)
                    } else {
                        format!("the default of `{sname}` is wrong: {}", misfit.message)
                    },
                )
                .with_hint_opt(misfit.hint),
                &format!("{base}.default"),
                Target::Value,
            ));
        }
    }
}

/// Says why an image reference is not pinned to one release, if it is not.
///
/// The rule, for a reference without a digest: the tag must begin with a
/// release number (an optional `v`, then numeric parts joined by dots),
/// ended by the end of the tag or a `-` and a variant (`34.0.3-apache`),
/// with at least `release_parts` parts (3 unless the project numbers its
/// releases `MAJOR.MINOR`, like `postgres`). Projects move shorter tags
/// (`v3.7`, `15`) and words (`latest`, `edge`, `apache`) to each new
/// release. A digest (`@sha256:…`) pins whatever the tag says.
pub fn unpinned(image: &str, release_parts: u8) -> Option<String> {
    if image.contains("@sha256:") {
        return None;
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    let tag = match last.split_once(':') {
        None => return Some("has no tag, so it means `latest`".into()),
        Some((_, "latest")) => return Some("is tagged `latest`, which moves".into()),
        Some((_, "")) => return Some("has an empty tag".into()),
        Some((_, tag)) => tag,
    };
    let number = tag.strip_prefix('v').unwrap_or(tag);
    let (number, _variant) = number.split_once('-').unwrap_or((number, ""));
    let parts: Vec<&str> = number.split('.').collect();
    if parts
        .iter()
        .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return Some(format!(
            "is tagged `{tag}`, which is not a release number and may move"
        ));
    }
    if parts.len() < usize::from(release_parts) {
        return Some(format!(
            "is tagged `{tag}`, a series that moves to each new release (a release has {release_parts} numbers, like `{}`)",
            if release_parts == 2 { "18.1" } else { "3.7.9" }
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::unpinned;

    #[test]
    fn images_must_name_a_tag_other_than_latest() {
        assert!(unpinned("traefik", 3).is_some());
        assert!(unpinned("traefik:latest", 3).is_some());
        assert!(unpinned("registry:5000/traefik", 3).is_some());
        assert!(unpinned("registry:5000/traefik:v3.7.1", 3).is_none());
        assert!(unpinned("postgres@sha256:abcd", 3).is_none());
    }

    #[test]
    fn minor_and_major_only_tags_are_refused() {
        for image in [
            "traefik:v3.7",
            "traefik:v3",
            "redis:8.2-alpine",
            "nextcloud:34-apache",
            "ghcr.io/docker-mailserver/docker-mailserver:15.1",
            "postgres:18",
        ] {
            let problem = unpinned(image, 3).unwrap_or_else(|| panic!("{image} passes"));
            assert!(
                problem.contains("a series that moves"),
                "{image}: {problem}"
            );
        }
        assert!(unpinned("postgres:18", 2).is_some());
    }

    #[test]
    fn release_tags_with_every_number_pass() {
        for image in [
            "traefik:v3.7.9",
            "redis:8.2.10-alpine",
            "nextcloud:34.0.3-apache",
            "ghcr.io/docker-mailserver/docker-mailserver:15.1.0",
            "voisin-board:0.1.0",
        ] {
            assert_eq!(unpinned(image, 3), None, "{image}");
        }
        assert_eq!(unpinned("postgres:18.1", 2), None);
        assert!(
            unpinned("postgres:18.1", 3).is_some(),
            "two numbers only pass where the entry says the project has two"
        );
    }

    #[test]
    fn words_are_not_release_tags() {
        for image in [
            "ghcr.io/docker-mailserver/docker-mailserver:edge",
            "nextcloud:apache",
            "traefik:v3.x",
            "busybox:1..2",
        ] {
            let problem = unpinned(image, 3).unwrap_or_else(|| panic!("{image} passes"));
            assert!(
                problem.contains("not a release number"),
                "{image}: {problem}"
            );
        }
    }
}
