//! [`ConfigError`]: every way loading a configuration can fail, each rendered as one line that
//! names the file (and, for content errors, the path to the offending key).

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Why a configuration could not be loaded. `Display` is one line meant for the operator, e.g.
///
/// ```text
/// config error in /x/config.json at workers[0].realms[0].stats.rated_message_size: found 300, expected a power of two between 1 and 1073741824
/// ```
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {}: {source}", .file.display())]
    Io {
        /// The file that could not be read.
        file: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },

    /// The file name does not end in `.json`, `.yaml` or `.yml`.
    #[error(
        "cannot load config file {}: unknown file type, expected a name ending in .json, .yaml or .yml",
        .file.display()
    )]
    UnknownFormat {
        /// The file whose name has no known extension.
        file: PathBuf,
    },

    /// A configuration directory has neither `config.json` nor `config.yaml`.
    #[error("no config file in {}: neither {} nor {} exists", .dir.display(), .json.display(), .yaml.display())]
    NotFound {
        /// The configuration directory searched.
        dir: PathBuf,
        /// The `config.json` path that does not exist.
        json: PathBuf,
        /// The `config.yaml` path that does not exist.
        yaml: PathBuf,
    },

    /// The text is not valid JSON or YAML (or has a duplicate key).
    #[error("config syntax error in {} ({format}){}: {message}", .file.display(), at_line(.location))]
    Syntax {
        /// The file (or the origin given to [`crate::load_str`]).
        file: PathBuf,
        /// The syntax it was parsed as.
        format: crate::Format,
        /// 1-based line and column, when the parser knows them.
        location: Option<(usize, usize)>,
        /// The parser's description of the error.
        message: String,
    },

    /// The document parsed but is not a valid configuration.
    #[error("config error in {} at {at}: {problem}", .file.display())]
    Invalid {
        /// The file (or the origin given to [`crate::load_str`]).
        file: PathBuf,
        /// The path to the offending key, e.g. `workers[0].transports[1].endpoint.port`;
        /// `(top level)` for the document itself.
        at: String,
        /// What is wrong there.
        problem: Problem,
    },
}

fn at_line(location: &Option<(usize, usize)>) -> String {
    match location {
        Some((line, column)) => format!(" at line {line}, column {column}"),
        None => String::new(),
    }
}

/// What is wrong with a value of a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// A value of the wrong type, out of range or not one of the allowed values.
    Invalid {
        /// The value found, as compact JSON, shortened.
        found: String,
        /// What is allowed there.
        expected: String,
    },
    /// A required key is absent.
    Missing {
        /// What the key should hold.
        expected: String,
    },
    /// A key that is not part of the schema at this place.
    UnknownKey {
        /// The keys allowed at this place (empty when none are).
        allowed: Vec<&'static str>,
    },
    /// A Crossbar feature Turnstile does not implement (yet).
    Unsupported {
        /// What was found, described for the operator (secrets hidden).
        found: String,
        /// What is not supported, and the alternative if there is one.
        message: String,
    },
    /// A value that clashes with another part of the configuration (duplicate names, two
    /// transports on one port, ...).
    Conflict {
        /// The clashing value, described for the operator.
        found: String,
        /// What it clashes with.
        message: String,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Invalid { found, expected } => write!(f, "found {found}, expected {expected}"),
            Problem::Missing { expected } => write!(f, "missing required key, expected {expected}"),
            Problem::UnknownKey { allowed } if allowed.is_empty() => {
                write!(f, "unknown key, no keys are allowed here")
            }
            Problem::UnknownKey { allowed } => {
                write!(f, "unknown key, allowed keys here: {}", allowed.join(", "))
            }
            Problem::Unsupported { found, message } => write!(f, "found {found}: {message}"),
            Problem::Conflict { found, message } => write!(f, "found {found}: {message}"),
        }
    }
}

/// A [`Problem`] at a key path, before the file name is attached (see [`Invalid::in_file`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Invalid {
    pub at: String,
    pub problem: Problem,
}

impl Invalid {
    pub(crate) fn in_file(self, file: PathBuf) -> ConfigError {
        ConfigError::Invalid {
            file,
            at: self.at,
            problem: self.problem,
        }
    }
}
