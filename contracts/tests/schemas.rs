//! The schema files themselves: each is a valid JSON Schema 2020-12 document, names the event and version
//! it is registered under, and every file in `schemas/` is registered.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use serde_json::Value;

#[test]
fn every_schema_is_a_valid_json_schema() {
    for schema in contracts::schemas() {
        let document: Value = serde_json::from_str(schema.source).unwrap();
        jsonschema::meta::validate(&document).unwrap_or_else(|e| {
            panic!("{} v{}: {e}", schema.event_type, schema.version);
        });
        assert_eq!(
            document["$schema"], "https://json-schema.org/draft/2020-12/schema",
            "{} v{}",
            schema.event_type, schema.version
        );
    }
}

#[test]
fn every_schema_names_its_event_type_and_version() {
    for schema in contracts::schemas() {
        let document: Value = serde_json::from_str(schema.source).unwrap();
        let id = document["$id"].as_str().unwrap();
        assert!(
            id.ends_with(&format!("/{}/{}", schema.event_type, schema.version)),
            "{id} for {} v{}",
            schema.event_type,
            schema.version
        );
        assert_eq!(
            document["title"],
            format!("{} v{}", schema.event_type, schema.version)
        );
    }
}

#[test]
fn every_schema_file_is_registered() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
    let on_disk: BTreeSet<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|entry| fs::read_to_string(entry.unwrap().path()).unwrap())
        .collect();
    let registered: BTreeSet<String> = contracts::schemas()
        .iter()
        .map(|schema| schema.source.to_owned())
        .collect();
    assert_eq!(on_disk, registered);
}

/// The rule that makes adding a field backward compatible: no object in a schema closes itself to
/// fields it does not list.
#[test]
fn no_schema_forbids_additional_properties() {
    fn walk(value: &Value, at: &str) {
        match value {
            Value::Object(map) => {
                assert_ne!(
                    map.get("additionalProperties"),
                    Some(&Value::Bool(false)),
                    "{at}"
                );
                assert!(!map.contains_key("unevaluatedProperties"), "{at}");
                for (key, child) in map {
                    walk(child, &format!("{at}/{key}"));
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    walk(child, &format!("{at}/{i}"));
                }
            }
            _ => {}
        }
    }
    for schema in contracts::schemas() {
        walk(
            &serde_json::from_str(schema.source).unwrap(),
            &format!("{} v{}", schema.event_type, schema.version),
        );
    }
}
