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
    generator.into_root_schema_for::<Manifest>().to_value()
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
            "pattern": crate::units::SIZE_PATTERN,
            "examples": ["5 GB", "500 MiB"],
        }),
        SettingKind::Duration => json!({
            "type": "string",
            "pattern": crate::units::DURATION_PATTERN,
            "examples": ["21d", "12h"],
        }),
        SettingKind::Enum => json!({ "type": "string", "enum": setting.values }),
        SettingKind::List => {
            let item = setting.items.unwrap_or(SettingKind::String);
            let mut items = kind_schema(item, setting);
            if item == SettingKind::String {
                // Lists reach containers comma-separated.
                items["pattern"] = json!("^[^,]*$");
            }
            json!({ "type": "array", "items": items })
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

    /// Sizes and durations as people write them, right and wrong.
    const MEASURES: &[&str] = &[
        "5 GB", "5gb", "5 mb", "500MiB", "500 mib", "1.5 TB", "0 B", "5 b", " 5 GB ", "5", "5 Go",
        "500 Mo", "2,5 GB", "GB", "5 GX", "1.2.3 GB", "5. GB", ".5 GB", "5 KiB", "-5 GB", "21d",
        "1h30m", "21", " 21d", "3 days", "d", "", "2w", "1y", "21D", "21 d", "12h ", "1e3 MB",
        "5\tGB", "５ GB",
    ];

    fn editor_validator(schema: &Value) -> jsonschema::Validator {
        jsonschema::validator_for(schema).expect("the editor schema compiles")
    }

    #[test]
    fn every_typed_setting_gets_the_same_verdict_from_the_schema_and_check() {
        let catalog = load(&Source::BuiltIn).expect("built-in catalog").catalog;
        let mut compared = 0;
        for entry in catalog.entries.values() {
            for (name, setting) in &entry.settings {
                let schema = setting_schema(setting);
                let validator = editor_validator(&schema);
                let mut values: Vec<Value> = MEASURES.iter().map(|m| json!(m)).collect();
                values.extend([json!(5), json!(true), json!(null), json!(["a", "b, c"])]);
                values.extend(setting.values.iter().map(|v| json!(v)));
                values.extend(setting.values.iter().map(|v| json!([v])));
                values.push(json!(["jeux, jouets"]));
                for value in values {
                    let by_check = setting.check(&value).is_ok();
                    let by_schema = validator.is_valid(&value);
                    assert_eq!(
                        by_check,
                        by_schema,
                        "`{}` setting `{name}` ({}): check says {by_check}, the schema {by_schema} for {value}",
                        entry.name,
                        setting.type_label()
                    );
                    compared += 1;
                }
            }
        }
        assert!(compared > 100, "only {compared} values compared");
    }

    #[test]
    fn quotas_durations_and_settings_of_a_whole_manifest_get_the_same_verdict() {
        let catalog = load(&Source::BuiltIn).expect("built-in catalog").catalog;
        let text = include_str!("../../examples/full-association.yaml");
        let doc = crate::document::Document::parse("full.yaml", text).expect("parses");
        let manifest = super::super::read(&doc).value.expect("reads");
        let base_value = serde_json::to_value(&manifest).expect("serialises");
        let validator = editor_validator(&for_editors(&catalog));
        let mut places: Vec<String> = vec!["/members/1/quota".into(), "/backup/keep/within".into()];
        for (role, service) in &manifest.services {
            let entry = catalog.get(&service.entry).expect("known entry");
            for (name, setting) in &entry.settings {
                if matches!(setting.kind, SettingKind::Size | SettingKind::Duration) {
                    places.push(format!("/services/{role}/settings/{name}"));
                }
            }
        }
        assert!(places.len() > 4, "too few places: {places:?}");
        for place in &places {
            for measure in MEASURES {
                let mut value = base_value.clone();
                let (parent, key) = place.rsplit_once('/').expect("a pointer");
                value
                    .pointer_mut(parent)
                    .and_then(Value::as_object_mut)
                    .expect("the parent exists")
                    .insert(key.to_string(), json!(measure));
                // JSON is YAML: `check` reads the very document the schema judges.
                let text = serde_json::to_string(&value).expect("serialises");
                let by_check = super::super::check("m.yaml", &text, &catalog).is_valid();
                let by_schema = validator.is_valid(&value);
                assert_eq!(
                    by_check, by_schema,
                    "{place} = {measure:?}: check says {by_check}, the schema {by_schema}"
                );
            }
        }
    }

    #[test]
    fn capitalises_role_names_for_definitions() {
        assert_eq!(capitalise("board"), "Board");
        assert_eq!(capitalise("time-bank"), "TimeBank");
    }
}
