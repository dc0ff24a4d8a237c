//! The Lua 5.1 semantics the store's scripts use: numbers read from
//! strings, addition and comparison, with Lua's own error messages (the
//! name of the variable included) when an operand does not fit.

use super::parse;

/// A Lua value as the scripts see it: nil, a number or a string.
#[derive(Debug, Clone, Copy)]
pub enum Val<'a> {
    Nil,
    Num(f64),
    Str(&'a [u8]),
}

impl<'a> Val<'a> {
    /// A number that may be nil (`tonumber`'s result).
    pub fn num(n: Option<f64>) -> Val<'a> {
        n.map_or(Val::Nil, Val::Num)
    }

    /// A string that may be nil (`ARGV[i]` past the end).
    pub fn text(s: Option<&'a [u8]>) -> Val<'a> {
        s.map_or(Val::Nil, Val::Str)
    }

    /// As arithmetic and `tonumber` coerce it.
    fn number(self) -> Option<f64> {
        match self {
            Val::Nil => None,
            Val::Num(n) => Some(n),
            Val::Str(s) => parse::lua_number(s),
        }
    }

    fn type_name(self) -> &'static str {
        match self {
            Val::Nil => "nil",
            Val::Num(_) => "number",
            Val::Str(_) => "string",
        }
    }
}

/// `a + b`, each with the name Lua gives it in errors ("local 'now'",
/// "field '?'" for `ARGV[i]`).
pub fn add(a: (Val, &str), b: (Val, &str)) -> Result<f64, String> {
    match (a.0.number(), b.0.number()) {
        (Some(x), Some(y)) => Ok(x + y),
        (None, _) => Err(arith_error(a)),
        (_, None) => Err(arith_error(b)),
    }
}

fn arith_error((value, name): (Val, &str)) -> String {
    format!(
        "attempt to perform arithmetic on {name} (a {} value)",
        value.type_name()
    )
}

fn order_error(a: Option<f64>, b: Option<f64>) -> String {
    let name = |n: Option<f64>| Val::num(n).type_name();
    if a.is_none() && b.is_none() {
        "attempt to compare two nil values".to_owned()
    } else {
        format!("attempt to compare {} with {}", name(a), name(b))
    }
}

/// `a < b` on numbers or nils. Lua runs `a > b` as `b < a`, which decides
/// the order of the types in its error: callers write it that way.
pub fn lt(a: Option<f64>, b: Option<f64>) -> Result<bool, String> {
    match (a, b) {
        (Some(x), Some(y)) => Ok(x < y),
        _ => Err(order_error(a, b)),
    }
}

/// `a <= b` on numbers or nils.
pub fn le(a: Option<f64>, b: Option<f64>) -> Result<bool, String> {
    match (a, b) {
        (Some(x), Some(y)) => Ok(x <= y),
        _ => Err(order_error(a, b)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_operand_as_lua_does() {
        assert_eq!(
            add((Val::Str(b"1"), "field '?'"), (Val::Num(2.0), "local 'x'")),
            Ok(3.0)
        );
        assert_eq!(
            add(
                (Val::Num(1.0), "local 'now'"),
                (Val::Str(b"x"), "field '?'")
            ),
            Err("attempt to perform arithmetic on field '?' (a string value)".to_owned())
        );
        assert_eq!(
            add((Val::Nil, "local 'now'"), (Val::Str(b"x"), "field '?'")),
            Err("attempt to perform arithmetic on local 'now' (a nil value)".to_owned())
        );
        assert_eq!(
            lt(None, Some(1.0)),
            Err("attempt to compare nil with number".to_owned())
        );
        assert_eq!(
            le(None, None),
            Err("attempt to compare two nil values".to_owned())
        );
        assert_eq!(le(Some(1.0), Some(1.0)), Ok(true));
    }
}
