//! What each entry relies on in its upstream images, as people read it:
//! `voisin catalog show NAME --upstream` and `docs/catalog.md` both come
//! from the entries' `upstream:` lists, so they cannot disagree.

use std::fmt::Write as _;

use super::{Catalog, Entry};

/// An image reference split into the image and its tag (or digest).
pub fn image_and_tag(image: &str) -> (&str, &str) {
    if let Some((name, digest)) = image.split_once('@') {
        return (name, digest);
    }
    let slash = image.rfind('/').map_or(0, |i| i + 1);
    match image[slash..].rfind(':') {
        Some(colon) => (&image[..slash + colon], &image[slash + colon + 1..]),
        None => (image, ""),
    }
}

/// The contracts of one container (`None`: those of the whole entry).
fn of_container<'a>(
    entry: &'a Entry,
    container: Option<&'a str>,
) -> impl Iterator<Item = &'a super::Contract> + 'a {
    entry
        .upstream
        .iter()
        .filter(move |c| c.container.as_deref() == container)
}

/// The text `catalog show NAME --upstream` prints.
pub fn text(entry: &Entry) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} {} ({}): what it relies on in the upstream images",
        entry.name, entry.version, entry.role
    );
    let mut any = false;
    for (name, container) in &entry.containers {
        let _ = writeln!(out, "\n{name}: {}", container.image);
        for contract in of_container(entry, Some(name)) {
            any = true;
            let _ = writeln!(out, "  - {}", contract.what);
            let _ = writeln!(out, "    source: {}", contract.source);
        }
    }
    let general: Vec<_> = of_container(entry, None).collect();
    if !general.is_empty() {
        let _ = writeln!(out, "\nthe whole entry:");
        for contract in general {
            any = true;
            let _ = writeln!(out, "  - {}", contract.what);
            let _ = writeln!(out, "    source: {}", contract.source);
        }
    }
    if !any {
        let _ = writeln!(
            out,
            "\nno upstream contract is listed: the entry has no `upstream:`"
        );
    }
    out
}

/// `docs/catalog.md`: one table per entry, with each container's image and
/// tag, every contract and its source.
pub fn markdown(catalog: &Catalog) -> String {
    let mut out = String::from(
        "# The catalog against its upstream images\n\n\
         <!-- Generated from the `upstream:` lists of catalog/*.yaml by\n\
         `VOISIN_UPDATE_DOCS=1 cargo test --test integration catalog_docs`: edit the entries, not this file. -->\n\n\
         What each built-in entry relies on in the images it runs — an\n\
         environment variable, a path and its format, a capability, a health\n\
         command — and where upstream says so: a repository path at the pinned\n\
         tag (`owner/repo@TAG:path`) or a documentation page. The same list is\n\
         printed by `voisin catalog show NAME --upstream`, and each entry cites\n\
         the source again in a comment beside the setting.\n\n\
         An entry's `upgrades:` section (each path's `from` versions, its\n\
         `steps` and `checks`) says how a deployed earlier version moves to\n\
         this one and which versions cannot be skipped: see\n\
         [operations.md](operations.md#upgrades).\n",
    );
    let mut entries: Vec<&Entry> = catalog.entries.values().collect();
    entries.sort_by(|a, b| (&a.role, &a.name).cmp(&(&b.role, &b.name)));
    for entry in entries {
        let _ = write!(
            out,
            "\n## {} {} ({})\n\n{}\n\n| Container | Image | Tag | Relied on | Source |\n|---|---|---|---|---|\n",
            entry.name, entry.version, entry.role, entry.summary
        );
        for (name, container) in &entry.containers {
            let (image, tag) = image_and_tag(&container.image);
            let mut first = true;
            let contracts: Vec<_> = of_container(entry, Some(name)).collect();
            if contracts.is_empty() {
                let _ = writeln!(out, "| {name} | `{image}` | `{tag}` | (none listed) | |");
            }
            for contract in contracts {
                if first {
                    let _ = write!(out, "| {name} | `{image}` | `{tag}` ");
                    first = false;
                } else {
                    out.push_str("| | | ");
                }
                let _ = writeln!(
                    out,
                    "| {} | {} |",
                    cell(&contract.what),
                    cell(&contract.source)
                );
            }
        }
        for contract in of_container(entry, None) {
            let _ = writeln!(
                out,
                "| (entry) | | | {} | {} |",
                cell(&contract.what),
                cell(&contract.source)
            );
        }
    }
    out
}

/// A table cell: `|` would end it.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::image_and_tag;

    #[test]
    fn splits_images_from_tags_past_a_registry_port() {
        assert_eq!(image_and_tag("traefik:v3.7.9"), ("traefik", "v3.7.9"));
        assert_eq!(
            image_and_tag("ghcr.io/docker-mailserver/docker-mailserver:15.1.0"),
            ("ghcr.io/docker-mailserver/docker-mailserver", "15.1.0")
        );
        assert_eq!(
            image_and_tag("registry:5000/app"),
            ("registry:5000/app", "")
        );
        assert_eq!(
            image_and_tag("postgres@sha256:abcd"),
            ("postgres", "sha256:abcd")
        );
    }
}
