//! Loading and validating a node configuration text (`turnstile_config::load_str`).
//!
//! For any input that is UTF-8 (other inputs are skipped: a file is read as a string first),
//! [`check`] requires:
//!
//! 1. `load_str` returns, never panics (nor overflows the stack).
//! 2. An error is a `Syntax` or `Invalid` error (the others are about files, which `load_str`
//!    does not read), and every part of its message is non-empty: the parser's message of a
//!    syntax error; the key path and the problem's fields (found, expected, message) of an
//!    invalid configuration. Its `Display` names the origin file.

use std::path::Path;

use turnstile_config::{load_str, ConfigError, Format, Problem};

/// Runs the checks above on `data` as a configuration in `format`; panics if one fails.
pub fn check(format: Format, data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let origin = match format {
        Format::Json => Path::new("/fuzz/config.json"),
        Format::Yaml => Path::new("/fuzz/config.yaml"),
    };
    let Err(err) = load_str(text, format, origin) else {
        return;
    };
    let shown = err.to_string();
    assert!(
        shown.contains(&*origin.to_string_lossy()),
        "the error does not name the file: {shown}"
    );
    match &err {
        ConfigError::Syntax { message, .. } => {
            assert!(!message.trim().is_empty(), "empty syntax error: {err:?}")
        }
        ConfigError::Invalid { at, problem, .. } => {
            assert!(!at.trim().is_empty(), "error without a key path: {err:?}");
            let parts: Vec<&str> = match problem {
                Problem::Invalid { found, expected } => vec![found, expected],
                Problem::Missing { expected } => vec![expected],
                Problem::UnknownKey { .. } => vec![],
                Problem::Unsupported { found, message } | Problem::Conflict { found, message } => {
                    vec![found, message]
                }
            };
            for p in parts {
                assert!(
                    !p.trim().is_empty(),
                    "a problem with an empty part: {err:?}"
                );
            }
        }
        other => panic!("load_str returned a file error: {other:?}"),
    }
}
