//! URI syntax rules (loose and strict) and match policies for patterns.

/// Which URI syntax rule applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UriRules {
    /// `^([^\s\.#]+\.)*([^\s\.#]+)$`
    #[default]
    Loose,
    /// `^([0-9a-z_]+\.)*([0-9a-z_]+)$`
    Strict,
}

/// How a subscription, registration or permission URI matches concrete URIs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum MatchPolicy {
    #[default]
    Exact,
    Prefix,
    Wildcard,
}

impl MatchPolicy {
    pub fn as_str(&self) -> &'static str {
        match self {
            MatchPolicy::Exact => "exact",
            MatchPolicy::Prefix => "prefix",
            MatchPolicy::Wildcard => "wildcard",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "exact" => Some(MatchPolicy::Exact),
            "prefix" => Some(MatchPolicy::Prefix),
            "wildcard" => Some(MatchPolicy::Wildcard),
            _ => None,
        }
    }
    /// Whether the pattern `pattern` under this policy matches the concrete `uri`.
    pub fn matches(&self, pattern: &str, uri: &str) -> bool {
        match self {
            MatchPolicy::Exact => pattern == uri,
            MatchPolicy::Prefix => uri.starts_with(pattern),
            MatchPolicy::Wildcard => {
                let mut p = pattern.split('.');
                let mut u = uri.split('.');
                loop {
                    match (p.next(), u.next()) {
                        (None, None) => return true,
                        (Some(pc), Some(uc)) => {
                            if !pc.is_empty() && pc != uc {
                                return false;
                            }
                        }
                        _ => return false,
                    }
                }
            }
        }
    }
}

/// Checks `uri` against `rules`. `allow_empty` permits empty components (only for patterns:
/// prefix and wildcard). Returns `false` for the empty string unless `allow_empty`.
///
/// Components are separated by `.`. Under [`UriRules::Loose`] a component may hold any character
/// but whitespace, `.` and `#` (`^([^\s\.#]+\.)*([^\s\.#]+)$`); under [`UriRules::Strict`]
/// only `0-9`, `a-z` and `_` (`^([0-9a-z_]+\.)*([0-9a-z_]+)$`). With `allow_empty`, components
/// may be empty: `com..foo`, `com.`, `.com` and `""` are then valid.
pub fn is_valid_uri(uri: &str, rules: UriRules, allow_empty: bool) -> bool {
    uri.split('.')
        .all(|c| is_valid_component(c, rules, allow_empty))
}

fn is_valid_component(c: &str, rules: UriRules, allow_empty: bool) -> bool {
    if c.is_empty() {
        return allow_empty;
    }
    match rules {
        UriRules::Loose => !c.chars().any(|ch| ch == '#' || ch.is_whitespace()),
        UriRules::Strict => c
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase() || b == b'_'),
    }
}

/// Checks a subscription, registration or permission URI used under `policy`:
/// - [`MatchPolicy::Exact`]: a full URI, no empty component;
/// - [`MatchPolicy::Prefix`]: no empty component except the last, so it may end with `.`
///   (`com.myapp.`), and `""` (matching every URI) is valid;
/// - [`MatchPolicy::Wildcard`]: any component may be empty (`com..update`, `.a.`).
pub fn validate_pattern(uri: &str, rules: UriRules, policy: MatchPolicy) -> bool {
    match policy {
        MatchPolicy::Exact => is_valid_uri(uri, rules, false),
        MatchPolicy::Prefix => {
            let body = uri.strip_suffix('.').unwrap_or(uri);
            uri.is_empty() || is_valid_uri(body, rules, false)
        }
        MatchPolicy::Wildcard => is_valid_uri(uri, rules, true),
    }
}
