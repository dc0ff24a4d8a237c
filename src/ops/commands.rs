//! Where an operation's commands go (`Commands`): a redis-rs `Pipeline`
//! for the writer, whose backends route its `Cmd`s (per cluster slot, for
//! one), or RESP bytes written straight into one reused buffer (`Resp`) for
//! the near socket, which sends bytes: no `Cmd` and its two vectors per
//! command, nor a second copy when the pipeline is packed.

use redis::Pipeline;

/// One argument of a command: its bytes, numbers in decimal.
pub trait Arg {
    fn with_bytes<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R;
}

impl Arg for str {
    fn with_bytes<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        f(self.as_bytes())
    }
}

impl Arg for String {
    fn with_bytes<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        f(self.as_bytes())
    }
}

impl Arg for [u8] {
    fn with_bytes<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        f(self)
    }
}

macro_rules! number_arg {
    ($($t:ty),*) => {$(
        impl Arg for $t {
            fn with_bytes<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
                f(itoa::Buffer::new().format(*self).as_bytes())
            }
        }
    )*};
}
number_arg!(i64, usize);

/// None is the empty string (the scripts read it as "no value").
impl Arg for Option<i64> {
    fn with_bytes<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        match self {
            Some(n) => n.with_bytes(f),
            None => f(b""),
        }
    }
}

impl<T: Arg + ?Sized> Arg for &T {
    fn with_bytes<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        (**self).with_bytes(f)
    }
}

pub trait Commands {
    /// Starts command `name`, which `n` arguments follow.
    fn begin(&mut self, name: &'static str, n: usize);
    fn arg<T: Arg + ?Sized>(&mut self, arg: &T);
}

impl Commands for Pipeline {
    fn begin(&mut self, name: &'static str, _: usize) {
        self.cmd(name);
    }

    fn arg<T: Arg + ?Sized>(&mut self, arg: &T) {
        arg.with_bytes(|bytes| {
            Pipeline::arg(self, bytes);
        });
    }
}

/// Commands as RESP bytes, appended to `bytes`.
#[derive(Default)]
pub struct Resp {
    pub bytes: Vec<u8>,
}

impl Resp {
    fn header(&mut self, kind: u8, n: usize) {
        self.bytes.push(kind);
        self.bytes
            .extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
        self.bytes.extend_from_slice(b"\r\n");
    }

    fn bulk(&mut self, data: &[u8]) {
        self.header(b'$', data.len());
        self.bytes.extend_from_slice(data);
        self.bytes.extend_from_slice(b"\r\n");
    }
}

impl Commands for Resp {
    fn begin(&mut self, name: &'static str, n: usize) {
        self.header(b'*', n + 1);
        self.bulk(name.as_bytes());
    }

    fn arg<T: Arg + ?Sized>(&mut self, arg: &T) {
        arg.with_bytes(|bytes| self.bulk(bytes));
    }
}

/// `command!(sink, "NAME", arg, ...)`: one command, its arguments counted
/// here so the RESP header always matches them.
macro_rules! command {
    ($sink:expr, $name:literal $(, $arg:expr)* $(,)?) => {{
        let sink = &mut *$sink;
        let n = <[&str]>::len(&[$(stringify!($arg)),*]);
        $crate::ops::commands::Commands::begin(sink, $name, n);
        $( $crate::ops::commands::Commands::arg(sink, &$arg); )*
    }};
}
pub(crate) use command;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resp_bytes_are_what_redis_rs_packs() {
        let mut pipe = redis::pipe();
        let mut resp = Resp::default();
        let value: &[u8] = "café ✓\r\n".as_bytes();
        command!(&mut pipe, "SET", "k", value, "PXAT", 1_700_000_000_000i64);
        command!(&mut resp, "SET", "k", value, "PXAT", 1_700_000_000_000i64);
        command!(&mut pipe, "PING");
        command!(&mut resp, "PING");
        command!(&mut pipe, "EVALSHA", String::from("abc"), 3usize, -1i64, "");
        command!(&mut resp, "EVALSHA", String::from("abc"), 3usize, -1i64, "");
        assert_eq!(resp.bytes, pipe.get_packed_pipeline());
    }
}
