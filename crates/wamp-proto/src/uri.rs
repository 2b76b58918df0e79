//! URI syntax rules (loose and strict) and match policies for patterns.
//! (stub: replaced by the serializer work)

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
pub fn is_valid_uri(uri: &str, rules: UriRules, allow_empty: bool) -> bool {
    let _ = (uri, rules, allow_empty);
    todo!("serializer work")
}
