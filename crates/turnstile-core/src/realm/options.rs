//! Reading typed options out of a message's `Options` dict, with errors that name the option.

use wamp_proto::{uris, Dict, Id, MatchPolicy, Value};

use super::RequestError;

pub(super) fn opt_bool(
    options: &Dict,
    key: &str,
    message: &str,
) -> Result<Option<bool>, RequestError> {
    match options.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(RequestError::new(
            uris::INVALID_ARGUMENT,
            format!(
                "{message} option {key} must be a boolean, found {}",
                other.type_name()
            ),
        )),
    }
}

pub(super) fn opt_ids(options: &Dict, key: &str) -> Result<Option<Vec<Id>>, RequestError> {
    match options.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::List(l)) => l
            .iter()
            .map(|v| v.as_u64())
            .collect::<Option<Vec<_>>>()
            .map(Some)
            .ok_or_else(|| bad_list(key, "session IDs")),
        Some(_) => Err(bad_list(key, "session IDs")),
    }
}

pub(super) fn opt_strings(options: &Dict, key: &str) -> Result<Option<Vec<String>>, RequestError> {
    match options.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::List(l)) => l
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .map(Some)
            .ok_or_else(|| bad_list(key, "strings")),
        Some(_) => Err(bad_list(key, "strings")),
    }
}

pub(super) fn bad_list(key: &str, what: &str) -> RequestError {
    RequestError::new(
        uris::INVALID_ARGUMENT,
        format!("PUBLISH option {key} must be a list of {what}"),
    )
}

pub(super) fn match_policy(options: &Dict, message: &str) -> Result<MatchPolicy, RequestError> {
    match options.get("match") {
        None | Some(Value::Null) => Ok(MatchPolicy::Exact),
        Some(Value::Str(s)) => MatchPolicy::parse(s).ok_or_else(|| {
            RequestError::new(
                uris::INVALID_ARGUMENT,
                format!("{message} option match must be exact, prefix or wildcard; found \"{s}\""),
            )
        }),
        Some(other) => Err(RequestError::new(
            uris::INVALID_ARGUMENT,
            format!(
                "{message} option match must be a string, found {}",
                other.type_name()
            ),
        )),
    }
}
