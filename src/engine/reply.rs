//! Replies as redis-rs reads them from a server (RESP2), errors with
//! Redis's own codes and text.

use redis::Value;

pub const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
pub const SYNTAX: &str = "ERR syntax error";
pub const NOT_INTEGER: &str = "ERR value is not an integer or out of range";
pub const NOT_FLOAT: &str = "ERR value is not a valid float";
pub const BAD_RANGE: &str = "ERR min or max is not a float";

/// An error reply, "CODE detail". Redis turns line breaks in error text
/// into spaces (a reply is one line); so does this.
pub fn error(text: &str) -> Value {
    let mut wire = Vec::with_capacity(text.len() + 3);
    wire.push(b'-');
    wire.extend(text.bytes().map(|b| match b {
        b'\r' | b'\n' => b' ',
        b => b,
    }));
    wire.extend_from_slice(b"\r\n");
    redis::parse_redis_value(&wire).unwrap_or_else(|_| Value::SimpleString(text.to_owned()))
}

pub fn bulk(bytes: &[u8]) -> Value {
    Value::BulkString(bytes.to_vec())
}

/// An integer reply from a count or a flag.
pub fn int(n: impl TryInto<i64>) -> Value {
    Value::Int(n.try_into().unwrap_or(i64::MAX))
}

/// Redis's wording for a command given too few or too many arguments.
pub fn arity(name: &str) -> Value {
    error(&format!(
        "ERR wrong number of arguments for '{name}' command"
    ))
}

/// Redis's answer to a command it does not have: the name and the first
/// arguments, quoted, up to 128 bytes of them.
pub fn unknown_command(args: &[&[u8]]) -> Value {
    let name = args.first().copied().unwrap_or_default();
    let mut quoted = String::new();
    for arg in args.iter().skip(1) {
        if quoted.len() >= 128 {
            break;
        }
        let room = 128 - quoted.len();
        let arg = String::from_utf8_lossy(&arg[..arg.len().min(room)]);
        quoted.push_str(&format!("'{arg}' "));
    }
    let name = String::from_utf8_lossy(&name[..name.len().min(128)]);
    error(&format!(
        "ERR unknown command '{name}', with args beginning with: {quoted}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_carry_their_code() {
        let Value::ServerError(e) = error(WRONGTYPE) else {
            panic!("not an error")
        };
        assert_eq!(e.code(), "WRONGTYPE");
        let Value::ServerError(e) = error("ERR a\r\nb") else {
            panic!("not an error")
        };
        assert_eq!(e.details(), Some("a  b"));
        assert_eq!(
            unknown_command(&[b"foo", b"a", b"b"]),
            error("ERR unknown command 'foo', with args beginning with: 'a' 'b' ")
        );
    }
}
