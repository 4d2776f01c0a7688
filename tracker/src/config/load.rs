//! Layered loading with every error reported at once.
//!
//! Serde stops at the first bad field, so loading works on the merged value tree:
//!
//! 1. merge defaults, file, environment and flags with the `config` crate;
//! 2. report and remove every key that is not in the schema (the schema is the tree of
//!    the default config, which lists every key, optional ones as nil);
//! 3. deserialize with `serde_path_to_error`; on an error, record it with its key path,
//!    put the default value back at that path and try again, until the rest is clean;
//! 4. run [`Config::validate`] on the result.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use config::{Environment, File, FileFormat, Map, Value, ValueKind};
use serde_path_to_error::Segment;

use super::{Config, ENV_PREFIX};

/// Values from the command line, the last layer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `--config FILE`.
    pub config_file: Option<PathBuf>,
    /// `--listen ADDR` (sets `server.listen`).
    pub listen: Option<SocketAddr>,
}

/// Every problem found in a configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<String>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(
            f,
            "invalid configuration ({n} problem{}):",
            if n == 1 { "" } else { "s" }
        )?;
        for e in &self.0 {
            write!(f, "\n  - {e}")?;
        }
        Ok(())
    }
}

/// Keys whose environment value is a comma-separated list.
const LIST_KEYS: [(&str, &str); 2] = [("access", "tokens"), ("access", "info_hash_allow")];

/// Loads the configuration from defaults, the file in `overrides`, the process
/// environment and the flag values.
pub fn load(overrides: &Overrides) -> Result<Config, ConfigErrors> {
    load_with_env(overrides, None)
}

/// Like [`load`], but reads environment variables from `env` instead of the process
/// environment when it is `Some` (for tests).
pub fn load_with_env(
    overrides: &Overrides,
    env: Option<HashMap<String, String>>,
) -> Result<Config, ConfigErrors> {
    let defaults = default_tree().map_err(|e| ConfigErrors(vec![e]))?;

    let mut builder = config::Config::builder().add_source(Defaults(defaults.clone()));
    if let Some(path) = &overrides.config_file {
        builder = builder.add_source(
            File::from(path.as_path())
                .format(FileFormat::Toml)
                .required(true),
        );
    }
    builder = builder.add_source(
        Environment::with_prefix(ENV_PREFIX)
            .prefix_separator("__")
            .separator("__")
            .source(env),
    );
    if let Some(listen) = overrides.listen {
        builder = builder
            .set_override("server.listen", listen.to_string())
            .map_err(|e| ConfigErrors(vec![format!("--listen: {e}")]))?;
    }
    let merged = builder
        .build()
        .map_err(|e| ConfigErrors(vec![e.to_string()]))?;
    let mut tree: Map<String, Value> = merged
        .try_deserialize()
        .map_err(|e| ConfigErrors(vec![e.to_string()]))?;

    let mut errors = Vec::new();
    remove_unknown_keys(&mut tree, &defaults, &mut errors);
    split_env_lists(&mut tree);
    let config = deserialize_tolerant(tree, &defaults, &mut errors);
    if let Some(cfg) = &config {
        errors.extend(cfg.validate());
    }
    match config {
        Some(cfg) if errors.is_empty() => Ok(cfg),
        _ => Err(ConfigErrors(errors)),
    }
}

/// The default config as a value tree. It doubles as the schema: every key is present,
/// optional ones as nil and lists as (possibly empty) arrays.
fn default_tree() -> Result<Map<String, Value>, String> {
    match serde_json::to_value(Config::default()) {
        Ok(json) => match json_to_value(json).kind {
            ValueKind::Table(t) => Ok(t),
            _ => Err("built-in defaults: not a table".to_owned()),
        },
        Err(e) => Err(format!("built-in defaults: {e}")),
    }
}

fn json_to_value(json: serde_json::Value) -> Value {
    let origin = Some("built-in defaults".to_owned());
    let kind = match json {
        serde_json::Value::Null => ValueKind::Nil,
        serde_json::Value::Bool(b) => ValueKind::Boolean(b),
        serde_json::Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => ValueKind::I64(i),
            (None, Some(u), _) => ValueKind::U64(u),
            (_, _, f) => ValueKind::Float(f.unwrap_or_default()),
        },
        serde_json::Value::String(s) => ValueKind::String(s),
        serde_json::Value::Array(a) => ValueKind::Array(a.into_iter().map(json_to_value).collect()),
        serde_json::Value::Object(o) => {
            ValueKind::Table(o.into_iter().map(|(k, v)| (k, json_to_value(v))).collect())
        }
    };
    Value::new(origin.as_ref(), kind)
}

/// The first layer: the built-in defaults tree.
#[derive(Debug, Clone)]
struct Defaults(Map<String, Value>);

impl config::Source for Defaults {
    fn clone_into_box(&self) -> Box<dyn config::Source + Send + Sync> {
        Box::new(self.clone())
    }

    fn collect(&self) -> Result<Map<String, Value>, config::ConfigError> {
        Ok(self.0.clone())
    }
}

fn table(v: &Value) -> Option<&Map<String, Value>> {
    match &v.kind {
        ValueKind::Table(t) => Some(t),
        _ => None,
    }
}

fn remove_unknown_keys(
    tree: &mut Map<String, Value>,
    schema: &Map<String, Value>,
    errors: &mut Vec<String>,
) {
    let mut unknown_sections = Vec::new();
    for (section, value) in tree.iter_mut() {
        let Some(known) = schema.get(section).and_then(table) else {
            unknown_sections.push(section.clone());
            continue;
        };
        if let ValueKind::Table(keys) = &mut value.kind {
            let unknown: Vec<String> = keys
                .keys()
                .filter(|k| !known.contains_key(*k))
                .cloned()
                .collect();
            for k in unknown {
                errors.push(format!("unknown key `{section}.{k}`"));
                keys.remove(&k);
            }
        }
    }
    for s in unknown_sections {
        errors.push(format!("unknown section or key `{s}`"));
        tree.remove(&s);
    }
}

/// Environment values are plain strings; list keys become comma-separated lists.
fn split_env_lists(tree: &mut Map<String, Value>) {
    for (section, key) in LIST_KEYS {
        let Some(Value {
            kind: ValueKind::Table(keys),
            ..
        }) = tree.get_mut(section)
        else {
            continue;
        };
        let Some(v) = keys.get_mut(key) else { continue };
        if let ValueKind::String(s) = &v.kind {
            let items = s
                .split(',')
                .map(str::trim)
                .filter(|x| !x.is_empty())
                .map(|x| Value::new(None, ValueKind::String(x.to_owned())))
                .collect();
            v.kind = ValueKind::Array(items);
        }
    }
}

/// The (section, key) of an error path, if it names a config key.
fn key_of(path: &serde_path_to_error::Path) -> Option<(String, Option<String>)> {
    let mut maps = path.iter().filter_map(|s| match s {
        Segment::Map { key } => Some(key.clone()),
        _ => None,
    });
    let section = maps.next()?;
    Some((section, maps.next()))
}

fn deserialize_tolerant(
    mut tree: Map<String, Value>,
    defaults: &Map<String, Value>,
    errors: &mut Vec<String>,
) -> Option<Config> {
    let mut seen = HashSet::new();
    // Each round fixes one key, so the number of keys bounds the rounds.
    for _ in 0..256 {
        let value = Value::new(None, ValueKind::Table(tree.clone()));
        match serde_path_to_error::deserialize::<_, Config>(value) {
            Ok(cfg) => return Some(cfg),
            Err(e) => {
                let path = e.path().to_string();
                let located = key_of(e.path());
                let inner = e.into_inner();
                errors.push(format!("`{path}`: {inner}"));
                let (section, key) = located?;
                if !seen.insert((section.clone(), key.clone())) {
                    return None;
                }
                let restored = match &key {
                    None => defaults.get(&section).cloned().map(|d| {
                        tree.insert(section.clone(), d);
                    }),
                    Some(k) => {
                        let default = defaults
                            .get(&section)
                            .and_then(table)
                            .and_then(|t| t.get(k))
                            .cloned();
                        match (tree.get_mut(&section), default) {
                            (
                                Some(Value {
                                    kind: ValueKind::Table(keys),
                                    ..
                                }),
                                Some(d),
                            ) => {
                                keys.insert(k.clone(), d);
                                Some(())
                            }
                            _ => None,
                        }
                    }
                };
                restored?;
            }
        }
    }
    None
}
