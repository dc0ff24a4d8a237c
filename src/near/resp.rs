//! Replies as RESP2 sends them, read from bytes as they arrive: one value
//! at a time, or `Incomplete` until the rest is there. The types a store's
//! commands answer with are built directly; error replies go through
//! redis-rs's parser, so their kinds (NOSCRIPT, OOM, ...) are the writer's.

use redis::Value;

#[derive(Debug, PartialEq)]
pub enum Frame {
    /// A whole value, and how many bytes it took.
    Value(Value, usize),
    Incomplete,
    /// Not RESP2: the connection cannot be read any further.
    Malformed,
}

/// Reads the value at the start of `buf`.
pub fn frame(buf: &[u8]) -> Frame {
    match value(buf, 0) {
        Ok(Some((v, end))) => Frame::Value(v, end),
        Ok(None) => Frame::Incomplete,
        Err(()) => Frame::Malformed,
    }
}

type Parsed = Result<Option<(Value, usize)>, ()>;

/// The line starting at `at` (without CRLF) and where the next begins.
fn line(buf: &[u8], at: usize) -> Result<Option<(&[u8], usize)>, ()> {
    let rest = buf.get(at..).ok_or(())?;
    Ok(rest
        .windows(2)
        .position(|w| w == b"\r\n")
        .map(|n| (&rest[..n], at + n + 2)))
}

fn number(text: &[u8]) -> Result<i64, ()> {
    std::str::from_utf8(text)
        .ok()
        .and_then(|t| t.parse().ok())
        .ok_or(())
}

fn value(buf: &[u8], at: usize) -> Parsed {
    let Some(&kind) = buf.get(at) else {
        return Ok(None);
    };
    let Some((text, next)) = line(buf, at + 1)? else {
        return Ok(None);
    };
    match kind {
        b'+' if text == b"OK" => Ok(Some((Value::Okay, next))),
        b'+' => Ok(Some((
            Value::SimpleString(String::from_utf8_lossy(text).into_owned()),
            next,
        ))),
        b'-' => redis::parse_redis_value(&buf[at..next])
            .map(|v| Some((v, next)))
            .map_err(drop),
        b':' => Ok(Some((Value::Int(number(text)?), next))),
        b'$' => match number(text)? {
            -1 => Ok(Some((Value::Nil, next))),
            len if len >= 0 => {
                let end = next + len as usize;
                match buf.get(end..end + 2) {
                    None => Ok(None),
                    Some(b"\r\n") => {
                        Ok(Some((Value::BulkString(buf[next..end].to_vec()), end + 2)))
                    }
                    Some(_) => Err(()),
                }
            }
            _ => Err(()),
        },
        b'*' => match number(text)? {
            -1 => Ok(Some((Value::Nil, next))),
            len if len >= 0 => {
                let mut items = Vec::with_capacity((len as usize).min(1024));
                let mut at = next;
                for _ in 0..len {
                    let Some((item, end)) = value(buf, at)? else {
                        return Ok(None);
                    };
                    items.push(item);
                    at = end;
                }
                Ok(Some((Value::Array(items), at)))
            }
            _ => Err(()),
        },
        _ => Err(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(bytes: &[u8]) -> Value {
        match frame(bytes) {
            Frame::Value(v, n) => {
                assert_eq!(n, bytes.len(), "{bytes:?}");
                v
            }
            other => panic!("{bytes:?}: {other:?}"),
        }
    }

    #[test]
    fn reads_each_reply_type_as_redis_rs_does() {
        for bytes in [
            &b"+OK\r\n"[..],
            b"+QUEUED\r\n",
            b":-42\r\n",
            b"$-1\r\n",
            b"*-1\r\n",
            b"$0\r\n\r\n",
            b"$5\r\nab\r\nc\r\n",
            b"*3\r\n$1\r\na\r\n:7\r\n*0\r\n",
            b"-NOSCRIPT No matching script\r\n",
            b"-OOM command not allowed\r\n",
        ] {
            assert_eq!(whole(bytes), redis::parse_redis_value(bytes).unwrap());
        }
    }

    #[test]
    fn waits_for_the_rest_of_a_value() {
        let bytes = b"*2\r\n$5\r\nhello\r\n:12\r\n";
        for cut in 0..bytes.len() {
            assert_eq!(frame(&bytes[..cut]), Frame::Incomplete, "cut at {cut}");
        }
        let mut two = bytes.to_vec();
        two.extend_from_slice(b"+OK\r\n");
        assert!(matches!(frame(&two), Frame::Value(_, n) if n == bytes.len()));
    }

    #[test]
    fn refuses_what_is_not_resp2() {
        for bytes in [&b"?\r\n"[..], b":x\r\n", b"$-2\r\n", b"$2\r\nabc\r\n"] {
            assert_eq!(frame(bytes), Frame::Malformed, "{bytes:?}");
        }
    }
}
