//! Redis 7.0's glob (`stringmatchlen`, case-sensitive), for SCAN MATCH:
//! `*`, `?`, `[...]` with `^` and ranges, and `\` escapes. Bytes are C's
//! signed chars in ranges, as on x86, so `[a-\xff]` means what it does
//! in Redis.

/// Whether `string` matches `pattern`.
pub fn matches(pattern: &[u8], string: &[u8]) -> bool {
    let mut give_up = false;
    step(pattern, string, &mut give_up)
}

/// The byte at `i`, or the NUL terminator C reads past the end.
fn at(s: &[u8], i: usize) -> u8 {
    s.get(i).copied().unwrap_or(0)
}

fn signed(b: u8) -> i32 {
    i32::from(b as i8)
}

/// `give_up`: a `*` found no match for the rest of the pattern anywhere in
/// the rest of the string, so no earlier `*` can do better (Redis's
/// `skipLongerMatches`, which keeps patterns like `a*a*a*b` linear).
fn step(pattern: &[u8], string: &[u8], give_up: &mut bool) -> bool {
    let (mut p, mut s) = (0usize, 0usize);
    while p < pattern.len() && s < string.len() {
        match pattern[p] {
            b'*' => {
                while p + 1 < pattern.len() && pattern[p + 1] == b'*' {
                    p += 1;
                }
                if p + 1 == pattern.len() {
                    return true;
                }
                while s < string.len() {
                    if step(&pattern[p + 1..], &string[s..], give_up) {
                        return true;
                    }
                    if *give_up {
                        return false;
                    }
                    s += 1;
                }
                *give_up = true;
                return false;
            }
            b'?' => s += 1,
            b'[' => {
                p += 1;
                let negate = at(pattern, p) == b'^';
                if negate {
                    p += 1;
                }
                let c = string[s];
                let mut matched = false;
                loop {
                    let left = pattern.len().saturating_sub(p);
                    if at(pattern, p) == b'\\' && left >= 2 {
                        p += 1;
                        matched |= pattern[p] == c;
                    } else if at(pattern, p) == b']' {
                        break;
                    } else if left == 0 {
                        // An unclosed class: the pattern ends here.
                        p -= 1;
                        break;
                    } else if left >= 3 && pattern[p + 1] == b'-' {
                        let (mut lo, mut hi) = (signed(pattern[p]), signed(pattern[p + 2]));
                        if lo > hi {
                            std::mem::swap(&mut lo, &mut hi);
                        }
                        p += 2;
                        matched |= (lo..=hi).contains(&signed(c));
                    } else {
                        matched |= pattern[p] == c;
                    }
                    p += 1;
                }
                if matched == negate {
                    return false;
                }
                s += 1;
            }
            b'\\' if pattern.len() - p >= 2 => {
                p += 1;
                if pattern[p] != string[s] {
                    return false;
                }
                s += 1;
            }
            b => {
                if b != string[s] {
                    return false;
                }
                s += 1;
            }
        }
        p += 1;
        if s == string.len() {
            while at(pattern, p) == b'*' {
                p += 1;
            }
            break;
        }
    }
    p >= pattern.len() && s == string.len()
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn globs_match_as_redis() {
        let yes = |p: &str, s: &str| assert!(matches(p.as_bytes(), s.as_bytes()), "{p} {s}");
        let no = |p: &str, s: &str| assert!(!matches(p.as_bytes(), s.as_bytes()), "{p} {s}");
        yes("sess:*", "sess:abc");
        yes("sess:*", "sess:");
        no("sess:*", "sess");
        yes("a?c", "abc");
        no("a?c", "ac");
        yes("[a-c]x", "bx");
        yes("[c-a]x", "bx");
        no("[^a-c]x", "bx");
        yes("a\\*b", "a*b");
        no("a\\*b", "axb");
        yes("s\\[1\\]:*", "s[1]:x");
        no("s\\[1\\]:*", "s1:x");
        yes("a[\\]]b", "a]b");
        // Nothing matches an empty string (SCAN treats a lone "*" apart).
        no("**", "");
        no("?", "");
        yes("a*a*a*b", "aaaaaaaab");
        no("a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
        // An unclosed class matches what it holds so far.
        yes("[ab", "a");
    }
}
