//! The manifest's JSON Schema (draft-07), derived by schemars from the
//! manifest's types.
//!
//! Two forms: [`base`] is what `check`'s shape check walks; [`for_editors`]
//! completes it from the catalog, so that an editor offers each role's
//! entries for `use:` and each setting with its type, default and
//! documentation. `check` leaves those catalog rules to its meaning check,
//! which can say more than a schema can ("`docker-mailserver` provides
//! `mail`, not `cloud`"); both agree on what is valid.

use serde_json::{Map, Value, json};

use super::Manifest;
use crate::catalog::{Catalog, Entry, Setting, SettingKind};

/// The schema of the manifest's types alone.
pub fn base() -> Value {
    let generator = schemars::generate::SchemaSettings::draft07().into_generator();
    serde_json::to_value(generator.into_root_schema_for::<Manifest>()).unwrap_or_default()
}

/// The schema completed from `catalog`, as `voisin schema` prints it.
pub fn for_editors(catalog: &Catalog) -> Value {
    let mut root = base();
    let Some(definitions) = root.get_mut("definitions").and_then(Value::as_object_mut) else {
        return root;
    };
    let Some(service) = definitions.get("Service").cloned() else {
        return root;
    };
    let mut roles = Map::new();
    for role in catalog.roles().into_iter().filter(|r| *r != "proxy") {
        let entries: Vec<&Entry> = catalog.of_role(role).collect();
        let name = format!("{}Service", capitalise(role));
        definitions.insert(name.clone(), specialise(&service, role, &entries));
        roles.insert(
            role.to_string(),
            json!({ "$ref": format!("#/definitions/{name}") }),
        );
    }
    if let Some(proxy) = definitions.get("Proxy").cloned() {
        let entries: Vec<&Entry> = catalog.of_role("proxy").collect();
        definitions.insert("Proxy".into(), specialise(&proxy, "proxy", &entries));
    }
    if let Some(services) = root.pointer_mut("/properties/services") {
        // Roles the catalog offers are spelled out for editors; any other
        // key still reads as a service, so that `check` can explain that
        // no entry provides that role (with a suggestion).
        services["properties"] = Value::Object(roles);
    }
    root
}

fn capitalise(word: &str) -> String {
    word.split(['-', '_'])
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map_or_else(String::new, |c| c.to_uppercase().chain(chars).collect())
        })
        .collect()
}

/// A service (or proxy) schema whose `use:` lists the role's entries and
/// whose `settings` are typed when a single entry serves the role.
fn specialise(base: &Value, role: &str, entries: &[&Entry]) -> Value {
    let mut schema = base.clone();
    let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    if let Some(use_) = schema.pointer_mut("/properties/use") {
        use_["enum"] = json!(names);
        if let [only] = entries {
            use_["default"] = json!(only.name);
        }
    }
    let summaries: Vec<String> = entries
        .iter()
        .map(|e| format!("`{}`: {}", e.name, e.summary))
        .collect();
    schema["description"] = json!(format!("The `{role}` service. {}", summaries.join("; ")));
    if let ([only], Some(settings)) = (entries, schema.pointer_mut("/properties/settings")) {
        let properties: Map<String, Value> = only
            .settings
            .iter()
            .map(|(name, setting)| (name.clone(), setting_schema(setting)))
            .collect();
        *settings = json!({
            "description": format!("Settings of `{}` (`voisin catalog show {}`).", only.name, only.name),
            "type": "object",
            "properties": properties,
            "additionalProperties": false,
        });
    }
    schema
}

fn setting_schema(setting: &Setting) -> Value {
    let mut schema = kind_schema(setting.kind, setting);
    schema["description"] = json!(setting.doc);
    if let Some(default) = &setting.default {
        schema["default"] = default.clone();
    }
    schema
}

fn kind_schema(kind: SettingKind, setting: &Setting) -> Value {
    match kind {
        SettingKind::String => json!({ "type": "string" }),
        SettingKind::Integer => {
            let mut s = json!({ "type": "integer" });
            if let Some(min) = setting.min {
                s["minimum"] = json!(min);
            }
            if let Some(max) = setting.max {
                s["maximum"] = json!(max);
            }
            s
        }
        SettingKind::Boolean => json!({ "type": "boolean" }),
        SettingKind::Size => json!({
            "type": "string",
            "pattern": r"^\s*[0-9]+(\.[0-9]+)?\s*([kKMGT]i?[bB]|[bB])\s*$",
            "examples": ["5 GB", "500 MiB"],
        }),
        SettingKind::Duration => json!({
            "type": "string",
            "pattern": r"^([0-9]+[smhdwy])+$",
            "examples": ["21d", "12h"],
        }),
        SettingKind::Enum => json!({ "type": "string", "enum": setting.values }),
        SettingKind::List => {
            let item = setting.items.unwrap_or(SettingKind::String);
            json!({ "type": "array", "items": kind_schema(item, setting) })
        }
        SettingKind::Email => json!({ "type": "string", "format": "email" }),
        SettingKind::Hostname => json!({ "type": "string", "format": "hostname" }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Source, load};

    #[test]
    fn offers_each_roles_entries_and_typed_settings() {
        let catalog = load(&Source::BuiltIn).expect("built-in catalog").catalog;
        let schema = for_editors(&catalog);
        assert_eq!(
            schema["properties"]["services"]["properties"]["board"]["$ref"],
            "#/definitions/BoardService"
        );
        let board = &schema["definitions"]["BoardService"];
        assert_eq!(board["properties"]["use"]["enum"], json!(["voisin-board"]));
        let loan = &board["properties"]["settings"]["properties"]["loan_period"];
        assert_eq!(loan["default"], "21d");
        assert_eq!(loan["type"], "string");
        let apps =
            &schema["definitions"]["CloudService"]["properties"]["settings"]["properties"]["apps"];
        assert_eq!(apps["items"]["enum"][0], "calendar");
        assert_eq!(
            schema["definitions"]["Proxy"]["properties"]["use"]["enum"],
            json!(["local", "traefik"])
        );
    }

    #[test]
    fn capitalises_role_names_for_definitions() {
        assert_eq!(capitalise("board"), "Board");
        assert_eq!(capitalise("time-bank"), "TimeBank");
    }
}
