//! Environment variables in a configuration: a pass over the parsed document, before validation,
//! that replaces every string value `"$NAME"` or `"${NAME}"` with the value of the variable
//! `NAME`.
//!
//! Crossbar reads `"$NAME"` only for a listening endpoint's `port` and `"${NAME}"` only for
//! tickets and WAMP-CRA secrets (`crossbar/common/checkconfig.py`: `_readenv`,
//! `maybe_from_env`); Turnstile accepts both forms for every string value (a superset). The
//! value of a `port` is read as an integer. A variable that is not set is an error naming the key
//! path and the variable (Crossbar only warns for a secret, and then refuses every login).
//!
//! Values read from the environment never appear in messages: the validator shows what the file
//! says (`"${TICKET}"`), see [`crate::cursor::Node`]. A string with a `$` elsewhere, or an empty
//! `"${}"`, is taken literally.

use serde_json::{Map, Number, Value};

use crate::error::{Invalid, Problem};

/// Looks up an environment variable: `Some(value)` if it is set.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment, as the public `load_*` functions read it. A variable whose value is
/// not valid UTF-8 counts as not set.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// The variable a string value names: `$NAME` (a letter or `_`, then letters, digits and `_`, as
/// Crossbar's `_ENV_VAR_PAT`) or `${NAME}` (anything but `}` inside, not empty, as Crossbar's
/// `_ENVPAT`).
pub(crate) fn variable(text: &str) -> Option<&str> {
    let rest = text.strip_prefix('$')?;
    if let Some(inner) = rest.strip_prefix('{') {
        let name = inner.strip_suffix('}')?;
        return (!name.is_empty() && !name.contains('}')).then_some(name);
    }
    let mut chars = rest.chars();
    let first = chars.next()?;
    let valid = (first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    valid.then_some(rest)
}

/// `doc` with every `$NAME` / `${NAME}` string replaced by its variable's value, and every
/// problem found (variables not set, ports that are not integers), in document order. A value
/// with a problem is left as written.
pub(crate) fn substitute(doc: &Value, env: EnvLookup) -> (Value, Vec<Invalid>) {
    let mut problems = Vec::new();
    let out = walk(doc, "", None, env, &mut problems);
    (out, problems)
}

/// The errors of a configuration from the environment pass (`env`) and from validation
/// (`validation`), without the ones that follow from others: a validation error at or below a
/// key whose variable could not be read (its value was left as written), and an environment
/// error inside a part refused as a feature Turnstile does not have (its value is never needed).
pub(crate) fn merge(env: Vec<Invalid>, validation: Vec<Invalid>) -> Vec<Invalid> {
    let refused: Vec<&str> = validation
        .iter()
        .filter(|v| matches!(v.problem, Problem::Unsupported { .. }))
        // An unsupported `type` (of a worker, transport, ...) refuses the whole object.
        .map(|v| v.at.strip_suffix(".type").unwrap_or(&v.at))
        .collect();
    let env: Vec<Invalid> = env
        .into_iter()
        .filter(|e| !refused.iter().any(|r| within(&e.at, r)))
        .collect();
    let validation: Vec<Invalid> = validation
        .into_iter()
        .filter(|v| !env.iter().any(|e| within(&v.at, &e.at)))
        .collect();
    env.into_iter().chain(validation).collect()
}

/// Whether the key path `path` is `parent` or below it.
fn within(path: &str, parent: &str) -> bool {
    path.strip_prefix(parent)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
}

fn walk(
    value: &Value,
    path: &str,
    key: Option<&str>,
    env: EnvLookup,
    problems: &mut Vec<Invalid>,
) -> Value {
    match value {
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                let child = crate::cursor::join_key(path, k);
                out.insert(k.clone(), walk(v, &child, Some(k), env, problems));
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| walk(v, &format!("{path}[{i}]"), None, env, problems))
                .collect(),
        ),
        Value::String(text) => {
            let Some(name) = variable(text) else {
                return value.clone();
            };
            let at = if path.is_empty() {
                "(top level)".to_owned()
            } else {
                path.to_owned()
            };
            match env(name) {
                None => {
                    problems.push(Invalid::new(
                        at,
                        Problem::Invalid {
                            found: Value::String(text.clone()).to_string(),
                            expected: format!(
                                "the environment variable {name} to be set (it is not)"
                            ),
                        },
                    ));
                    value.clone()
                }
                // A port is a number: `"$PORT"` with PORT=8080 means 8080.
                Some(read) if key == Some("port") => match read.trim().parse::<u64>() {
                    Ok(port) => Value::Number(Number::from(port)),
                    Err(_) => {
                        problems.push(Invalid::new(
                            at,
                            Problem::Invalid {
                                found: format!(
                                    "{} (the environment variable {name} is {})",
                                    Value::String(text.clone()),
                                    crate::cursor::shorten(&Value::String(read))
                                ),
                                expected: "an integer (a TCP port) in the environment variable"
                                    .to_owned(),
                            },
                        ));
                        value.clone()
                    }
                },
                Some(read) => Value::String(read),
            }
        }
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn variable_forms() {
        assert_eq!(variable("$PORT"), Some("PORT"));
        assert_eq!(variable("$_x1"), Some("_x1"));
        assert_eq!(variable("${TICKET}"), Some("TICKET"));
        assert_eq!(variable("${A.B}"), Some("A.B"));
        assert_eq!(variable("$1X"), None);
        assert_eq!(variable("$"), None);
        assert_eq!(variable("${}"), None);
        assert_eq!(variable("a$B"), None);
        assert_eq!(variable("$A-B"), None);
        assert_eq!(variable("${A"), None);
        assert_eq!(variable("plain"), None);
    }

    #[test]
    fn errors_that_follow_from_others_are_dropped() {
        let at = |p: &str| {
            Invalid::new(
                p.to_owned(),
                Problem::Missing {
                    expected: "x".into(),
                },
            )
        };
        let refused = |p: &str| {
            Invalid::new(
                p.to_owned(),
                Problem::Unsupported {
                    found: "{}".into(),
                    message: "not supported".into(),
                },
            )
        };
        let merged = merge(
            vec![at("a.port"), at("b.secret"), at("c[0]")],
            vec![at("a.port"), refused("b"), at("c"), at("a.portx")],
        );
        let paths: Vec<&str> = merged.iter().map(|i| i.at.as_str()).collect();
        assert_eq!(paths, ["a.port", "c[0]", "b", "c", "a.portx"]);
        let merged = merge(
            vec![at("w[1].components[0].extra")],
            vec![refused("w[1].type")],
        );
        let paths: Vec<&str> = merged.iter().map(|i| i.at.as_str()).collect();
        assert_eq!(paths, ["w[1].type"]);
    }

    #[test]
    fn substitutes_strings_and_ports() {
        let env = |name: &str| match name {
            "PORT" => Some("8080".to_owned()),
            "T" => Some("s3cret".to_owned()),
            _ => None,
        };
        let doc = json!({"a": [{"port": "$PORT"}, "${T}", "$T", "x$T", 5]});
        let (out, problems) = substitute(&doc, &env);
        assert!(problems.is_empty());
        assert_eq!(
            out,
            json!({"a": [{"port": 8080}, "s3cret", "s3cret", "x$T", 5]})
        );
    }

    #[test]
    fn every_missing_variable_is_reported() {
        let env = |name: &str| (name == "P").then(|| "eighty".to_owned());
        let doc = json!({"x": {"port": "$P"}, "y": ["${NOPE}"], "z": "$ALSO_NOPE"});
        let (out, problems) = substitute(&doc, &env);
        assert_eq!(out, doc, "values with a problem are left as written");
        let shown: Vec<String> = problems
            .iter()
            .map(|p| format!("{}: {}", p.at, p.problem))
            .collect();
        assert_eq!(
            shown,
            [
                "x.port: found \"$P\" (the environment variable P is \"eighty\"), expected an \
                 integer (a TCP port) in the environment variable",
                "y[0]: found \"${NOPE}\", expected the environment variable NOPE to be set (it \
                 is not)",
                "z: found \"$ALSO_NOPE\", expected the environment variable ALSO_NOPE to be set \
                 (it is not)",
            ]
        );
    }
}
