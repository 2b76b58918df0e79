//! A table of URI patterns (exact, prefix, wildcard) with the matching rules of WAMP: the one
//! shape behind the broker's subscriptions and the dealer's registrations.
//!
//! Each entry has a random id (unique in its table) and one (URI, match policy); at most one entry
//! exists per (URI, policy). Looking up an exact URI is one hash lookup that allocates nothing;
//! prefix and wildcard entries are kept in a separate list, checked against every URI matched.

use std::collections::{BTreeMap, HashMap};

use wamp_proto::{random_id, Id, MatchPolicy};

/// What a [`UriTable`] needs to know of its entries.
pub(crate) trait UriPattern {
    /// The entry's URI (a prefix or a wildcard pattern unless its policy is exact).
    fn uri(&self) -> &str;
    /// How the URI matches.
    fn policy(&self) -> MatchPolicy;
}

/// Entries of type `T` by id and by (URI, match policy).
#[derive(Debug)]
pub(crate) struct UriTable<T> {
    /// Per match policy (see [`policy_index`]): URI to id; lookups by `&str` allocate nothing.
    by_uri: [HashMap<String, Id>; 3],
    entries: HashMap<Id, T>,
    /// Prefix and wildcard entries by creation number, so in creation order: checked against
    /// every URI matched. Removing one is O(log n) and never moves the others: no removal
    /// costs the square of their number (a linear list), or a renumbering of all of them (a
    /// list compacted now and then, which took over 10 ms in one step of a large leave).
    patterns: BTreeMap<u64, Id>,
    /// Per pattern entry: its creation number, its key in `patterns`.
    pattern_numbers: HashMap<Id, u64>,
    /// The creation number of the next pattern entry.
    next_number: u64,
}

impl<T> Default for UriTable<T> {
    fn default() -> Self {
        Self {
            by_uri: Default::default(),
            entries: HashMap::new(),
            patterns: BTreeMap::new(),
            pattern_numbers: HashMap::new(),
            next_number: 0,
        }
    }
}

impl<T: UriPattern> UriTable<T> {
    /// The id of the entry of exactly (`uri`, `policy`), if any.
    pub(crate) fn find(&self, uri: &str, policy: MatchPolicy) -> Option<Id> {
        self.by_uri[policy_index(policy)].get(uri).copied()
    }

    /// The entry of exactly (`uri`, `policy`), if any, to change.
    pub(crate) fn find_mut(&mut self, uri: &str, policy: MatchPolicy) -> Option<&mut T> {
        let id = self.by_uri[policy_index(policy)].get(uri)?;
        self.entries.get_mut(id)
    }

    /// Entries of the table and of its indexes (for [`crate::realm::TableSizes`]).
    pub(crate) fn footprint(&self) -> usize {
        let by_uri: usize = self.by_uri.iter().map(HashMap::len).sum();
        by_uri + self.entries.len() + self.patterns.len() + self.pattern_numbers.len()
    }

    pub(crate) fn get(&self, id: Id) -> Option<&T> {
        self.entries.get(&id)
    }

    pub(crate) fn get_mut(&mut self, id: Id) -> Option<&mut T> {
        self.entries.get_mut(&id)
    }

    /// Adds the entry `make(id)` under a fresh id. The caller checked with [`UriTable::find`]
    /// that (`uri`, `policy`) has no entry yet; `make` must give the entry that URI and policy.
    pub(crate) fn insert_with(
        &mut self,
        uri: &str,
        policy: MatchPolicy,
        make: impl FnOnce(Id) -> T,
    ) -> Id {
        debug_assert!(
            self.find(uri, policy).is_none(),
            "one entry per (URI, policy)"
        );
        let id = loop {
            let id = random_id();
            if !self.entries.contains_key(&id) {
                break id;
            }
        };
        let entry = make(id);
        debug_assert!(entry.uri() == uri && entry.policy() == policy);
        self.by_uri[policy_index(policy)].insert(uri.to_owned(), id);
        if policy != MatchPolicy::Exact {
            self.pattern_numbers.insert(id, self.next_number);
            self.patterns.insert(self.next_number, id);
            self.next_number += 1;
        }
        self.entries.insert(id, entry);
        id
    }

    /// Removes entry `id` from the table and its indexes.
    pub(crate) fn remove(&mut self, id: Id) -> Option<T> {
        let entry = self.entries.remove(&id)?;
        self.by_uri[policy_index(entry.policy())].remove(entry.uri());
        if let Some(number) = self.pattern_numbers.remove(&id) {
            self.patterns.remove(&number);
        }
        Some(entry)
    }

    /// The prefix and wildcard entries in creation order, with their ids.
    fn patterns(&self) -> impl Iterator<Item = (Id, &T)> {
        self.patterns
            .values()
            .filter_map(|&id| self.entries.get(&id).map(|e| (id, e)))
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> {
        self.entries.values()
    }

    /// Whether some entry matches `uri`. With many patterns it looks up the patterns that could
    /// match `uri` instead of trying each one: every prefix of `uri`, and every wildcard of its
    /// shape (each component fixed or empty) when there are fewer such shapes than wildcards.
    /// Meta events are tested this way before they are built, one per removed entry while a
    /// large session leaves, so this must not cost a scan of a large table each time.
    pub(crate) fn has_match(&self, uri: &str) -> bool {
        if self.by_uri[0].contains_key(uri) {
            return true;
        }
        let prefixes = &self.by_uri[policy_index(MatchPolicy::Prefix)];
        let prefix_match = if prefixes.len() > uri.len() {
            (0..=uri.len())
                .filter(|&i| uri.is_char_boundary(i))
                .any(|i| prefixes.contains_key(&uri[..i]))
        } else {
            prefixes.keys().any(|p| uri.starts_with(p.as_str()))
        };
        if prefix_match {
            return true;
        }
        let wildcards = &self.by_uri[policy_index(MatchPolicy::Wildcard)];
        if wildcards.is_empty() {
            return false;
        }
        let parts: Vec<&str> = uri.split('.').collect();
        if parts.len() >= usize::BITS as usize - 1 || (1usize << parts.len()) >= wildcards.len() {
            return wildcards
                .keys()
                .any(|p| MatchPolicy::Wildcard.matches(p, uri));
        }
        let mut pattern = String::with_capacity(uri.len());
        (0..1usize << parts.len()).any(|fixed| {
            pattern.clear();
            for (i, part) in parts.iter().enumerate() {
                if i > 0 {
                    pattern.push('.');
                }
                if fixed & (1 << i) != 0 {
                    pattern.push_str(part);
                }
            }
            wildcards.contains_key(pattern.as_str())
        })
    }

    /// Ids of every entry that matches `uri` (the pub/sub rule: all of them receive): the exact
    /// one first, then the patterns in creation order.
    pub(crate) fn matching(&self, uri: &str) -> Vec<Id> {
        let mut out = Vec::with_capacity(1);
        if let Some(&id) = self.by_uri[0].get(uri) {
            out.push(id);
        }
        for (id, entry) in self.patterns() {
            if entry.policy().matches(entry.uri(), uri) {
                out.push(id);
            }
        }
        out
    }

    /// The one entry that `uri` goes to (the RPC rule): the exact one, else the longest matching
    /// prefix, else the matching wildcard whose fixed components reach furthest; only entries
    /// that `keep` accepts count.
    pub(crate) fn best_match(&self, uri: &str, keep: impl Fn(&T) -> bool) -> Option<Id> {
        if let Some(&id) = self.by_uri[0].get(uri) {
            if self.entries.get(&id).is_some_and(&keep) {
                return Some(id);
            }
        }
        let mut best_prefix: Option<(Id, usize)> = None;
        let mut best_wildcard: Option<(Id, &str)> = None;
        for (id, entry) in self.patterns() {
            let pattern = entry.uri();
            if !entry.policy().matches(pattern, uri) || !keep(entry) {
                continue;
            }
            if entry.policy() == MatchPolicy::Prefix {
                if best_prefix.is_none_or(|(_, len)| pattern.len() > len) {
                    best_prefix = Some((id, pattern.len()));
                }
            } else if best_wildcard.is_none_or(|(_, best)| wildcard_beats(pattern, best)) {
                best_wildcard = Some((id, pattern));
            }
        }
        best_prefix
            .map(|(id, _)| id)
            .or(best_wildcard.map(|(id, _)| id))
    }
}

/// Whether wildcard pattern `a` is more specific than `b`: compared component by component, a
/// fixed one beats an empty one at the first place they differ (the WAMP spec's rule:
/// `a.b.c..e` beats `a.b..d.e`). Compared lazily, so matching a call allocates nothing.
fn wildcard_beats(a: &str, b: &str) -> bool {
    a.split('.')
        .map(|c| !c.is_empty())
        .cmp(b.split('.').map(|c| !c.is_empty()))
        .is_gt()
}

/// The slot of a match policy in per-policy tables.
fn policy_index(policy: MatchPolicy) -> usize {
    match policy {
        MatchPolicy::Exact => 0,
        MatchPolicy::Prefix => 1,
        MatchPolicy::Wildcard => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Entry(String, MatchPolicy);

    impl UriPattern for Entry {
        fn uri(&self) -> &str {
            &self.0
        }
        fn policy(&self) -> MatchPolicy {
            self.1
        }
    }

    fn add(t: &mut UriTable<Entry>, uri: &str, policy: MatchPolicy) -> Id {
        t.insert_with(uri, policy, |_| Entry(uri.into(), policy))
    }

    #[test]
    fn one_entry_per_uri_and_policy() {
        let mut t = UriTable::default();
        let e = add(&mut t, "a.b", MatchPolicy::Exact);
        let p = add(&mut t, "a.b", MatchPolicy::Prefix);
        assert_ne!(e, p);
        assert_eq!(t.find("a.b", MatchPolicy::Exact), Some(e));
        assert_eq!(t.find("a.b", MatchPolicy::Prefix), Some(p));
        assert_eq!(t.find("a.b", MatchPolicy::Wildcard), None);
        assert_eq!(t.remove(p).map(|e| e.1), Some(MatchPolicy::Prefix));
        assert_eq!(t.find("a.b", MatchPolicy::Prefix), None);
        assert!(t.get(p).is_none());
        assert_eq!(t.matching("a.b.c"), Vec::<Id>::new());
        assert_eq!(t.iter().count(), 1);
    }

    #[test]
    fn matching_returns_exact_first_then_patterns() {
        let mut t = UriTable::default();
        let w = add(&mut t, "a..c", MatchPolicy::Wildcard);
        let p = add(&mut t, "a.b", MatchPolicy::Prefix);
        let e = add(&mut t, "a.b.c", MatchPolicy::Exact);
        add(&mut t, "x", MatchPolicy::Prefix);
        assert_eq!(t.matching("a.b.c"), vec![e, w, p]);
        assert_eq!(t.matching("a.z.c"), vec![w]);
        assert_eq!(t.matching("b"), Vec::<Id>::new());
    }

    #[test]
    fn has_match_agrees_with_matching() {
        let mut t = UriTable::default();
        let uris = ["a.b.c", "a.bc", "x..z", "a..c", ".b.", "a.b.c.d", "é.ü"];
        for n_filler in [0, 40] {
            for i in 0..n_filler {
                add(&mut t, &format!("f{i}."), MatchPolicy::Prefix);
                add(&mut t, &format!("f{i}..g"), MatchPolicy::Wildcard);
            }
            for pattern in ["a.b", "é", "zz"] {
                if t.find(pattern, MatchPolicy::Prefix).is_none() {
                    add(&mut t, pattern, MatchPolicy::Prefix);
                }
            }
            for pattern in ["x..z", ".q."] {
                if t.find(pattern, MatchPolicy::Wildcard).is_none() {
                    add(&mut t, pattern, MatchPolicy::Wildcard);
                }
            }
            for uri in uris
                .iter()
                .chain(&["x.y.z", "a.q.b", "f3.x.g", "f3.x", "q"])
            {
                assert_eq!(t.has_match(uri), !t.matching(uri).is_empty(), "{uri}");
            }
        }
    }

    #[test]
    fn best_match_is_exact_then_longest_prefix_then_wildcard() {
        let mut t = UriTable::default();
        let w = add(&mut t, "a..c", MatchPolicy::Wildcard);
        let p1 = add(&mut t, "a.", MatchPolicy::Prefix);
        let p2 = add(&mut t, "a.b", MatchPolicy::Prefix);
        let e = add(&mut t, "a.b.c", MatchPolicy::Exact);
        assert_eq!(t.best_match("a.b.c", |_| true), Some(e));
        assert_eq!(t.best_match("a.b.x", |_| true), Some(p2));
        assert_eq!(t.best_match("a.x.c", |_| true), Some(p1));
        assert_eq!(t.best_match("z.x.c", |_| true), None);
        t.remove(p1);
        assert_eq!(t.best_match("a.x.c", |_| true), Some(w));
        // Entries `keep` refuses are passed over.
        assert_eq!(
            t.best_match("a.b.c", |e| e.1 != MatchPolicy::Exact),
            Some(p2)
        );
    }

    #[test]
    fn wildcard_whose_fixed_components_reach_furthest_wins() {
        let mut t = UriTable::default();
        let later = add(&mut t, "a.b..d.e", MatchPolicy::Wildcard);
        let earlier_fixed = add(&mut t, "a.b.c..e", MatchPolicy::Wildcard);
        add(&mut t, "...d.e", MatchPolicy::Wildcard);
        assert_eq!(t.best_match("a.b.c.d.e", |_| true), Some(earlier_fixed));
        t.remove(earlier_fixed);
        assert_eq!(t.best_match("a.b.c.d.e", |_| true), Some(later));
        // Wildcards only match URIs with as many components as they have.
        assert_eq!(t.best_match("a.b.c.d.e.f", |_| true), None);
    }

    #[test]
    fn removing_patterns_keeps_creation_order() {
        let mut t = UriTable::default();
        let ids: Vec<Id> = (0..10)
            .map(|i| add(&mut t, &format!("a.{i}"), MatchPolicy::Prefix))
            .collect();
        let all = add(&mut t, "a", MatchPolicy::Prefix);
        for &id in &ids[..8] {
            assert!(t.remove(id).is_some());
        }
        assert_eq!(t.matching("a.8"), vec![ids[8], all]);
        assert_eq!(t.best_match("a.9", |_| true), Some(ids[9]));
        let later = add(&mut t, "a.9", MatchPolicy::Wildcard);
        t.remove(ids[9]);
        assert_eq!(t.matching("a.9"), vec![all, later]);
        assert_eq!(t.best_match("a.9", |_| true), Some(all));
        t.remove(all);
        t.remove(ids[8]);
        assert_eq!(t.matching("a.9"), vec![later]);
    }
}
