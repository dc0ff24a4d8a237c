//! Number syntax as Redis 7.0 and its Lua 5.1 read and print it, so that
//! every argument is accepted or refused, and every score printed, exactly
//! as a server would.

/// C's isspace in the "C" locale.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

/// Redis's `string2ll`: an optional `-`, no `+`, no spaces, no leading
/// zeros, and it must fit an i64.
pub fn int(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() >= 21 {
        return None;
    }
    if s == b"0" {
        return Some(0);
    }
    let (negative, digits) = match s.strip_prefix(b"-") {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    if !matches!(digits.first(), Some(b'1'..=b'9')) {
        return None;
    }
    let mut v: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    if negative {
        (v <= 1 << 63).then(|| (v as i64).wrapping_neg())
    } else {
        i64::try_from(v).ok()
    }
}

/// C's `strtoul(s, &end, 10)` as `SCAN` reads its cursor: no leading space,
/// the whole text used (an empty one reads as 0), no overflow; a `-`
/// negates modulo 2^64, as C does.
pub fn cursor(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return Some(0);
    }
    let (negative, digits) = match s[0] {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut v: u64 = 0;
    for &d in digits {
        v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    Some(if negative { v.wrapping_neg() } else { v })
}

fn starts_with_ignore_case(s: &[u8], word: &[u8]) -> bool {
    s.len() >= word.len() && s[..word.len()].eq_ignore_ascii_case(word)
}

/// glibc's `strtod`: the value of the longest prefix that reads as a number
/// (after leading spaces) and how many bytes it took; (0, 0) when none does.
pub fn strtod(s: &[u8]) -> (f64, usize) {
    let mut i = 0;
    while i < s.len() && is_space(s[i]) {
        i += 1;
    }
    let start = i;
    let negative = s.get(i) == Some(&b'-');
    if matches!(s.get(i), Some(b'-' | b'+')) {
        i += 1;
    }
    let sign = if negative { -1.0 } else { 1.0 };
    let rest = &s[i..];
    if starts_with_ignore_case(rest, b"infinity") {
        return (sign * f64::INFINITY, i + 8);
    }
    if starts_with_ignore_case(rest, b"inf") {
        return (sign * f64::INFINITY, i + 3);
    }
    if starts_with_ignore_case(rest, b"nan") {
        let mut end = i + 3;
        // "nan(chars)" is one token; an unclosed "(" is not part of it.
        if s.get(end) == Some(&b'(') {
            let inner = s[end + 1..]
                .iter()
                .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
                .count();
            if s.get(end + 1 + inner) == Some(&b')') {
                end += inner + 2;
            }
        }
        return (sign * f64::NAN, end);
    }
    if let Some((value, used)) = hex(rest) {
        return (sign * value, i + used);
    }
    let digits = |from: usize| s[from..].iter().take_while(|b| b.is_ascii_digit()).count();
    let whole = digits(i);
    let mut end = i + whole;
    let mut fraction = 0;
    if s.get(end) == Some(&b'.') {
        fraction = digits(end + 1);
        if whole + fraction > 0 {
            end += 1 + fraction;
        }
    }
    if whole + fraction == 0 {
        return (0.0, 0);
    }
    if matches!(s.get(end), Some(b'e' | b'E')) {
        let mut e = end + 1;
        if matches!(s.get(e), Some(b'-' | b'+')) {
            e += 1;
        }
        let exponent = digits(e);
        if exponent > 0 {
            end = e + exponent;
        }
    }
    // The prefix is plain decimal syntax, which Rust reads with the same
    // correct rounding as glibc.
    let text = std::str::from_utf8(&s[start..end]).unwrap_or("0");
    (text.parse().unwrap_or(0.0), end)
}

/// A C99 hexadecimal float ("0x1.8p3"), unsigned; None unless "0x" is
/// followed by at least one hex digit.
fn hex(s: &[u8]) -> Option<(f64, usize)> {
    if !(s.len() > 2 && s[0] == b'0' && matches!(s[1], b'x' | b'X')) {
        return None;
    }
    let mut i = 2;
    let mut mantissa = 0.0f64;
    let mut exponent: i64 = 0;
    let mut any = false;
    let mut point = false;
    while let Some(&b) = s.get(i) {
        if b == b'.' && !point {
            point = true;
        } else if let Some(d) = (b as char).to_digit(16) {
            mantissa = mantissa * 16.0 + f64::from(d);
            if point {
                exponent -= 4;
            }
            any = true;
        } else {
            break;
        }
        i += 1;
    }
    if !any {
        return None;
    }
    if matches!(s.get(i), Some(b'p' | b'P')) {
        let mut e = i + 1;
        let negative = s.get(e) == Some(&b'-');
        if matches!(s.get(e), Some(b'-' | b'+')) {
            e += 1;
        }
        let n = s[e..].iter().take_while(|b| b.is_ascii_digit()).count();
        if n > 0 {
            let p: i64 = s[e..e + n].iter().fold(0i64, |p, d| {
                p.saturating_mul(10).saturating_add(i64::from(d - b'0'))
            });
            exponent = exponent.saturating_add(if negative { -p } else { p });
            i = e + n;
        }
    }
    let value = if mantissa == 0.0 {
        0.0
    } else {
        mantissa * 2f64.powi(exponent.clamp(-2200, 2200) as i32)
    };
    Some((value, i))
}

/// Whether `strtod` would have set ERANGE: a finite text whose value
/// overflowed, or a nonzero one that came out as zero.
fn out_of_range(s: &[u8], value: f64) -> bool {
    let body = s.trim_ascii_start();
    let body = body
        .strip_prefix(b"-")
        .or(body.strip_prefix(b"+"))
        .unwrap_or(body);
    if value.is_infinite() {
        return !starts_with_ignore_case(body, b"inf");
    }
    if value != 0.0 {
        return false;
    }
    let (digits, end): (&[u8], &[u8]) = match body.get(..2) {
        Some(b"0x" | b"0X") => (&body[2..], b"pP"),
        _ => (body, b"eE"),
    };
    digits
        .iter()
        .take_while(|b| !end.contains(b))
        .any(|b| b.is_ascii_hexdigit() && *b != b'0')
}

/// Redis's `string2d`, how ZADD reads a score: the whole text, no leading
/// space, not NaN, in range.
pub fn score(s: &[u8]) -> Option<f64> {
    if s.is_empty() || is_space(s[0]) {
        return None;
    }
    let (value, used) = strtod(s);
    (used == s.len() && !value.is_nan() && !out_of_range(s, value)).then_some(value)
}

/// One end of a score range (`zslParseRange`): `(` makes it exclusive;
/// plain `strtod` over the whole text, so "" reads as 0 and " 5" as 5.
pub fn bound(s: &[u8]) -> Option<(f64, bool)> {
    let (text, exclusive) = match s.strip_prefix(b"(") {
        Some(rest) => (rest, true),
        None => (s, false),
    };
    let (value, used) = strtod(text);
    (used == text.len() && !value.is_nan()).then_some((value, exclusive))
}

/// Lua 5.1's string to number (`luaO_str2d`), as `tonumber` and arithmetic
/// coerce: `strtod` up to the first NUL, then only spaces may follow.
pub fn lua_number(s: &[u8]) -> Option<f64> {
    let s = s.split(|&b| b == 0).next().unwrap_or_default();
    let (value, used) = strtod(s);
    if used == 0 {
        return None;
    }
    // Lua retries a prefix ending at an 'x' as a hex integer; glibc's strtod
    // has already read every valid hex number, so what is left never reads.
    s[used..].iter().all(|&b| is_space(b)).then_some(value)
}

/// Lua 5.1's `tonumber(s, 36)`: C's `strtoul` in base 36 (spaces, then an
/// optional sign, then digits; a `-` negates modulo 2^64, too many digits
/// give `u64::MAX`), then only spaces may follow; nil for no digits.
pub fn lua_base36(s: &[u8]) -> Option<f64> {
    let s = s.split(|&b| b == 0).next().unwrap_or_default();
    let mut i = s.iter().take_while(|&&b| is_space(b)).count();
    let negative = s.get(i) == Some(&b'-');
    if matches!(s.get(i), Some(b'-' | b'+')) {
        i += 1;
    }
    let digits = s[i..]
        .iter()
        .take_while(|&&b| (b as char).is_digit(36))
        .count();
    if digits == 0 || !s[i + digits..].iter().all(|&b| is_space(b)) {
        return None;
    }
    let n = s[i..i + digits].iter().try_fold(0u64, |n, &b| {
        let digit = (b as char).to_digit(36)?;
        n.checked_mul(36)?.checked_add(u64::from(digit))
    });
    let n = match n {
        None => u64::MAX,
        Some(n) if negative => n.wrapping_neg(),
        Some(n) => n,
    };
    Some(n as f64)
}

/// C's `printf("%.17g")`: how Redis 7.0 prints a score and how its Lua
/// passes a number to `redis.call`.
pub fn g17(n: f64) -> String {
    if n.is_nan() {
        return if n.is_sign_negative() { "-nan" } else { "nan" }.to_owned();
    }
    if n.is_infinite() {
        return if n < 0.0 { "-inf" } else { "inf" }.to_owned();
    }
    // 17 significant digits, correctly rounded, then laid out as %g does.
    let sci = format!("{:.16e}", n.abs());
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let sign = if n.is_sign_negative() { "-" } else { "" };
    if !(-4..17).contains(&exponent) {
        let (first, rest) = digits.split_at(1);
        let rest = rest.trim_end_matches('0');
        let point = if rest.is_empty() { "" } else { "." };
        let esign = if exponent < 0 { '-' } else { '+' };
        return format!("{sign}{first}{point}{rest}e{esign}{:02}", exponent.abs());
    }
    let (whole, fraction) = if exponent >= 0 {
        let split = exponent as usize + 1;
        (digits[..split].to_owned(), digits[split..].to_owned())
    } else {
        let zeros = "0".repeat((-exponent - 1) as usize);
        ("0".to_owned(), format!("{zeros}{digits}"))
    };
    let fraction = fraction.trim_end_matches('0');
    if fraction.is_empty() {
        format!("{sign}{whole}")
    } else {
        format!("{sign}{whole}.{fraction}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_read_as_string2ll() {
        assert_eq!(int(b"0"), Some(0));
        assert_eq!(int(b"-1"), Some(-1));
        assert_eq!(int(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(int(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            &b""[..],
            b"+1",
            b" 1",
            b"1 ",
            b"01",
            b"-0",
            b"-",
            b"9223372036854775808",
            b"1.0",
        ] {
            assert_eq!(int(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn cursors_read_as_strtoul() {
        assert_eq!(cursor(b""), Some(0));
        assert_eq!(cursor(b"007"), Some(7));
        assert_eq!(cursor(b"+5"), Some(5));
        assert_eq!(cursor(b"-1"), Some(u64::MAX));
        assert_eq!(cursor(b" 1"), None);
        assert_eq!(cursor(b"abc"), None);
        assert_eq!(cursor(b"18446744073709551616"), None);
    }

    #[test]
    fn scores_read_as_string2d() {
        assert_eq!(score(b"1.5"), Some(1.5));
        assert_eq!(score(b"+inf"), Some(f64::INFINITY));
        assert_eq!(score(b"-Infinity"), Some(f64::NEG_INFINITY));
        assert_eq!(score(b"0x10"), Some(16.0));
        assert_eq!(score(b"1e-400"), None);
        assert_eq!(score(b"0e-400"), Some(0.0));
        for bad in [&b""[..], b" 1", b"1 ", b"nan", b"1e999", b"abc", b"1e"] {
            assert_eq!(score(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn range_bounds_read_as_zslparserange() {
        assert_eq!(bound(b"(1"), Some((1.0, true)));
        assert_eq!(bound(b"-inf"), Some((f64::NEG_INFINITY, false)));
        assert_eq!(bound(b""), Some((0.0, false)));
        assert_eq!(bound(b" 5"), Some((5.0, false)));
        assert_eq!(bound(b"1e999"), Some((f64::INFINITY, false)));
        assert_eq!(bound(b"5 "), None);
        assert_eq!(bound(b"nan"), None);
    }

    #[test]
    fn lua_reads_numbers_as_luao_str2d() {
        assert_eq!(lua_number(b" 12 "), Some(12.0));
        assert_eq!(lua_number(b"0x10"), Some(16.0));
        assert_eq!(lua_number(b"1e3"), Some(1000.0));
        assert_eq!(lua_number(b"5\0junk"), Some(5.0));
        assert!(lua_number(b"inf").is_some_and(f64::is_infinite));
        assert_eq!(lua_number(b""), None);
        assert_eq!(lua_number(b"1x"), None);
        assert_eq!(lua_number(b"abc"), None);
    }

    #[test]
    fn numbers_print_as_percent_17g() {
        assert_eq!(g17(1733000000000.0), "1733000000000");
        assert_eq!(g17(0.1), "0.10000000000000001");
        assert_eq!(g17(-0.0), "-0");
        assert_eq!(g17(1.5), "1.5");
        assert_eq!(g17(1e17), "1e+17");
        assert_eq!(g17(123456789012345678.0), "1.2345678901234568e+17");
        assert_eq!(g17(0.0001), "0.0001");
        assert_eq!(g17(0.00001), "1.0000000000000001e-05");
        assert_eq!(g17(f64::NEG_INFINITY), "-inf");
    }

    #[test]
    fn base36_reads_as_strtoul() {
        assert_eq!(lua_base36(b"zz"), Some(1295.0));
        assert_eq!(lua_base36(b" Zz "), Some(1295.0));
        assert_eq!(lua_base36(b"-1"), Some(u64::MAX as f64));
        assert_eq!(lua_base36(b"zzzzzzzzzzzzzzzz"), Some(u64::MAX as f64));
        for nothing in [&b""[..], b"-", b" ", b"1.5", b"1 x"] {
            assert_eq!(lua_base36(nothing), None, "{nothing:?}");
        }
    }
}
