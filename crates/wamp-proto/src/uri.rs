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
    /// `exact`: the pattern matches only the identical URI.
    #[default]
    Exact,
    /// `prefix`: the pattern matches every URI that starts with it.
    Prefix,
    /// `wildcard`: an empty component of the pattern (`a..c`) matches any one component; the
    /// component counts must be equal.
    Wildcard,
}

impl MatchPolicy {
    /// The policy's name as in the `match` option and configuration: `exact`, `prefix`, `wildcard`.
    pub fn as_str(&self) -> &'static str {
        match self {
            MatchPolicy::Exact => "exact",
            MatchPolicy::Prefix => "prefix",
            MatchPolicy::Wildcard => "wildcard",
        }
    }
    /// The policy named `s` (`exact`, `prefix`, `wildcard`), the inverse of [`MatchPolicy::as_str`].
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

#[cfg(test)]
mod tests {
    use super::*;
    use MatchPolicy::*;
    use UriRules::*;

    #[test]
    fn loose_and_strict_uris() {
        for uri in [
            "com.myapp.topic1",
            "a",
            "wamp.error.not_authorized",
            "x_1.2_y",
        ] {
            assert!(is_valid_uri(uri, Strict, false), "{uri}");
            assert!(is_valid_uri(uri, Loose, false), "{uri}");
        }
        // Loose only: upper case, dashes, unicode, other punctuation.
        for uri in ["com.MyApp.topic", "a-b.c", "café.crème", "x:y/z", "ä"] {
            assert!(is_valid_uri(uri, Loose, false), "{uri}");
            assert!(!is_valid_uri(uri, Strict, false), "{uri}");
        }
        // Neither: whitespace, '#', empty components, the empty string.
        for uri in [
            "a b", "a\tb", "a.b\n", "a#b", "#", "com..foo", "com.", ".com", "", ".", "a.\u{a0}",
        ] {
            assert!(!is_valid_uri(uri, Loose, false), "{uri:?}");
            assert!(!is_valid_uri(uri, Strict, false), "{uri:?}");
        }
    }

    #[test]
    fn empty_components_when_allowed() {
        for uri in ["com..foo", "com.", ".com", "", ".", "..", "a.b.c"] {
            assert!(is_valid_uri(uri, Loose, true), "{uri:?}");
            assert!(is_valid_uri(uri, Strict, true), "{uri:?}");
        }
        for uri in ["a..b c", "a.#.b", "a. .b"] {
            assert!(!is_valid_uri(uri, Loose, true), "{uri:?}");
        }
        assert!(!is_valid_uri("com..Foo", Strict, true));
        assert!(is_valid_uri("com..Foo", Loose, true));
    }

    #[test]
    fn patterns_per_policy() {
        let cases = [
            // (uri, exact, prefix, wildcard)
            ("com.myapp.topic", true, true, true),
            ("com.myapp.", false, true, true),
            ("", false, true, true),
            ("com..topic", false, false, true),
            (".myapp.topic", false, false, true),
            ("com.myapp..", false, false, true),
            ("..", false, false, true),
            ("com.my app", false, false, false),
            ("com.#", false, false, false),
        ];
        for (uri, exact, prefix, wildcard) in cases {
            assert_eq!(validate_pattern(uri, Loose, Exact), exact, "exact {uri:?}");
            assert_eq!(
                validate_pattern(uri, Loose, Prefix),
                prefix,
                "prefix {uri:?}"
            );
            assert_eq!(
                validate_pattern(uri, Loose, Wildcard),
                wildcard,
                "wildcard {uri:?}"
            );
        }
        assert!(!validate_pattern("Com.", Strict, Prefix));
        assert!(validate_pattern("com.", Strict, Prefix));
        assert!(!validate_pattern("com..Topic", Strict, Wildcard));
    }

    #[test]
    fn policy_names() {
        for p in [Exact, Prefix, Wildcard] {
            assert_eq!(MatchPolicy::parse(p.as_str()), Some(p));
        }
        assert_eq!(MatchPolicy::parse("regex"), None);
        assert_eq!(MatchPolicy::default(), Exact);
        assert_eq!(UriRules::default(), Loose);
    }

    #[test]
    fn matching() {
        assert!(Exact.matches("com.a.b", "com.a.b"));
        assert!(!Exact.matches("com.a", "com.a.b"));

        assert!(Prefix.matches("com.a", "com.a"));
        assert!(Prefix.matches("com.a", "com.a.b"));
        assert!(Prefix.matches("com.a.", "com.a.b"));
        assert!(!Prefix.matches("com.a.", "com.a"));
        // Prefix matching is on characters, as in Crossbar.
        assert!(Prefix.matches("com.a", "com.ab"));
        assert!(Prefix.matches("", "anything.at.all"));
        assert!(!Prefix.matches("com.b", "com.a.b"));

        assert!(Wildcard.matches("com..b", "com.a.b"));
        assert!(Wildcard.matches("com..b", "com.x.b"));
        assert!(Wildcard.matches("..", "a.b.c"));
        assert!(Wildcard.matches("", "a"));
        assert!(!Wildcard.matches("", "a.b"));
        assert!(!Wildcard.matches("com..b", "com.a.c"));
        assert!(!Wildcard.matches("com..b", "com.a.b.c"));
        assert!(!Wildcard.matches("com..b", "com.b"));
        assert!(Wildcard.matches("com.a.b", "com.a.b"));
        assert!(!Wildcard.matches("com..", "com.a"));
        assert!(Wildcard.matches("com..", "com.a.b"));
    }
}
