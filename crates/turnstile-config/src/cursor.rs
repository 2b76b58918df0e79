//! A small path-tracking validator over a parsed document: a [`Node`] is a value plus the path
//! that leads to it (`workers[0].realms[1].stats`), so every error names its key exactly.

use std::cell::RefCell;

use serde_json::{Map, Value};

use crate::error::{Invalid, Problem};
use crate::model::Inapplicable;

pub(crate) type VResult<T> = Result<T, Invalid>;

/// How `found` values are shortened in messages (characters).
const MAX_FOUND_CHARS: usize = 60;

/// The keys accepted although they do nothing in Turnstile, with the reason, collected while
/// validating (see [`Node::object_noting`]).
pub(crate) type Notes = RefCell<Vec<Inapplicable>>;

/// A value of the document and the path to it.
#[derive(Debug, Clone)]
pub(crate) struct Node<'v> {
    value: &'v Value,
    /// The same value as the file has it, before environment variables were read (see
    /// [`crate::env`]): what messages show.
    written: &'v Value,
    /// Where [`Node::object_noting`] records accepted keys without effect, if anywhere.
    notes: Option<&'v Notes>,
    path: String,
}

impl<'v> Node<'v> {
    /// The document itself.
    #[cfg(test)]
    pub(crate) fn root(value: &'v Value) -> Self {
        Node {
            value,
            written: value,
            notes: None,
            path: String::new(),
        }
    }

    /// The document `value` (with environment variables read), as `written` in the file;
    /// accepted keys without effect are recorded in `notes`.
    pub(crate) fn document(value: &'v Value, written: &'v Value, notes: &'v Notes) -> Self {
        Node {
            value,
            written,
            notes: Some(notes),
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

    /// The value as shortened compact JSON, for messages: as written in the file, so that a
    /// value read from an environment variable (perhaps a secret) is never shown.
    pub(crate) fn found(&self) -> String {
        if self.written != self.value && self.written.is_string() {
            format!("{} (from the environment)", shorten(self.written))
        } else {
            shorten(self.written)
        }
    }

    /// Records that this value is accepted but does nothing in Turnstile, and why (see
    /// [`Node::object_noting`]).
    pub(crate) fn note_inapplicable(&self, reason: impl Into<String>) {
        if let Some(notes) = self.notes {
            notes.borrow_mut().push(Inapplicable {
                at: self.path(),
                reason: reason.into(),
            });
        }
    }

    pub(crate) fn fail(&self, problem: Problem) -> Invalid {
        Invalid::new(self.path(), problem)
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
    /// does not implement), else as unknown. Keys are checked in sorted order, and every
    /// offending key is reported.
    pub(crate) fn object(&self, keys: &Keys) -> VResult<Obj<'v>> {
        self.object_noting(keys, &[])
    }

    /// [`Node::object`] that also accepts the keys of `inapplicable`: Crossbar keys that mean
    /// nothing in Turnstile, each with the reason. Those present are recorded (path and reason)
    /// for the router to log once at start, so that nothing accepted is silently ignored.
    pub(crate) fn object_noting(
        &self,
        keys: &Keys,
        inapplicable: &[(&'static str, &'static str)],
    ) -> VResult<Obj<'v>> {
        let Value::Object(map) = self.value else {
            return Err(self.invalid(format!("an object ({})", keys.what)));
        };
        // Every offending key is reported (they are independent of each other).
        let mut errors = Vec::new();
        for (key, value) in map {
            if keys.allowed.contains(&key.as_str()) || inapplicable.iter().any(|(k, _)| k == key) {
                continue;
            }
            let child = self.child_key(key, value);
            if let Some((_, message)) = keys.unsupported.iter().find(|(k, _)| k == key) {
                errors.push(child.unsupported(*message));
                continue;
            }
            let allowed: Vec<&'static str> = keys
                .allowed
                .iter()
                .copied()
                .chain(inapplicable.iter().map(|(k, _)| *k))
                .collect();
            errors.push(child.fail(Problem::UnknownKey {
                suggestion: nearest(key, &allowed),
                allowed,
            }));
        }
        if let Some(error) = Invalid::all(errors) {
            return Err(error);
        }
        if let Some(notes) = self.notes {
            for (key, reason) in inapplicable {
                if map.contains_key(*key) {
                    notes.borrow_mut().push(Inapplicable {
                        at: join_key(&self.path, key),
                        reason: (*reason).to_owned(),
                    });
                }
            }
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
            return Err(Invalid::new(
                join_key(&self.path, "type"),
                Problem::Missing {
                    expected: format!("the type of {what}"),
                },
            ));
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
                written: self.written.get(i).unwrap_or(value),
                notes: self.notes,
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
            written: self.written.get(key).unwrap_or(value),
            notes: self.notes,
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
        self.get(key).ok_or_else(|| {
            Invalid::new(
                join_key(&self.node.path, key),
                Problem::Missing {
                    expected: expected.to_owned(),
                },
            )
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

/// The key of `allowed` nearest to the unknown `key`, if it is near enough to be a likely
/// misspelling: the same but for case and `-`/`_`, or within an edit distance (insertions,
/// deletions, substitutions and swaps of neighbours) of 1 for keys up to 4 characters, 2 up to 8,
/// and 3 beyond. The first of equally near keys wins.
pub(crate) fn nearest(key: &str, allowed: &[&'static str]) -> Option<&'static str> {
    let fold = |s: &str| s.to_ascii_lowercase().replace('-', "_");
    let folded = fold(key);
    if let Some(same) = allowed.iter().find(|a| fold(a) == folded) {
        return Some(same);
    }
    let limit = match key.chars().count() {
        0..=4 => 1,
        5..=8 => 2,
        _ => 3,
    };
    allowed
        .iter()
        .map(|a| (edit_distance(&folded, &fold(a)), *a))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, a)| a)
}

/// The optimal string alignment distance between `a` and `b` (Levenshtein plus swaps of two
/// neighbouring characters), over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // rows[i][j]: the distance between a[..i] and b[..j].
    let mut rows = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (rows[i - 1][j] + 1)
                .min(rows[i][j - 1] + 1)
                .min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = d;
        }
    }
    rows[a.len()][b.len()]
}

/// `parent.key`, or `parent["key"]` when the key is not a plain name.
pub(crate) fn join_key(parent: &str, key: &str) -> String {
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
    fn nearest_keys_are_suggested() {
        let role = ["name", "permissions", "authorizer", "allow-by-default"];
        assert_eq!(nearest("permisions", &role), Some("permissions"));
        assert_eq!(nearest("premissions", &role), Some("permissions"));
        assert_eq!(nearest("Permissions", &role), Some("permissions"));
        assert_eq!(nearest("allow_by_default", &role), Some("allow-by-default"));
        assert_eq!(nearest("nmae", &role), Some("name"));
        assert_eq!(nearest("authoriser", &role), Some("authorizer"));
        // Too far from every key: no guess.
        assert_eq!(nearest("roles", &role), None);
        assert_eq!(nearest("x", &role), None);
        assert_eq!(nearest("rated_size", &["rated_message_size"]), None);
        assert_eq!(nearest("anything", &[]), None);
    }

    #[test]
    fn edit_distance_counts_swaps_once() {
        assert_eq!(edit_distance("version", "versoin"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }

    #[test]
    fn one_of_lists_choices() {
        assert_eq!(one_of(&["a"]), "\"a\"");
        assert_eq!(one_of(&["a", "b", "c"]), "one of \"a\", \"b\" or \"c\"");
    }
}
