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

    /// The document parsed but is not a valid configuration. `at` and `problem` are the first
    /// error, `more` the others, in the order they were found: environment variables that
    /// could not be read first, then the validator's, which walks the document (an object's
    /// keys in sorted order). `Display` shows each on a line of its own
    /// (at most [`MAX_SHOWN_ERRORS`], then how many more there are).
    #[error("{}", show_invalid(.file, .at, .problem, .more))]
    Invalid {
        /// The file (or the origin given to [`crate::load_str`]).
        file: PathBuf,
        /// The path to the offending key, e.g. `workers[0].transports[1].endpoint.port`;
        /// `(top level)` for the document itself.
        at: String,
        /// What is wrong there.
        problem: Problem,
        /// The other errors of the file (empty when there is only one).
        more: Box<[Issue]>,
    },
}

/// How many errors of one file [`ConfigError::Invalid`]'s `Display` shows; the count of the
/// others follows them.
pub const MAX_SHOWN_ERRORS: usize = 20;

/// One error of a configuration: a [`Problem`] at a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// The path to the offending key (see [`ConfigError::Invalid`]).
    pub at: String,
    /// What is wrong there.
    pub problem: Problem,
}

impl ConfigError {
    /// Every error of an invalid configuration (`at` and `problem` first, then `more`) as
    /// `(key path, problem)`; empty for the other kinds of error.
    pub fn issues(&self) -> Vec<(&str, &Problem)> {
        match self {
            ConfigError::Invalid {
                at, problem, more, ..
            } => std::iter::once((at.as_str(), problem))
                .chain(more.iter().map(|i| (i.at.as_str(), &i.problem)))
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// One line per error, each naming the file, so that every line stands on its own (and can be
/// searched for); after [`MAX_SHOWN_ERRORS`] lines, one that says how many were left out.
fn show_invalid(file: &std::path::Path, at: &str, problem: &Problem, more: &[Issue]) -> String {
    let file = file.display();
    let mut lines = vec![format!("config error in {file} at {at}: {problem}")];
    for issue in more.iter().take(MAX_SHOWN_ERRORS - 1) {
        lines.push(format!(
            "config error in {file} at {}: {}",
            issue.at, issue.problem
        ));
    }
    let total = 1 + more.len();
    if total > MAX_SHOWN_ERRORS {
        lines.push(format!(
            "... and {} more config errors in {file} ({total} in all; the first \
             {MAX_SHOWN_ERRORS} are shown)",
            total - MAX_SHOWN_ERRORS
        ));
    }
    lines.join("\n")
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
        /// The allowed key nearest to the one found (a likely misspelling), if one is near.
        suggestion: Option<&'static str>,
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
            Problem::UnknownKey { allowed, .. } if allowed.is_empty() => {
                write!(f, "unknown key, no keys are allowed here")
            }
            Problem::UnknownKey {
                allowed,
                suggestion: Some(near),
            } => write!(
                f,
                "unknown key, did you mean `{near}`? allowed keys here: {}",
                allowed.join(", ")
            ),
            Problem::UnknownKey {
                allowed,
                suggestion: None,
            } => {
                write!(f, "unknown key, allowed keys here: {}", allowed.join(", "))
            }
            Problem::Unsupported { found, message } => write!(f, "found {found}: {message}"),
            Problem::Conflict { found, message } => write!(f, "found {found}: {message}"),
        }
    }
}

/// A [`Problem`] at a key path, before the file name is attached (see [`Invalid::in_file`]).
/// Where the validator goes on past an error to find the errors of independent siblings (each
/// worker, transport, realm, role, ...), the first error carries the others in `more`
/// ([`Invalid::all`]), so that validation functions keep returning one error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Invalid {
    pub at: String,
    pub problem: Problem,
    pub more: Vec<Invalid>,
}

impl Invalid {
    pub(crate) fn new(at: String, problem: Problem) -> Self {
        Invalid {
            at,
            problem,
            more: Vec::new(),
        }
    }

    /// One error carrying all of `errors` (in order); `None` if there are none.
    pub(crate) fn all(errors: Vec<Invalid>) -> Option<Invalid> {
        let mut flat = errors.into_iter().flat_map(Invalid::flatten);
        let mut first = flat.next()?;
        first.more = flat.collect();
        Some(first)
    }

    /// This error and the ones it carries, each without `more`.
    pub(crate) fn flatten(mut self) -> Vec<Invalid> {
        let more = std::mem::take(&mut self.more);
        let mut out = vec![self];
        out.extend(more.into_iter().flat_map(Invalid::flatten));
        out
    }

    pub(crate) fn in_file(self, file: PathBuf) -> ConfigError {
        let mut flat = self.flatten().into_iter();
        let first = flat.next().expect("flatten keeps the error itself");
        ConfigError::Invalid {
            file,
            at: first.at,
            problem: first.problem,
            more: flat
                .map(|i| Issue {
                    at: i.at,
                    problem: i.problem,
                })
                .collect(),
        }
    }
}
