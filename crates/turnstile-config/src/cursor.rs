//! A small path-tracking validator over a parsed document: a [`Node`] is a value plus the path
//! that leads to it (`workers[0].realms[1].stats`), so every error names its key exactly.

use serde_json::{Map, Value};

use crate::error::{Invalid, Problem};

pub(crate) type VResult<T> = Result<T, Invalid>;

/// How `found` values are shortened in messages (characters).
const MAX_FOUND_CHARS: usize = 60;

/// A value of the document and the path to it.
#[derive(Debug, Clone)]
pub(crate) struct Node<'v> {
    value: &'v Value,
    path: String,
}

impl<'v> Node<'v> {
    /// The document itself.
    pub(crate) fn root(value: &'v Value) -> Self {
        Node {
            value,
            path: String::new(),
        }
    }

    pub(crate) fn value(&self) -> &'v Value {
        self.value
    }

    /// The path, `(top level)` for the document itself.
    pub(crate) fn path(&self) -> String {
        if self.path.is_empty() {
            "(top level)".to_owned()
        } else {
            self.path.clone()
        }
    }

    /// The value as shortened compact JSON, for messages.
    pub(crate) fn found(&self) -> String {
        shorten(self.value)
    }

    pub(crate) fn fail(&self, problem: Problem) -> Invalid {
        Invalid {
            at: self.path(),
            problem,
        }
    }

    /// "found <this value>, expected <expected>".
    pub(crate) fn invalid(&self, expected: impl Into<String>) -> Invalid {
        self.fail(Problem::Invalid {
            found: self.found(),
            expected: expected.into(),
        })
    }

    /// "found <this value>: <message>" for a feature that is not implemented.
    pub(crate) fn unsupported(&self, message: impl Into<String>) -> Invalid {
        self.fail(Problem::Unsupported {
            found: self.found(),
            message: message.into(),
        })
    }

    /// "found <this value>: <message>" for a clash with another part of the configuration.
    pub(crate) fn conflict(&self, message: impl Into<String>) -> Invalid {
        self.fail(Problem::Conflict {
            found: self.found(),
            message: message.into(),
        })
    }

    /// This value as an object whose keys are all in `keys`. A key that is not is refused:
    /// with its message if it is listed in `unsupported` (known Crossbar keys that Turnstile
    /// does not implement), else as unknown. Keys are checked in sorted order.
    pub(crate) fn object(&self, keys: &Keys) -> VResult<Obj<'v>> {
        let Value::Object(map) = self.value else {
            return Err(self.invalid(format!("an object ({})", keys.what)));
        };
        for (key, value) in map {
            if keys.allowed.contains(&key.as_str()) {
                continue;
            }
            let child = self.child_key(key, value);
            if let Some((_, message)) = keys.unsupported.iter().find(|(k, _)| k == key) {
                return Err(child.unsupported(*message));
            }
            return Err(child.fail(Problem::UnknownKey {
                allowed: keys.allowed.to_vec(),
            }));
        }
        Ok(Obj {
            node: self.clone(),
            map,
        })
    }

    /// For objects told apart by their `type` (workers, transports, endpoints, ...): checks
    /// that this is an object with a string `type` and returns the `type` node and value. The
    /// other keys are checked afterwards with [`Node::object`], once the type is known.
    pub(crate) fn tagged(&self, what: &str) -> VResult<(Node<'v>, &'v str)> {
        let Value::Object(map) = self.value else {
            return Err(self.invalid(format!("an object ({what})")));
        };
        let Some(value) = map.get("type") else {
            return Err(Invalid {
                at: join_key(&self.path, "type"),
                problem: Problem::Missing {
                    expected: format!("the type of {what}"),
                },
            });
        };
        let node = self.child_key("type", value);
        let ty = node.str(&format!("the type of {what}"))?;
        Ok((node, ty))
    }

    /// This value as an object with any keys (a map such as web `paths`), in key order.
    pub(crate) fn entries(&self, what: &str) -> VResult<Vec<(&'v str, Node<'v>)>> {
        let Value::Object(map) = self.value else {
            return Err(self.invalid(format!("an object ({what})")));
        };
        Ok(map
            .iter()
            .map(|(k, v)| (k.as_str(), self.child_key(k, v)))
            .collect())
    }

    /// The value at `key` if this is an object that has it (no key checks).
    pub(crate) fn get(&self, key: &str) -> Option<Node<'v>> {
        self.value.get(key).map(|value| self.child_key(key, value))
    }

    /// This value as a list; its items know their index.
    pub(crate) fn list(&self, what: &str) -> VResult<Vec<Node<'v>>> {
        let Value::Array(items) = self.value else {
            return Err(self.invalid(format!("a list ({what})")));
        };
        Ok(items
            .iter()
            .enumerate()
            .map(|(i, value)| Node {
                value,
                path: format!("{}[{i}]", self.path),
            })
            .collect())
    }

    pub(crate) fn str(&self, what: &str) -> VResult<&'v str> {
        self.value
            .as_str()
            .ok_or_else(|| self.invalid(format!("a string ({what})")))
    }

    /// A string that is not empty.
    pub(crate) fn non_empty_str(&self, what: &str) -> VResult<&'v str> {
        match self.value.as_str() {
            Some(s) if !s.is_empty() => Ok(s),
            _ => Err(self.invalid(format!("a non-empty string ({what})"))),
        }
    }

    pub(crate) fn bool(&self) -> VResult<bool> {
        self.value
            .as_bool()
            .ok_or_else(|| self.invalid("true or false"))
    }

    /// An integer in `[min, max]`; `expected` describes the rule for the message.
    pub(crate) fn int_in(&self, min: u64, max: u64, expected: &str) -> VResult<u64> {
        match self.value.as_u64() {
            Some(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(self.invalid(expected)),
        }
    }

    /// One of `choices` (strings).
    pub(crate) fn choice(&self, choices: &[&'static str]) -> VResult<&'v str> {
        match self.value.as_str() {
            Some(s) if choices.contains(&s) => Ok(s),
            _ => Err(self.invalid(one_of(choices))),
        }
    }

    fn child_key(&self, key: &str, value: &'v Value) -> Node<'v> {
        Node {
            value,
            path: join_key(&self.path, key),
        }
    }
}

/// The keys an object may have.
pub(crate) struct Keys {
    /// What the object is, for "expected an object (...)".
    pub what: &'static str,
    pub allowed: &'static [&'static str],
    /// Known Crossbar keys refused with a message ("... is not supported yet").
    pub unsupported: &'static [(&'static str, &'static str)],
}

/// An object whose keys have been checked.
pub(crate) struct Obj<'v> {
    node: Node<'v>,
    map: &'v Map<String, Value>,
}

impl<'v> Obj<'v> {
    /// The value at `key`, if present.
    pub(crate) fn get(&self, key: &str) -> Option<Node<'v>> {
        self.map
            .get(key)
            .map(|value| self.node.child_key(key, value))
    }

    /// The value at `key`, or a "missing required key" error describing what belongs there.
    pub(crate) fn required(&self, key: &str, expected: &str) -> VResult<Node<'v>> {
        self.get(key).ok_or_else(|| Invalid {
            at: join_key(&self.node.path, key),
            problem: Problem::Missing {
                expected: expected.to_owned(),
            },
        })
    }

    /// `f(value)` if `key` is present, else `default`.
    pub(crate) fn opt<T>(
        &self,
        key: &str,
        default: T,
        f: impl FnOnce(&Node<'v>) -> VResult<T>,
    ) -> VResult<T> {
        match self.get(key) {
            Some(node) => f(&node),
            None => Ok(default),
        }
    }

    /// A boolean at `key`, `default` when absent.
    pub(crate) fn bool_or(&self, key: &str, default: bool) -> VResult<bool> {
        self.opt(key, default, Node::bool)
    }

    /// An optional string at `key`.
    pub(crate) fn opt_str(&self, key: &str, what: &str) -> VResult<Option<String>> {
        self.opt(key, None, |n| {
            n.non_empty_str(what).map(|s| Some(s.to_owned()))
        })
    }

    /// Accepts `key` only with the value `accepted` (which means what Turnstile does anyway);
    /// any other value is refused as not supported yet with `message`.
    pub(crate) fn only_value(&self, key: &str, accepted: &Value, message: &str) -> VResult<()> {
        match self.get(key) {
            Some(node) if node.value() != accepted => Err(node.unsupported(format!(
                "{message} (only {} is accepted here)",
                shorten(accepted)
            ))),
            _ => Ok(()),
        }
    }
}

/// `a, b or c` with each choice quoted.
pub(crate) fn one_of(choices: &[&str]) -> String {
    let quoted: Vec<String> = choices.iter().map(|c| format!("\"{c}\"")).collect();
    match quoted.as_slice() {
        [] => "nothing".to_owned(),
        [one] => one.clone(),
        [init @ .., last] => format!("one of {} or {last}", init.join(", ")),
    }
}

/// `parent.key`, or `parent["key"]` when the key is not a plain name.
fn join_key(parent: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '$');
    match (parent.is_empty(), plain) {
        (true, true) => key.to_owned(),
        (false, true) => format!("{parent}.{key}"),
        (_, false) => format!("{parent}[{}]", Value::String(key.to_owned())),
    }
}

/// Compact JSON of `value`, cut to [`MAX_FOUND_CHARS`] characters.
pub(crate) fn shorten(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() <= MAX_FOUND_CHARS {
        return text;
    }
    let cut: String = text.chars().take(MAX_FOUND_CHARS - 3).collect();
    format!("{cut}...")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_name_keys_and_indexes() {
        let doc = json!({"workers": [{"paths": {"/": {"x": 1}, "ws": 2}}]});
        let root = Node::root(&doc);
        assert_eq!(root.path(), "(top level)");
        let keys = Keys {
            what: "test",
            allowed: &["workers"],
            unsupported: &[],
        };
        let workers = root.object(&keys).unwrap().get("workers").unwrap();
        let w0 = &workers.list("workers").unwrap()[0];
        assert_eq!(w0.path(), "workers[0]");
        let paths = Keys {
            what: "test",
            allowed: &["paths"],
            unsupported: &[],
        };
        let entries = w0
            .object(&paths)
            .unwrap()
            .get("paths")
            .unwrap()
            .entries("paths")
            .unwrap();
        assert_eq!(entries[0].1.path(), "workers[0].paths[\"/\"]");
        assert_eq!(entries[1].1.path(), "workers[0].paths.ws");
    }

    #[test]
    fn long_values_are_shortened() {
        let long = json!("x".repeat(200));
        let s = shorten(&long);
        assert_eq!(s.chars().count(), MAX_FOUND_CHARS);
        assert!(s.ends_with("..."));
        assert_eq!(shorten(&json!({"a": 1})), r#"{"a":1}"#);
    }

    #[test]
    fn one_of_lists_choices() {
        assert_eq!(one_of(&["a"]), "\"a\"");
        assert_eq!(one_of(&["a", "b", "c"]), "one of \"a\", \"b\" or \"c\"");
    }
}
