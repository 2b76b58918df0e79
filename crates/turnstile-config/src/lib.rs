//! Loads and validates a Crossbar.io-style node configuration (`.crossbar/config.json` or
//! `config.yaml`) into the typed [`model`] the router reads.
//!
//! Everything is checked before anything listens, and nothing is silently ignored (Crossbar keys
//! that mean nothing in Turnstile are accepted and listed in [`NodeConfig::inapplicable`], for
//! the router to say so at start): unknown keys,
//! wrong types, out-of-range values and Crossbar features Turnstile does not implement yet are
//! refused with a [`ConfigError`] naming the file, the key path and the rule of each error (every
//! error of the file at once, see [`MAX_SHOWN_ERRORS`]), e.g.
//!
//! ```text
//! config error in /x/config.json at workers[0].realms[0].stats.rated_message_size: found 300, expected a power of two between 1 and 1073741824
//! ```
//!
//! # Layout
//! - [`load`]: [`load_file`], [`load_str`], [`find_in_cbdir`]: read and parse JSON or YAML.
//! - [`env`]: the pass that reads `"$NAME"` and `"${NAME}"` values from the environment.
//! - `validate`: the schema, section by section, over a path-tracking cursor (`cursor`).
//! - [`ciphers`]: `endpoint.tls.ciphers`, an OpenSSL cipher string, read into TLS suites.
//! - [`default`]: [`default_config`] and the text `turnstile init` writes.
//! - [`error`]: [`ConfigError`] and [`Problem`].
//! - [`model`]: the validated configuration.

pub mod ciphers;
mod cursor;
pub mod default;
pub mod env;
pub mod error;
pub mod load;
pub mod model;
mod validate;

pub use ciphers::{CipherStringError, TlsCiphers, TlsSuite};
pub use default::{default_config, DEFAULT_CONFIG_JSON, INIT_CONFIG_JSON};
pub use env::EnvLookup;
pub use error::{ConfigError, Issue, Problem, MAX_SHOWN_ERRORS};
pub use load::{find_in_cbdir, load_file, load_file_with_env, load_str, load_str_with_env, Format};
pub use model::*;
