//! Pre-built matchers for string and address tests: sets for `in`, a component-prefix set for
//! `pmatch`, glob patterns, ASCII case-insensitive search and CIDR networks. Built once at
//! compile time; matching never allocates.

use std::collections::HashSet;
use std::net::IpAddr;

/// Sets up to this size are scanned; larger ones hashed.
const SMALL_SET: usize = 8;

/// A set of strings for `in`.
#[derive(Debug, Clone)]
pub(crate) enum StrSet {
    Small(Box<[Box<str>]>),
    Hashed(HashSet<Box<str>>),
}

impl StrSet {
    pub fn new(items: impl IntoIterator<Item = String>) -> StrSet {
        let mut v: Vec<Box<str>> = items.into_iter().map(String::into_boxed_str).collect();
        v.sort();
        v.dedup();
        if v.len() <= SMALL_SET { StrSet::Small(v.into()) } else { StrSet::Hashed(v.into_iter().collect()) }
    }

    pub fn contains(&self, s: &str) -> bool {
        match self {
            StrSet::Small(v) => v.iter().any(|x| &**x == s),
            StrSet::Hashed(h) => h.contains(s),
        }
    }
}

/// Path prefixes for `pmatch`: a path matches a prefix equal to it or to one of its parent
/// directories (`/etc` matches `/etc` and `/etc/x/y`, not `/etcd`). `/` matches every absolute
/// path. Lookup costs one hash probe per path component.
#[derive(Debug, Clone)]
pub(crate) struct PrefixSet {
    set: StrSet,
    root: bool,
}

impl PrefixSet {
    pub fn new(items: impl IntoIterator<Item = String>) -> PrefixSet {
        let mut root = false;
        let mut v = Vec::new();
        for it in items {
            let t = it.trim_end_matches('/');
            if t.is_empty() && it.starts_with('/') {
                root = true;
            } else {
                v.push(t.to_string());
            }
        }
        PrefixSet { set: StrSet::new(v), root }
    }

    pub fn matches(&self, path: &str) -> bool {
        if self.root && path.starts_with('/') {
            return true;
        }
        let p = path.trim_end_matches('/');
        if self.set.contains(p) {
            return true;
        }
        p.match_indices('/').any(|(i, _)| i > 0 && self.set.contains(&p[..i]))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum G {
    Lit(char),
    Any,
    Star,
    Class { negated: bool, ranges: Vec<(char, char)> },
}

/// A glob: `*` any run (including `/`), `?` one character, `[abc]`, `[a-z]`, `[!x]`, `\` escapes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Glob(Vec<G>);

impl Glob {
    pub fn new(pat: &str) -> Result<Glob, String> {
        let mut out = Vec::new();
        let mut it = pat.chars().peekable();
        while let Some(c) = it.next() {
            out.push(match c {
                '*' => {
                    if out.last() == Some(&G::Star) {
                        continue;
                    }
                    G::Star
                }
                '?' => G::Any,
                '\\' => G::Lit(it.next().ok_or("pattern ends with '\\'")?),
                '[' => {
                    let negated = matches!(it.peek(), Some('!' | '^'));
                    if negated {
                        it.next();
                    }
                    let mut ranges = Vec::new();
                    let mut first = true;
                    loop {
                        let c = it.next().ok_or("unclosed '[' in pattern")?;
                        if c == ']' && !first {
                            break;
                        }
                        first = false;
                        if it.peek() == Some(&'-') {
                            it.next();
                            match it.next() {
                                Some(']') => {
                                    ranges.push((c, c));
                                    ranges.push(('-', '-'));
                                    break;
                                }
                                Some(hi) => ranges.push((c, hi)),
                                None => return Err("unclosed '[' in pattern".into()),
                            }
                        } else {
                            ranges.push((c, c));
                        }
                    }
                    G::Class { negated, ranges }
                }
                c => G::Lit(c),
            });
        }
        Ok(Glob(out))
    }

    fn one(g: &G, c: char) -> bool {
        match g {
            G::Lit(l) => *l == c,
            G::Any => true,
            G::Class { negated, ranges } => {
                ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c)) != *negated
            }
            G::Star => false,
        }
    }

    /// Linear-time wildcard matching with a single backtrack point.
    pub fn matches(&self, s: &str) -> bool {
        let p = &self.0;
        let (mut pi, mut si) = (0usize, 0usize);
        let mut star: Option<(usize, usize)> = None;
        while si < s.len() {
            let c = s[si..].chars().next().unwrap_or('\0');
            match p.get(pi) {
                Some(G::Star) => {
                    star = Some((pi, si));
                    pi += 1;
                }
                Some(g) if Self::one(g, c) => {
                    pi += 1;
                    si += c.len_utf8();
                }
                _ => match star {
                    Some((sp, ss)) => {
                        let skipped = s[ss..].chars().next().map_or(1, char::len_utf8);
                        pi = sp + 1;
                        si = ss + skipped;
                        star = Some((sp, si));
                    }
                    None => return false,
                },
            }
        }
        p[pi.min(p.len())..].iter().all(|g| *g == G::Star)
    }
}

/// ASCII case-insensitive substring search; `needle` must already be lowercase.
pub(crate) fn icontains(hay: &str, needle: &str) -> bool {
    let (h, n) = (hay.as_bytes(), needle.as_bytes());
    n.is_empty() || h.windows(n.len()).any(|w| w.iter().zip(n).all(|(a, b)| a.to_ascii_lowercase() == *b))
}

/// An address or CIDR network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    pub fn parse(s: &str) -> Option<IpNet> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max)?,
            None => max,
        };
        Some(IpNet { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_small_and_hashed() {
        let small = StrSet::new(["a".to_string(), "b".into()]);
        assert!(small.contains("a") && !small.contains("c"));
        let big = StrSet::new((0..100).map(|i| i.to_string()));
        assert!(matches!(big, StrSet::Hashed(_)));
        assert!(big.contains("42") && !big.contains("420"));
    }

    #[test]
    fn prefixes_match_components() {
        let p = PrefixSet::new(["/etc".to_string(), "/usr/bin/".into()]);
        assert!(p.matches("/etc") && p.matches("/etc/") && p.matches("/etc/ssh/x"));
        assert!(!p.matches("/etcd/x") && !p.matches("/usr") && p.matches("/usr/bin/ls"));
        assert!(PrefixSet::new(["/".to_string()]).matches("/x"));
        assert!(!PrefixSet::new(["/".to_string()]).matches("x"));
    }

    #[test]
    fn globs() {
        let g = |p: &str, s: &str| Glob::new(p).unwrap().matches(s);
        assert!(g("/etc/*", "/etc/a/b"));
        assert!(g("*.so.?", "libx.so.1"));
        assert!(!g("*.so.?", "libx.so.12"));
        assert!(g("[a-c]x[!0-9]", "bxz") && !g("[a-c]x[!0-9]", "bx1"));
        assert!(g("a\\*", "a*") && !g("a\\*", "ab"));
        assert!(g("*a*a*a*b", &("a".repeat(40) + "b")));
        assert!(!g("*a*a*a*c", &"a".repeat(1000)));
        assert!(g("é?", "éü"));
        assert!(g("", "") && !g("", "a") && g("**", ""));
        assert!(Glob::new("[abc").is_err() && Glob::new("x\\").is_err());
        assert!(g("[]x]", "]") && g("[a-]", "-"));
    }

    #[test]
    fn case_insensitive_and_ip() {
        assert!(icontains("Hello NC -e", "nc -e") && !icontains("abc", "abcd") && icontains("x", ""));
        let n = IpNet::parse("10.0.0.0/8").unwrap();
        assert!(n.contains("10.1.2.3".parse().unwrap()) && !n.contains("11.0.0.1".parse().unwrap()));
        assert!(n.contains("::ffff:10.0.0.1".parse().unwrap()));
        assert!(IpNet::parse("0.0.0.0/0").unwrap().contains("1.2.3.4".parse().unwrap()));
        assert!(IpNet::parse("fd00::/8").unwrap().contains("fd12::1".parse().unwrap()));
        assert!(IpNet::parse("1.2.3.4/33").is_none() && IpNet::parse("x").is_none());
        assert_eq!(IpNet::parse("1.2.3.4").map(|n| n.contains("1.2.3.4".parse().unwrap())), Some(true));
    }
}
