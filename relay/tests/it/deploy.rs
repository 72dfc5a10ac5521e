//! What `deploy/` and docker-compose.yml ship, checked without a Docker engine or a cluster (neither runs
//! here): every YAML file parses, the Kubernetes manifests run the same two relays as docker-compose.yml
//! (one per service database, the invoices one with a slot of its own), every `OUTBOX_RELAY_*` variable
//! they set is a documented key, and each Dockerfile builds and starts a binary the workspace has.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use serde_yaml_ng::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every file under `dir` (recursively) whose name ends with one of `suffixes`, sorted.
fn files(dir: &Path, suffixes: &[&str]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files(&path, suffixes));
        } else if suffixes
            .iter()
            .any(|s| path.file_name().unwrap().to_str().unwrap().ends_with(s))
        {
            found.push(path);
        }
    }
    found.sort();
    found
}

/// Every document of a (possibly multi-document) YAML file.
fn documents(path: &Path) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(&read(path))
        .map(|document| {
            Value::deserialize(document).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        })
        .collect()
}

fn text(value: &Value) -> &str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value:?}"))
}

#[test]
fn every_yaml_file_parses() {
    let mut paths = files(&root().join("deploy"), &[".yaml", ".yml"]);
    paths.push(root().join("docker-compose.yml"));
    assert!(paths.len() >= 5, "{paths:?}");
    for path in paths {
        let documents = documents(&path);
        assert!(
            !documents.is_empty() && documents.iter().all(Value::is_mapping),
            "{}: not a YAML mapping",
            path.display()
        );
    }
}

/// A container of a Kubernetes Deployment, its environment as name → value or `secret/key`.
struct Container {
    deployment: String,
    image: String,
    env: BTreeMap<String, String>,
}

fn kubernetes_containers() -> Vec<Container> {
    let mut containers = Vec::new();
    for path in files(&root().join("deploy/kubernetes"), &[".yaml"]) {
        for document in documents(&path) {
            if document["kind"] != "Deployment" {
                continue;
            }
            let deployment = text(&document["metadata"]["name"]).to_owned();
            let spec = &document["spec"]["template"]["spec"];
            // Kubernetes' service links would add variables the relay rejects as unknown keys.
            assert_eq!(spec["enableServiceLinks"], false, "{deployment}");
            for container in spec["containers"].as_sequence().unwrap() {
                let env = container["env"]
                    .as_sequence()
                    .unwrap()
                    .iter()
                    .map(|var| {
                        let value = match var.get("value") {
                            Some(value) => text(value).to_owned(),
                            None => {
                                let secret = &var["valueFrom"]["secretKeyRef"];
                                format!("{}/{}", text(&secret["name"]), text(&secret["key"]))
                            }
                        };
                        (text(&var["name"]).to_owned(), value)
                    })
                    .collect();
                containers.push(Container {
                    deployment: deployment.clone(),
                    image: text(&container["image"]).to_owned(),
                    env,
                });
            }
        }
    }
    containers
}

/// docker-compose.yml's services: name → (image, environment).
fn compose_services() -> BTreeMap<String, (String, BTreeMap<String, String>)> {
    let compose = &documents(&root().join("docker-compose.yml"))[0];
    compose["services"]
        .as_mapping()
        .unwrap()
        .iter()
        .map(|(name, service)| {
            let env = service
                .get("environment")
                .and_then(Value::as_mapping)
                .into_iter()
                .flatten()
                // Compose takes numbers too (KAFKA_NODE_ID: 1), as their YAML text.
                .map(|(key, value)| {
                    let value = match value {
                        Value::Number(number) => number.to_string(),
                        other => text(other).to_owned(),
                    };
                    (text(key).to_owned(), value)
                })
                .collect();
            (
                text(name).to_owned(),
                (text(&service["image"]).to_owned(), env),
            )
        })
        .collect()
}

/// The database named at the end of a PostgreSQL URL.
fn database(url: &str) -> &str {
    url.rsplit('/').next().unwrap().split('?').next().unwrap()
}

#[test]
fn kubernetes_runs_a_relay_per_service_database_as_compose_does() {
    let containers = kubernetes_containers();
    let compose = compose_services();
    let relays: Vec<&Container> = containers
        .iter()
        .filter(|c| c.image.contains("/outbox-relay:"))
        .collect();
    let compose_relays: Vec<&BTreeMap<String, String>> = compose
        .values()
        .filter(|(image, _)| image.starts_with("outbox-relay:"))
        .map(|(_, env)| env)
        .collect();
    assert_eq!(relays.len(), 2, "one relay sidecar per service database");
    assert_eq!(compose_relays.len(), 2);
    for compose_relay in compose_relays {
        let database = database(&compose_relay["OUTBOX_RELAY_DATABASE_URL"]);
        let relay = relays
            .iter()
            .find(|r| r.env["OUTBOX_RELAY_DATABASE_URL"].starts_with(&format!("{database}-db/")))
            .unwrap_or_else(|| panic!("no Kubernetes relay on database {database}"));
        // Slots are per cluster: the second relay's own slot name, in both places.
        assert_eq!(
            relay.env.get("OUTBOX_RELAY_SLOT"),
            compose_relay.get("OUTBOX_RELAY_SLOT"),
            "the slot of the relay on database {database}"
        );
        // The sidecar's service works on the same database with a URL of its own role.
        let service = containers
            .iter()
            .find(|c| c.deployment == relay.deployment && !std::ptr::eq(*c, *relay))
            .unwrap();
        assert_eq!(
            service.env["DATABASE_URL"],
            format!("{database}-db/service-url")
        );
    }
    // Both services take part in the saga on the relays' broker, as in docker-compose.yml.
    for (service, keys) in [
        (
            "order-service",
            &[
                "MESSAGING_MODE",
                "SAGA_TIMEOUT_SECS",
                "SAGA_SWEEP_INTERVAL_MS",
            ][..],
        ),
        (
            "invoice-service",
            &["MESSAGING_MODE", "INVOICE_SERVICE_CREDIT_LIMIT"][..],
        ),
    ] {
        let container = containers
            .iter()
            .find(|c| c.image.contains(&format!("/{service}:")))
            .unwrap_or_else(|| panic!("no Kubernetes container runs {service}"));
        let (_, compose_env) = &compose[service];
        for key in keys {
            assert!(container.env.contains_key(*key), "{service} lacks {key}");
            assert!(
                compose_env.contains_key(*key),
                "compose's {service} lacks {key}"
            );
        }
        assert_eq!(container.env["MESSAGING_MODE"], "kafka");
    }
}

#[test]
fn every_relay_variable_in_deploy_and_compose_is_a_documented_key() {
    let documented = read(&root().join("docs/CONFIGURATION.md"));
    let mut variables: Vec<String> = kubernetes_containers()
        .into_iter()
        .flat_map(|c| c.env.into_keys())
        .collect();
    variables.extend(
        compose_services()
            .into_values()
            .flat_map(|(_, env)| env.into_keys()),
    );
    variables.extend(
        read(&root().join("deploy/outbox-relay.service"))
            .lines()
            .filter_map(|line| line.strip_prefix("#   "))
            .filter_map(|line| line.split_once('=').map(|(key, _)| key.to_owned())),
    );
    let relay_variables: Vec<&String> = variables
        .iter()
        .filter(|v| v.starts_with("OUTBOX_RELAY_"))
        .collect();
    assert!(relay_variables.len() > 20, "{relay_variables:?}");
    for variable in relay_variables {
        assert!(
            documented.contains(&format!("`{variable}`")),
            "{variable} is not documented in docs/CONFIGURATION.md"
        );
    }
}

/// The workspace's packages and their binaries, from `cargo metadata`.
fn workspace_binaries() -> BTreeMap<String, Vec<String>> {
    let output = Command::new(env!("CARGO"))
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .current_dir(root())
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|package| {
            let bins = package["targets"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|t| t["kind"].as_array().unwrap().iter().any(|k| k == "bin"))
                .map(|t| t["name"].as_str().unwrap().to_owned())
                .collect();
            (package["name"].as_str().unwrap().to_owned(), bins)
        })
        .collect()
}

/// The image build cannot run here (no Docker engine), so each Dockerfile is read instead: it builds a
/// workspace package whose binary it installs, copies into the runtime stage and starts; its builder's
/// Rust meets the workspace's `rust-version`; its `.dockerignore` keeps `target/` out of the context;
/// and its user is the UID the Kubernetes manifests run as. docker-compose.yml builds each of them.
#[test]
fn every_dockerfile_builds_and_starts_a_workspace_binary() {
    let binaries = workspace_binaries();
    let workspace = read(&root().join("Cargo.toml"));
    let rust_version = workspace
        .lines()
        .find_map(|line| line.strip_prefix("rust-version = "))
        .unwrap()
        .trim_matches('"');
    let compose = read(&root().join("docker-compose.yml"));
    let manifests: String = files(&root().join("deploy/kubernetes"), &[".yaml"])
        .iter()
        .map(|path| read(path))
        .collect();
    let dockerfiles = files(&root().join("deploy"), &["Dockerfile"]);
    assert_eq!(dockerfiles.len(), 3, "{dockerfiles:?}");
    for path in dockerfiles {
        let name = path.file_name().unwrap().to_str().unwrap();
        let dockerfile = read(&path);
        let package = dockerfile
            .split("cargo build -p ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("{name} builds no package"));
        let bins = binaries
            .get(package)
            .unwrap_or_else(|| panic!("{name} builds {package}, not a workspace package"));
        let bin = bins
            .first()
            .unwrap_or_else(|| panic!("{package} has no binary"));
        for expected in [
            format!("cargo build -p {package} --release --locked"),
            format!("target/release/{bin} /out/{bin}"),
            format!("COPY --from=builder /out/{bin} /usr/local/bin/{bin}"),
            format!("ENTRYPOINT [\"{bin}\"]"),
            "--uid 10001".to_owned(),
            "USER 10001:10001".to_owned(),
        ] {
            assert!(dockerfile.contains(&expected), "{name} lacks {expected:?}");
        }
        let builder = dockerfile
            .lines()
            .find_map(|line| line.strip_prefix("FROM rust:"))
            .and_then(|tag| tag.split('-').next())
            .unwrap_or_else(|| panic!("{name} has no rust builder stage"));
        assert!(
            version(builder) >= version(rust_version),
            "{name} builds with Rust {builder}, the workspace needs {rust_version}"
        );
        let ignore = read(&path.with_file_name(format!("{name}.dockerignore")));
        assert!(
            ignore.lines().any(|line| line == "target/"),
            "{name}.dockerignore"
        );
        assert!(
            compose.contains(&format!("dockerfile: deploy/{name}")),
            "docker-compose.yml does not build {name}"
        );
        assert!(
            manifests.contains(&format!("docker build -f deploy/{name} ")),
            "no Kubernetes manifest says how to build {name}"
        );
    }
}

fn version(text: &str) -> Vec<u32> {
    text.split('.').map(|part| part.parse().unwrap()).collect()
}
