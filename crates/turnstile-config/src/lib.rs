//! Loads and validates a Crossbar.io-style node configuration (`.crossbar/config.json` or
//! `config.yaml`) into the typed [`model`] the router reads.
//!
//! Everything is checked before anything listens, and nothing is silently ignored: unknown keys,
//! wrong types, out-of-range values and Crossbar features Turnstile does not implement yet are
//! refused with one [`ConfigError`] naming the file, the key path and the rule, e.g.
//!
//! ```text
//! config error in /x/config.json at workers[0].realms[0].stats.rated_message_size: found 300, expected a power of two between 1 and 1073741824
//! ```
//!
//! # Layout
//! - [`load`]: [`load_file`], [`load_str`], [`find_in_cbdir`]: read and parse JSON or YAML.
//! - `validate`: the schema, section by section, over a path-tracking cursor (`cursor`).
//! - [`default`]: [`default_config`] and the text `turnstile init` writes.
//! - [`error`]: [`ConfigError`] and [`Problem`].
//! - [`model`]: the validated configuration.

mod cursor;
pub mod default;
pub mod error;
pub mod load;
pub mod model;
mod validate;

pub use default::{default_config, DEFAULT_CONFIG_JSON, INIT_CONFIG_JSON};
pub use error::{ConfigError, Problem};
pub use load::{find_in_cbdir, load_file, load_str, Format};
pub use model::*;
