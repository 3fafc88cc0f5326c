//! Event-type patterns of subscriptions: exact (`invoice.paid`) or with `*` wildcards
//! (`order.*`, `*`). Pure; used by the catalog to route and by the admin API to validate.

/// An event-type pattern: exact (`invoice.paid`) or with `*` wildcards (`order.*`, `*`).
/// `*` matches any run of characters, dots included: `order.*` matches `order.paid` and
/// `order.item.added` but not `order` itself. Clones share the text (the catalog interns
/// patterns: 100 000 subscriptions to `*` hold one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    raw: std::sync::Arc<str>,
    wildcard: bool,
}

/// Why a pattern is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PatternError {
    #[error("event-type pattern is empty")]
    Empty,
    #[error("event-type pattern is longer than 255 characters")]
    TooLong,
    #[error("event-type pattern {0:?} contains whitespace or control characters")]
    BadCharacter(String),
}

impl Pattern {
    pub fn parse(s: &str) -> Result<Pattern, PatternError> {
        if s.is_empty() {
            return Err(PatternError::Empty);
        }
        if s.len() > 255 {
            return Err(PatternError::TooLong);
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(PatternError::BadCharacter(s.into()));
        }
        Ok(Pattern {
            raw: s.into(),
            wildcard: s.contains('*'),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The text, shared (no copy).
    pub fn shared_str(&self) -> std::sync::Arc<str> {
        self.raw.clone()
    }

    /// Contains `*` (otherwise it matches exactly one event type).
    pub fn is_wildcard(&self) -> bool {
        self.wildcard
    }

    pub fn matches(&self, event_type: &str) -> bool {
        if !self.wildcard {
            return &*self.raw == event_type;
        }
        glob(self.raw.as_bytes(), event_type.as_bytes())
    }
}

/// Iterative `*` glob matching, linear in practice (single backtrack point).
fn glob(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, si));
            pi += 1;
        } else if pi < p.len() && p[pi] == s[si] {
            pi += 1;
            si += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, s: &str) -> bool {
        Pattern::parse(p).unwrap().matches(s)
    }

    #[test]
    fn exact_patterns_match_only_themselves() {
        assert!(m("invoice.paid", "invoice.paid"));
        assert!(!m("invoice.paid", "invoice.paid.late"));
        assert!(!m("invoice.paid", "invoice"));
    }

    #[test]
    fn star_matches_any_run_of_characters() {
        assert!(m("*", "anything.at.all"));
        assert!(m("order.*", "order.paid"));
        assert!(m("order.*", "order.item.added"));
        assert!(!m("order.*", "order"));
        assert!(!m("order.*", "orders.paid"));
        assert!(m("*.paid", "invoice.paid"));
        assert!(m("a*b*c", "axxbyyc"));
        assert!(!m("a*b*c", "axxbyy"));
        assert!(m("order.**", "order.x"));
    }

    #[test]
    fn glob_is_not_exponential() {
        let s = "a".repeat(200);
        let p = format!("{}b", "a*".repeat(50));
        assert!(!m(&p, &s));
    }

    #[test]
    fn refuses_bad_patterns() {
        assert_eq!(Pattern::parse(""), Err(PatternError::Empty));
        assert_eq!(Pattern::parse(&"x".repeat(256)), Err(PatternError::TooLong));
        assert!(matches!(
            Pattern::parse("a b"),
            Err(PatternError::BadCharacter(_))
        ));
    }
}

/// Property tests: patterns against a reference glob. Each property runs a moderate number of cases; `PROPTEST_CASES`
/// runs more (e.g. `PROPTEST_CASES=100000` for a soak). A failure prints the shrunk input:
/// pin it as a plain test.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;
    use crate::test_support::cases;

    /// Reference glob: plain recursion over chars, no regex, no cleverness. `*` matches any run of
    /// characters (dots included); everything else matches itself.
    fn reference_glob(p: &[char], s: &[char]) -> bool {
        match p.split_first() {
            None => s.is_empty(),
            Some(('*', rest)) => {
                reference_glob(rest, s) || (!s.is_empty() && reference_glob(p, &s[1..]))
            }
            Some((c, rest)) => s.first() == Some(c) && reference_glob(rest, &s[1..]),
        }
    }

    /// What `Pattern::parse` documents: non-empty, at most 255 bytes, no whitespace or control
    /// characters.
    fn pattern_is_acceptable(s: &str) -> bool {
        !s.is_empty() && s.len() <= 255 && !s.chars().any(|c| c.is_whitespace() || c.is_control())
    }

    /// Patterns over a tiny alphabet, so that matches are frequent and every glob case is reached.
    fn small_pattern() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![Just('a'), Just('b'), Just('.'), Just('*')],
            1..10,
        )
        .prop_map(|v| v.into_iter().collect())
    }

    fn small_event_type() -> impl Strategy<Value = String> {
        proptest::collection::vec(prop_oneof![Just('a'), Just('b'), Just('.')], 0..14)
            .prop_map(|v| v.into_iter().collect())
    }

    proptest! {
        #![proptest_config(cases(512))]

        #[test]
        fn pattern_parse_never_panics_and_follows_its_contract(s in any::<String>()) {
            let parsed = Pattern::parse(&s);
            prop_assert_eq!(parsed.is_ok(), pattern_is_acceptable(&s), "{:?}", s);
            if let Ok(p) = parsed {
                prop_assert_eq!(p.as_str(), s.as_str());
            }
        }

        #[test]
        fn pattern_matching_never_panics(p in "\\PC{1,40}", s in any::<String>()) {
            if let Ok(p) = Pattern::parse(&p) {
                let _ = p.matches(&s);
                let _ = p.matches("");
            }
        }

        #[test]
        fn a_lone_star_matches_everything(s in any::<String>()) {
            let star = Pattern::parse("*").expect("'*' is a valid pattern");
            prop_assert!(star.matches(&s));
        }

        #[test]
        fn a_pattern_without_star_matches_only_itself(p in "[^*\\s\\p{Cc}]{1,30}", s in any::<String>()) {
            let pattern = Pattern::parse(&p).expect("no whitespace, no control characters");
            prop_assert!(pattern.matches(&p));
            prop_assert_eq!(pattern.matches(&s), s == p);
            // A one-character change is never a match.
            let mut changed = p.clone();
            changed.push('x');
            prop_assert!(!pattern.matches(&changed));
        }

        #[test]
        fn glob_agrees_with_the_reference_on_a_small_alphabet(p in small_pattern(), s in small_event_type()) {
            let pattern = Pattern::parse(&p).expect("valid");
            let pc: Vec<char> = p.chars().collect();
            let sc: Vec<char> = s.chars().collect();
            prop_assert_eq!(pattern.matches(&s), reference_glob(&pc, &sc), "pattern {:?} vs {:?}", p, s);
        }

        #[test]
        fn glob_agrees_with_the_reference_on_unicode(p in "[a-cé☃.*]{1,10}", s in "[a-cé☃.]{0,14}") {
            // Byte-wise matching in the engine must give the same answer as char-wise matching.
            let pattern = Pattern::parse(&p).expect("valid");
            let pc: Vec<char> = p.chars().collect();
            let sc: Vec<char> = s.chars().collect();
            prop_assert_eq!(pattern.matches(&s), reference_glob(&pc, &sc), "pattern {:?} vs {:?}", p, s);
        }

        #[test]
        fn prefix_star_matches_every_extension_but_not_the_prefix_alone(
            prefix in "[a-z]{1,10}\\.", rest in "[a-z.]{1,20}"
        ) {
            // `order.*` matches `order.paid` and `order.item.added`; the star's run may be empty
            // (`order.` matches), but the dot is literal (`order` does not).
            let pattern = Pattern::parse(&format!("{prefix}*")).expect("valid");
            let with_rest = format!("{prefix}{rest}");
            prop_assert!(pattern.matches(&with_rest));
            prop_assert!(pattern.matches(&prefix));
            prop_assert!(!pattern.matches(prefix.trim_end_matches('.')));
        }
    }

    #[test]
    fn pinned_cases() {
        let p = Pattern::parse("order.*").expect("valid");
        assert!(p.matches("order.paid") && p.matches("order.item.added") && !p.matches("order"));
        let p = Pattern::parse("*a*a*a*a*a*a*a*a*b").expect("valid");
        assert!(
            !p.matches(&"a".repeat(10_000)),
            "no catastrophic backtracking"
        );
    }
}
