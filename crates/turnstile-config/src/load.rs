//! Reading a configuration: find the file, parse JSON or YAML into one document tree (refusing
//! duplicate keys), then validate it into a [`NodeConfig`].

use std::fmt;
use std::path::{Component, Path, PathBuf};

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use crate::env::{merge, process_env, substitute, EnvLookup};
use crate::error::{ConfigError, Invalid};
use crate::model::NodeConfig;
use crate::validate;

/// The syntax of a configuration text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// JSON (`.json`).
    Json,
    /// YAML (`.yaml`, `.yml`).
    Yaml,
}

impl Format {
    /// From a file name: `.json`, `.yaml` or `.yml` (case-insensitive).
    pub fn from_path(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "json" => Some(Format::Json),
            "yaml" | "yml" => Some(Format::Yaml),
            _ => None,
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Json => "JSON",
            Format::Yaml => "YAML",
        })
    }
}

/// Reads and validates the configuration file at `path` (JSON or YAML, by its extension).
/// Relative paths inside it (`directory` of static web paths, unix socket `path`s) resolve
/// against the file's directory. String values `"$NAME"` and `"${NAME}"` are read from the
/// process environment (see [`crate::env`]).
pub fn load_file(path: &Path) -> Result<NodeConfig, ConfigError> {
    load_file_with_env(path, &process_env)
}

/// [`load_file`] with environment variables read through `env` instead of the process
/// environment.
pub fn load_file_with_env(path: &Path, env: EnvLookup) -> Result<NodeConfig, ConfigError> {
    let format = Format::from_path(path).ok_or_else(|| ConfigError::UnknownFormat {
        file: path.to_owned(),
    })?;
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        file: path.to_owned(),
        source,
    })?;
    load_str_with_env(&text, format, path, env)
}

/// Validates a configuration text. `origin` is the file it came from: it names the file in
/// messages, and relative paths inside resolve against its directory. String values `"$NAME"`
/// and `"${NAME}"` are read from the process environment (see [`crate::env`]).
pub fn load_str(text: &str, format: Format, origin: &Path) -> Result<NodeConfig, ConfigError> {
    load_str_with_env(text, format, origin, &process_env)
}

/// [`load_str`] with environment variables read through `env` instead of the process
/// environment (for tests, and for embedders that keep their own).
pub fn load_str_with_env(
    text: &str,
    format: Format,
    origin: &Path,
    env: EnvLookup,
) -> Result<NodeConfig, ConfigError> {
    let base_dir = absolute(origin.parent().unwrap_or(Path::new("")));
    load_with_base(text, format, origin, &base_dir, env)
}

/// [`load_str_with_env`] with an explicit directory for relative paths.
pub(crate) fn load_with_base(
    text: &str,
    format: Format,
    origin: &Path,
    base_dir: &Path,
    env: EnvLookup,
) -> Result<NodeConfig, ConfigError> {
    let written = parse(text, format, origin)?;
    let (doc, env_errors) = substitute(&written, env);
    let errors = match validate::node_config(&doc, &written, base_dir) {
        Ok(config) if env_errors.is_empty() => return Ok(config),
        Ok(_) => env_errors,
        Err(e) => merge(env_errors, e.flatten()),
    };
    let error = Invalid::all(errors).expect("an environment or a validation error");
    Err(error.in_file(origin.to_owned()))
}

/// The configuration file of a Crossbar node directory (`.crossbar`): `DIR/config.json`, else
/// `DIR/config.yaml`.
pub fn find_in_cbdir(dir: &Path) -> Result<PathBuf, ConfigError> {
    let json = dir.join("config.json");
    let yaml = dir.join("config.yaml");
    if json.is_file() {
        Ok(json)
    } else if yaml.is_file() {
        Ok(yaml)
    } else {
        Err(ConfigError::NotFound {
            dir: dir.to_owned(),
            json,
            yaml,
        })
    }
}

/// `base.join(path)` with `.` and `..` resolved lexically (as Crossbar's `os.path.abspath`
/// does); an absolute `path` stays as it is (normalized).
pub(crate) fn resolve(base: &Path, path: &str) -> PathBuf {
    normalize(&base.join(path))
}

pub(crate) fn absolute(path: &Path) -> PathBuf {
    let path = if path.as_os_str().is_empty() {
        Path::new(".")
    } else {
        path
    };
    normalize(&std::path::absolute(path).unwrap_or_else(|_| path.to_owned()))
}

fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                // `..` above the root stays at the root; a relative path keeps leading `..`.
                let last = out.components().next_back();
                match last {
                    Some(Component::Normal(_)) => {
                        out.pop();
                    }
                    Some(Component::RootDir | Component::Prefix(_)) => {}
                    _ => out.push(".."),
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Parses `text` into a document tree, refusing duplicate keys.
fn parse(text: &str, format: Format, origin: &Path) -> Result<Value, ConfigError> {
    let syntax = |location, message| ConfigError::Syntax {
        file: origin.to_owned(),
        format,
        location,
        message,
    };
    if text.trim().is_empty() {
        return Err(syntax(None, "the file is empty".to_owned()));
    }
    match format {
        Format::Json => serde_json::from_str::<Document>(text)
            .map(|d| d.0)
            .map_err(|e| {
                let location = (e.line() > 0).then(|| (e.line(), e.column()));
                // serde_json appends " at line L column C"; we say that ourselves.
                let full = e.to_string();
                let message = match full.rsplit_once(" at line ") {
                    Some((message, _)) if location.is_some() => message.to_owned(),
                    _ => full,
                };
                syntax(location, message)
            }),
        Format::Yaml => {
            let options = serde_saphyr::options! { with_snippet: false };
            serde_saphyr::from_str_with_options::<Document>(text, options)
                .map(|d| d.0)
                .map_err(|e| {
                    let location = e
                        .location()
                        .map(|l| (l.line() as usize, l.column() as usize));
                    syntax(location, yaml_message(&e.without_snippet().to_string()))
                })
        }
    }
}

/// serde-saphyr's message on one line, without its location suffix (we print the location
/// ourselves) and without its hint about parser options.
fn yaml_message(message: &str) -> String {
    let mut message = message.lines().next().unwrap_or(message).trim();
    if let Some((text, _)) = message.rsplit_once(" at line ") {
        message = text;
    }
    if let Some((text, _)) = message.split_once(", set DuplicateKeyPolicy") {
        message = text;
    }
    message.to_owned()
}

/// A parsed document: a [`serde_json::Value`] built by a visitor that refuses duplicate keys
/// (`serde_json::Value` itself silently keeps the last one) and non-finite numbers.
struct Document(Value);

impl<'de> Deserialize<'de> for Document {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(DocumentVisitor).map(Document)
    }
}

struct DocumentVisitor;

impl<'de> Visitor<'de> for DocumentVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON-compatible value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom(format!("the number {v} is not allowed (not finite)")))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        Document::deserialize(deserializer).map(|d| d.0)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Document(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            if map.contains_key(&key) {
                return Err(de::Error::custom(format!("duplicate key \"{key}\"")));
            }
            let Document(value) = access.next_value()?;
            map.insert(key, value);
        }
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_resolves_dots() {
        assert_eq!(
            resolve(Path::new("/a/b"), "../web"),
            PathBuf::from("/a/web")
        );
        assert_eq!(
            resolve(Path::new("/a/b"), "./x/./y"),
            PathBuf::from("/a/b/x/y")
        );
        assert_eq!(resolve(Path::new("/a/b"), "/abs/../p"), PathBuf::from("/p"));
        assert_eq!(resolve(Path::new("/"), "../../x"), PathBuf::from("/x"));
    }

    #[test]
    fn format_from_extension() {
        assert_eq!(Format::from_path(Path::new("c.json")), Some(Format::Json));
        assert_eq!(Format::from_path(Path::new("c.YML")), Some(Format::Yaml));
        assert_eq!(Format::from_path(Path::new("c.yaml")), Some(Format::Yaml));
        assert_eq!(Format::from_path(Path::new("c.toml")), None);
        assert_eq!(Format::from_path(Path::new("config")), None);
    }
}
