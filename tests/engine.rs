//! The embedded engine against a real redis-server: the same random
//! pipelines (raw commands in every form the store uses and more, the
//! store's scripts with plausible and implausible arguments, pipelines the
//! store itself builds, reclaim rounds) go to both, and every reply must be
//! the same; so must the whole data set, read back at intervals (and, for
//! a file, after reopening it). Bounded: ENGINE_DIFF_ROUNDS pipelines
//! (default 1200) from seed ENGINE_DIFF_SEED (default fixed, so CI is
//! repeatable; a failure prints the seed). Also: durability across a
//! kill -9 and the refusal of a second process, with child processes.

mod common;
use common::Server;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::{Cmd, ConnectionLike, Pipeline, Value};

use redis_session_store::engine::Engine;
use redis_session_store::error::ErrorKind;
use redis_session_store::ops::devices;
use redis_session_store::ops::encode::build;
use redis_session_store::ops::recent::Recent;
use redis_session_store::ops::{Context, Op};
use redis_session_store::session::events::Reason;
use redis_session_store::session::expiry::{now_ms, Expiry, Lifetime};
use redis_session_store::session::keys::{self, Keys};
use redis_session_store::session::meta;
use redis_session_store::session::scripts;

fn connect(server: &Server) -> redis::Connection {
    redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap()
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// xorshift64*: small, seeded, the same everywhere.
struct Rng(u64);

impl Rng {
    /// Any seed, 0 included, through splitmix64 (xorshift needs a nonzero,
    /// well-mixed state).
    fn seeded(seed: u64) -> Rng {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((z ^ (z >> 31)) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

/// How two replies are compared: exactly, or allowing for the two clocks
/// (a TTL, or a deadline computed from one, read a moment apart), or as a
/// set (SCAN's order is the server's), or by the fields the store reads
/// (INFO).
#[derive(Clone, Copy, Debug)]
enum Check {
    Exact,
    Clock,
    Scan,
    Info,
    /// Field/value pairs in any order (HGETALL: a large hash has none).
    Pairs,
    /// Items in any order (HKEYS).
    Set,
}

/// Small name spaces, so that commands meet each other's keys (and kinds).
const STRINGS: &[&str] = &["s0", "s1", "s2", "w0", "s\\*"];
const HASHES: &[&str] = &["h0", "h1", "{w}:all", "{i}:all"];
const ZSETS: &[&str] = &["z0", "z1", "{i}:all", "{i}:user:ada", "z:big"];
const KEYS: &[&str] = &[
    "s0",
    "s1",
    "s2",
    "w0",
    "s\\*",
    "h0",
    "h1",
    "{w}:all",
    "z0",
    "z1",
    "{i}:all",
    "{i}:user:ada",
    "k0",
];
const FIELDS: &[&str] = &["a", "c", "e", "u", "x", "f", "w0", "w1"];
/// Hash values: text, and metas as the scripts pack them (times far from
/// now either way, so both clocks agree on them).
const HASH_VALUES: &[&str] = &[
    "v",
    "",
    "12",
    "abc",
    "1,2,3,,ada",
    "1,2,,,",
    ",,,zzzzzzzzz,bob",
    ",,,1,ada",
    "1,2,3,4",
    "x-,2,3,,u",
    "Zz,A,b,,u",
    "1,2,zzzzzzzzzzzzzzzz,,u",
];
/// The last is past Redis's small-set member length (64 bytes).
const MEMBERS: &[&str] = &[
    "m0",
    "m1",
    "m2",
    "m3",
    "a",
    "sid",
    "a-member-name-longer-than-sixty-four-bytes-turns-a-set-into-its-large-form",
];
const VALUES: &[&str] = &[
    "v", "", "1", "12", "-3", "1.5", "abc", "1e3", " 5", "inf", "0x10",
];
const SCORES: &[&str] = &[
    "0", "1", "2", "-1", "1.5", "0.1", "+inf", "-inf", "inf", "1e3", "3", "-0", "0x1p4",
];
const BAD_NUMBERS: &[&str] = &["abc", "", "nan", "1e999", " 1", "1 ", "007", "+5"];
/// What a script may get where it wants a number: never a small one (Lua
/// reads "007" as 7, a deadline 7 ms ahead that the two clocks would see
/// pass at different moments).
const SCRIPT_JUNK: &[&str] = &["abc", "", "nan", "1e999", "-1e999", "x"];
const BOUNDS: &[&str] = &[
    "-inf", "+inf", "(1", "1", "2", "(2", "5", "0.5", "(-inf", "", " 3",
];
const PATTERNS: &[&str] = &[
    "k*", "k[0-2]", "k?", "*", "s\\\\\\*", "{k*", "*meta", "[^k]*", "k[", "\\k1", "*[", "k[2-0]",
];

struct Gen {
    rng: Rng,
    now: i64,
    /// The latest near deadline handed out in this pipeline.
    near: Option<i64>,
    allow_near: bool,
}

impl Gen {
    fn key(&mut self) -> &'static str {
        self.rng.pick(KEYS)
    }

    /// Mostly a key of the kind a command works on, now and then any.
    fn key_of(&mut self, kind: &[&'static str]) -> &'static str {
        if self.rng.chance(25) {
            self.key()
        } else {
            self.rng.pick(kind)
        }
    }

    /// A deadline: past, near (alive on both servers through this
    /// pipeline, gone before the next one) or far.
    fn at(&mut self) -> i64 {
        match self.rng.below(5) {
            0 | 1 => self.now - 1 - self.rng.below(100_000) as i64,
            2 if self.allow_near => {
                // Far enough ahead that both sides run the pipeline before it
                // (a few ms, or tens on a loaded machine), and soon enough
                // that waiting for it is short.
                let at = self.now + 80 + self.rng.below(40) as i64;
                self.near = Some(self.near.map_or(at, |n| n.max(at)));
                at
            }
            _ => self.now + 1_000_000 + self.rng.below(1_000_000) as i64,
        }
    }

    /// A relative expiry in ms: near or far (never past: PX must be > 0).
    fn ms(&mut self) -> i64 {
        match self.at() - self.now {
            ms if ms > 0 => ms,
            _ => 1_000_000,
        }
    }

    fn number(&mut self, good: &[&'static str]) -> String {
        if self.rng.chance(8) {
            self.rng.pick(BAD_NUMBERS).to_string()
        } else {
            self.rng.pick(good).to_string()
        }
    }

    fn int(&mut self) -> String {
        if self.rng.chance(8) {
            self.rng.pick(BAD_NUMBERS).to_string()
        } else {
            (self.rng.below(9) as i64 - 4).to_string()
        }
    }

    fn raw(&mut self) -> (Cmd, Check) {
        let mut c = Cmd::new();
        let mut check = Check::Exact;
        match self.rng.below(35) {
            0 => {
                c.arg("GET").arg(self.key_of(STRINGS));
            }
            34 => {
                // Now and then far enough to overflow (a field near the top).
                let by = match self.rng.chance(5) {
                    true => i64::MAX.to_string(),
                    false => self.int(),
                };
                c.arg("HINCRBY")
                    .arg(self.key_of(HASHES))
                    .arg(self.rng.pick(FIELDS))
                    .arg(by);
            }
            31 => {
                c.arg("HDEL").arg(self.key_of(HASHES));
                for _ in 0..1 + self.rng.below(2) {
                    c.arg(self.rng.pick(FIELDS));
                }
            }
            32 => {
                c.arg("HGETALL").arg(self.key_of(HASHES));
                check = Check::Pairs;
            }
            33 => {
                c.arg("HKEYS").arg(self.key_of(HASHES));
                check = Check::Set;
            }
            1 => {
                c.arg("MGET");
                for _ in 0..1 + self.rng.below(3) {
                    c.arg(self.key_of(STRINGS));
                }
            }
            2..=4 => {
                c.arg("SET")
                    .arg(self.key_of(STRINGS))
                    .arg(self.rng.pick(VALUES));
                let opts: &[&[&str]] = &[
                    &[],
                    &["XX"],
                    &["NX"],
                    &["XX", "PXAT"],
                    &["PXAT"],
                    &["PX"],
                    &["EX"],
                    &["KEEPTTL"],
                    &["GET"],
                    &["NX", "GET"],
                    &["XX", "KEEPTTL", "GET"],
                    &["PX", "PXAT"],
                    &["KEEPTTL", "PX"],
                    &["NX", "XX"],
                    &["EXAT"],
                ];
                for opt in self.rng.pick(opts) {
                    c.arg(*opt);
                    match *opt {
                        "PXAT" => c.arg(self.at()),
                        "PX" => c.arg(self.ms()),
                        "EX" => c.arg(1000 + self.rng.below(1000)),
                        "EXAT" => c.arg(self.at() / 1000 + 2000),
                        _ => &mut c,
                    };
                }
                if self.rng.chance(5) {
                    c.arg("PX").arg(self.rng.pick(&["0", "-5", "abc"]));
                }
            }
            5 => {
                c.arg("DEL");
                for _ in 0..1 + self.rng.below(3) {
                    c.arg(self.key());
                }
            }
            6 => {
                c.arg("EXISTS");
                for _ in 0..1 + self.rng.below(3) {
                    c.arg(self.key());
                }
            }
            7 | 8 => {
                c.arg("PEXPIREAT").arg(self.key());
                if self.rng.chance(5) {
                    c.arg(self.rng.pick(BAD_NUMBERS));
                } else {
                    c.arg(self.at());
                }
                let opts: &[&[&str]] = &[
                    &[],
                    &[],
                    &["NX"],
                    &["XX"],
                    &["GT"],
                    &["LT"],
                    &["NX", "GT"],
                    &["GT", "LT"],
                    &["FOO"],
                ];
                for opt in self.rng.pick(opts) {
                    c.arg(*opt);
                }
            }
            9 => {
                c.arg("PEXPIRETIME").arg(self.key());
                check = Check::Clock;
            }
            10 => {
                c.arg("PTTL").arg(self.key());
                check = Check::Clock;
            }
            11 => {
                c.arg("PERSIST").arg(self.key());
            }
            12 | 13 => {
                c.arg("HSET").arg(self.key_of(HASHES));
                for _ in 0..1 + self.rng.below(3) {
                    c.arg(self.rng.pick(FIELDS)).arg(self.rng.pick(HASH_VALUES));
                }
                if self.rng.chance(5) {
                    c.arg("odd");
                }
            }
            14 => {
                c.arg("HSETNX")
                    .arg(self.key_of(HASHES))
                    .arg(self.rng.pick(FIELDS))
                    .arg(self.rng.pick(HASH_VALUES));
            }
            15 => {
                c.arg("HGET")
                    .arg(self.key_of(HASHES))
                    .arg(self.rng.pick(FIELDS));
            }
            16 => {
                c.arg("HMGET").arg(self.key_of(HASHES));
                for _ in 0..1 + self.rng.below(4) {
                    c.arg(self.rng.pick(FIELDS));
                }
            }
            17 => {
                c.arg("HEXISTS")
                    .arg(self.key_of(HASHES))
                    .arg(self.rng.pick(FIELDS));
            }
            18..=20 => {
                c.arg("ZADD").arg(self.key_of(ZSETS));
                let opts: &[&[&str]] = &[
                    &[],
                    &[],
                    &["GT"],
                    &["XX"],
                    &["NX"],
                    &["GT", "XX"],
                    &["LT"],
                    &["CH"],
                    &["GT", "CH"],
                    &["INCR"],
                    &["XX", "INCR"],
                    &["NX", "XX"],
                    &["GT", "NX"],
                    &["GT", "INCR"],
                    &["LT", "CH"],
                ];
                for opt in self.rng.pick(opts) {
                    c.arg(*opt);
                }
                for _ in 0..1 + self.rng.below(3) {
                    c.arg(self.number(SCORES)).arg(self.rng.pick(MEMBERS));
                }
            }
            21 => {
                c.arg("ZREM").arg(self.key_of(ZSETS));
                for _ in 0..1 + self.rng.below(3) {
                    c.arg(self.rng.pick(MEMBERS));
                }
            }
            22 => {
                c.arg("ZREMRANGEBYSCORE")
                    .arg(self.key_of(ZSETS))
                    .arg(self.number(BOUNDS))
                    .arg(self.number(BOUNDS));
            }
            23 => {
                c.arg("ZRANGE")
                    .arg(self.key_of(ZSETS))
                    .arg(self.int())
                    .arg(self.int());
                let opts: &[&[&str]] = &[&[], &["WITHSCORES"], &["LIMIT", "0", "1"], &["FOO"]];
                for opt in self.rng.pick(opts) {
                    c.arg(*opt);
                }
            }
            24 => {
                c.arg("ZRANGEBYSCORE")
                    .arg(self.key_of(ZSETS))
                    .arg(self.number(BOUNDS))
                    .arg(self.number(BOUNDS));
                if self.rng.chance(40) {
                    c.arg("WITHSCORES");
                }
                if self.rng.chance(50) {
                    c.arg("LIMIT").arg(self.int()).arg(self.int());
                }
            }
            25 => {
                c.arg(self.rng.pick(&["ZSCORE", "ZCARD"]))
                    .arg(self.key_of(ZSETS));
                if self.rng.chance(70) {
                    c.arg(self.rng.pick(MEMBERS));
                }
            }
            26 => {
                // COUNT above the key count: Redis then answers in one call.
                c.arg("SCAN")
                    .arg("0")
                    .arg("MATCH")
                    .arg(self.rng.pick(PATTERNS));
                c.arg("COUNT").arg(1000);
                if self.rng.chance(50) {
                    c.arg("TYPE")
                        .arg(self.rng.pick(&["string", "hash", "zset", "HASH", "list"]));
                }
                check = Check::Scan;
            }
            28 => {
                // Past Redis's small-set limit (128 members): its large form.
                c.arg("ZADD").arg("z:big");
                for _ in 0..20 + self.rng.below(150) {
                    c.arg(self.rng.pick(SCORES).to_string())
                        .arg(format!("b{}", self.rng.below(300)));
                }
            }
            27 => {
                let cmds: &[&[&str]] = &[
                    &["INFO", "memory"],
                    &["INFO", "replication"],
                    &["INFO"],
                    &["WAIT", "0", "0"],
                    &["WAIT", "0", "-1"],
                    &["NOPE", "a", "b"],
                    &["GET"],
                    &["ZADD", "k0", "1"],
                    &["PTTL", "a", "b"],
                    &["EVALSHA"],
                    &["EVALSHA", "0123456789012345678901234567890123456789", "0"],
                    &["EVALSHA", "abc", "0"],
                    &["SCAN", "abc"],
                    &["SCAN", "0", "COUNT", "0"],
                    &["SCRIPT"],
                    &["SCRIPT", "LOAD"],
                ];
                let cmd = self.rng.pick(cmds);
                for a in cmd {
                    c.arg(*a);
                }
                if cmd[0] == "INFO" {
                    check = Check::Info;
                }
                if cmd[0] == "SCAN" {
                    check = Check::Scan;
                }
            }
            _ => return self.script(),
        }
        (c, check)
    }

    /// Now and then, a text a script cannot read as the number it wants.
    fn maybe(&mut self, plausible: String) -> String {
        if self.rng.chance(4) {
            self.rng.pick(SCRIPT_JUNK).to_string()
        } else {
            plausible
        }
    }

    /// Keys for a script: mostly a session's own (its key, its shard and
    /// tombstone, or an owner's index), now and then any key, of any kind;
    /// and the session's sid.
    fn script_keys(&mut self, indexes: bool) -> ([String; 3], String) {
        let n = self.rng.below(3);
        let sid = if self.rng.chance(10) {
            self.rng.pick(FIELDS).to_string()
        } else {
            format!("w{n}")
        };
        if self.rng.chance(25) {
            return ([(); 3].map(|_| self.key().to_owned()), sid);
        }
        if indexes {
            let owner = self.rng.pick(&["ada", "bob"]);
            let user = format!("{{i}}:user:{owner}");
            return ([user.clone(), user.clone(), user], sid);
        }
        (
            [
                format!("w{n}"),
                "{w}:all".to_owned(),
                format!("{{w{n}}}:gone"),
            ],
            sid,
        )
    }

    /// The device hash beside the shard of `script_keys`, now and then
    /// any key, of any kind.
    fn devices_key(&mut self) -> String {
        if self.rng.chance(15) {
            self.key().to_owned()
        } else {
            "{w}:devices".to_owned()
        }
    }

    fn script(&mut self) -> (Cmd, Check) {
        let mut c = Cmd::new();
        let now = self.now.to_string();
        c.arg("EVALSHA");
        match self.rng.below(7) {
            0 => {
                let (keys, sid) = self.script_keys(false);
                c.arg(&scripts::WRITE.hash).arg(3).arg(&keys);
                c.arg(self.rng.pick(&["set", "set", "touch", "rewrite"]));
                c.arg(self.rng.pick(VALUES));
                let cookie = if self.rng.chance(25) {
                    String::new()
                } else {
                    self.at().to_string()
                };
                c.arg(self.maybe(cookie.clone()));
                c.arg(self.maybe(now.clone()));
                let limit = |g: &mut Gen| match g.rng.below(3) {
                    0 => String::new(),
                    1 => "50000".to_owned(),
                    _ => "0".to_owned(),
                };
                let (idle, absolute) = (limit(self), limit(self));
                c.arg(self.maybe(idle)).arg(self.maybe(absolute));
                let window = self.rng.pick(&["0", "3650000"]).to_string();
                c.arg(self.maybe(window));
                c.arg(sid);
                let owner = self.rng.pick(&["", "ada", "bob"]);
                let time = |t: &str| t.parse().map_or_else(|_| t.to_owned(), meta::time);
                c.arg(format!(",{},{},,{owner}", time(&now), time(&cookie)));
                // Now and then no creation time: Lua's error for a nil.
                if !self.rng.chance(5) {
                    c.arg(self.maybe(time(&now)));
                    // The value a merge expects: mostly none, else the SHA1
                    // of a value a key may hold, or junk (and now and then
                    // no argument at all: nil).
                    match self.rng.below(4) {
                        0 => {}
                        1 => {
                            c.arg(scripts::sha1hex(self.rng.pick(VALUES).as_bytes()));
                        }
                        2 => {
                            c.arg(self.rng.pick(SCRIPT_JUNK));
                        }
                        _ => {
                            c.arg("");
                        }
                    }
                }
            }
            1 => {
                let ([session, shard, tomb], sid) = self.script_keys(false);
                let devices = self.devices_key();
                c.arg(&scripts::DESTROY.hash).arg(4).arg(session).arg(shard);
                c.arg(devices).arg(tomb);
                let end = self.now + 3_600_000;
                c.arg(self.maybe(meta::time(end))).arg(sid);
                c.arg(self.maybe(end.to_string()));
            }
            2 => {
                let ([_, user, _], _) = self.script_keys(true);
                c.arg(&scripts::INDEX.hash).arg(1).arg(user);
                c.arg(self.rng.pick(MEMBERS));
                let bound = if self.rng.chance(20) {
                    "+inf".to_owned()
                } else {
                    self.at().to_string()
                };
                c.arg(self.maybe(bound)).arg(self.maybe(now));
            }
            3 => {
                // Mostly the value a key holds, so that it is replaced.
                let ([session, _, _], _) = self.script_keys(false);
                c.arg(&scripts::SWAP.hash).arg(1).arg(session);
                let (read, new) = (self.rng.pick(VALUES), self.rng.pick(VALUES));
                c.arg(self.maybe(read.to_string()))
                    .arg(self.maybe(new.to_string()));
            }
            4 => {
                let ([session, shard, tomb], sid) = self.script_keys(false);
                let devices = self.devices_key();
                c.arg(&scripts::RECLAIM.hash).arg(4).arg(session).arg(shard);
                c.arg(devices).arg(tomb).arg(self.maybe(now)).arg(sid);
                // Until when a session found ended lingers as a marker:
                // mostly none, a time, or now and then no argument (nil).
                match self.rng.below(4) {
                    0 => {}
                    1 => {
                        c.arg("");
                    }
                    _ => {
                        c.arg(meta::time(self.now + 3_600_000));
                    }
                }
            }
            5 => {
                let ([session, shard, tomb], sid) = self.script_keys(false);
                let devices = self.devices_key();
                c.arg(&scripts::REPAIR.hash).arg(4).arg(session).arg(shard);
                c.arg(devices).arg(tomb).arg(self.maybe(sid));
            }
            _ => {
                let ([session, shard, _], sid) = self.script_keys(false);
                let devices = self.devices_key();
                c.arg(&scripts::DEVICE.hash).arg(3).arg(session).arg(shard);
                c.arg(devices).arg(sid).arg(self.rng.pick(VALUES));
            }
        }
        (c, Check::Exact)
    }
}

/// What the store's own code sends for a few sessions of a few owners.
struct Store {
    ctx: Context,
    seen: Recent,
}

const SIDS: &[&str] = &["a", "b", "c", "d"];
const OWNERS: &[Option<&str>] = &[None, Some("ada"), Some("bob")];

impl Store {
    fn new(lifetime: Lifetime, count_logins: bool) -> Store {
        Store {
            ctx: Context {
                keys: Keys::new("sess:"),
                lifetime,
                count_logins,
                session_limits: false,
                wait_for_replicas: false,
                seal: None,
                merge: false,
                read_expiry: false,
                events: Default::default(),
                ended: Default::default(),
                repairs: Default::default(),
            },
            seen: Recent::default(),
        }
    }

    fn ops(&mut self, g: &mut Gen) -> Pipeline {
        let mut ops = Vec::new();
        for _ in 0..1 + g.rng.below(6) {
            let sid = g.rng.pick(SIDS).to_string();
            let owner = g.rng.pick(OWNERS).map(str::to_owned);
            let expiry = if g.rng.chance(15) {
                Expiry::Never
            } else {
                Expiry::At(g.at())
            };
            let value = format!("{{\"n\":{}}}", g.rng.below(100));
            ops.push(match g.rng.below(6) {
                0 => Op::Get { sid },
                1 | 2 => Op::Set {
                    sid,
                    value,
                    expiry,
                    owner,
                    life: None,
                },
                3 => Op::Touch {
                    sid,
                    expiry,
                    owner,
                    life: None,
                },
                4 => Op::Rewrite {
                    sid,
                    value,
                    expiry,
                    owner,
                    life: None,
                },
                _ => Op::Destroy {
                    sid,
                    reason: Reason::Logout,
                },
            });
        }
        let mut pipe = build(&ops, &self.ctx, g.now, &mut self.seen).0;
        // `captureDevice`'s write, which lands only beside a live session.
        if g.rng.chance(40) {
            let sid = g.rng.pick(SIDS);
            let text = format!("{{\"ip\":\"10.0.0.{}\"}}", g.rng.below(9));
            devices::append_write(&mut pipe, &self.ctx, sid, &text);
        }
        pipe
    }

    /// The index reads of `admin/`, and the SCAN of `all()`.
    fn reads(&self, g: &mut Gen) -> Vec<(Cmd, Check)> {
        let keys = &self.ctx.keys;
        let now = g.now;
        let owner = keys.user_index(g.rng.pick(&["ada", "bob"]));
        let sessions: Vec<String> = SIDS.iter().map(|s| keys.session(s)).collect();
        let mut out = vec![
            (
                redis::cmd("ZREMRANGEBYSCORE")
                    .arg(&owner)
                    .arg("-inf")
                    .arg(now)
                    .clone(),
                Check::Exact,
            ),
            (
                redis::cmd("ZRANGE").arg(&owner).arg(0).arg(-1).clone(),
                Check::Exact,
            ),
            (
                redis::cmd("HGETALL")
                    .arg(keys.shard(g.rng.pick(SIDS)))
                    .clone(),
                Check::Pairs,
            ),
            (
                redis::cmd("HKEYS")
                    .arg(keys.shard(g.rng.pick(SIDS)))
                    .clone(),
                Check::Set,
            ),
            (redis::cmd("MGET").arg(&sessions).clone(), Check::Exact),
            (
                redis::cmd("SCAN")
                    .arg(0)
                    .arg("MATCH")
                    .arg(keys.scan_pattern())
                    .arg("COUNT")
                    .arg(1000)
                    .arg("TYPE")
                    .arg("string")
                    .clone(),
                Check::Scan,
            ),
        ];
        for (sid, s) in SIDS.iter().zip(&sessions) {
            out.push((
                redis::cmd("HGET").arg(keys.shard(sid)).arg(sid).clone(),
                Check::Exact,
            ));
            out.push((
                redis::cmd("HGET").arg(keys.devices(sid)).arg(sid).clone(),
                Check::Exact,
            ));
            out.push((redis::cmd("PEXPIRETIME").arg(s).clone(), Check::Clock));
        }
        out
    }
}

/// Both sides of the comparison, and what went to them.
struct Pair {
    redis: redis::Connection,
    engine: Arc<Engine>,
    seed: u64,
    round: usize,
    /// How often each command met each kind of reply, to show what a run
    /// covered (printed with --nocapture).
    seen: std::collections::BTreeMap<String, usize>,
}

/// A command's name (a script's, for EVALSHA) and the kind of its reply.
fn tally(cmd: &Cmd, reply: &Value) -> String {
    let args: Vec<&[u8]> = cmd
        .args_iter()
        .filter_map(|a| match a {
            redis::Arg::Simple(b) => Some(b),
            _ => None,
        })
        .collect();
    let mut name =
        String::from_utf8_lossy(args.first().copied().unwrap_or_default()).to_uppercase();
    if name == "EVALSHA" {
        let sha = args.get(1).copied().unwrap_or_default();
        let script = [
            ("WRITE", &scripts::WRITE),
            ("DESTROY", &scripts::DESTROY),
            ("INDEX", &scripts::INDEX),
            ("RECLAIM", &scripts::RECLAIM),
            ("SWAP", &scripts::SWAP),
            ("DEVICE", &scripts::DEVICE),
            ("REPAIR", &scripts::REPAIR),
        ]
        .into_iter()
        .find(|(_, s)| s.hash.as_bytes() == sha);
        name = format!("EVALSHA {}", script.map_or("?", |(n, _)| n));
    }
    let kind = match reply {
        Value::ServerError(e) => {
            let detail = e.details().unwrap_or_default();
            let what = match detail.find("user_script") {
                Some(_) if detail.contains("attempt to") => "Lua error",
                Some(_) => "error in script",
                None => detail
                    .split_whitespace()
                    .take(3)
                    .collect::<Vec<_>>()
                    .join(" ")
                    .leak(),
            };
            format!("{} {what}", e.code())
        }
        Value::Int(n) if (-2..=2).contains(n) => format!("{n}"),
        Value::Int(_) => "int".to_owned(),
        Value::Nil => "nil".to_owned(),
        Value::Array(a) if a.is_empty() => "[]".to_owned(),
        Value::Array(a) => match a.first() {
            Some(Value::Int(state)) if a.len() == 3 => format!("[{state}, ..]"),
            _ => "[..]".to_owned(),
        },
        Value::Okay => "OK".to_owned(),
        _ => "bulk".to_owned(),
    };
    format!("{name:<22} {kind}")
}

fn text(cmd: &Cmd) -> String {
    cmd.args_iter()
        .map(|a| match a {
            redis::Arg::Simple(b) => format!("{:?}", String::from_utf8_lossy(b)),
            _ => "<cursor>".to_owned(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn info_fields(v: &Value) -> Vec<String> {
    let Value::BulkString(b) = v else {
        return vec![format!("{v:?}")];
    };
    String::from_utf8_lossy(b)
        .lines()
        .filter(|l| l.starts_with("maxmemory_policy:") || l.starts_with("connected_slaves:"))
        .map(str::to_owned)
        .collect()
}

fn near(a: i64, b: i64) -> bool {
    (a - b).abs() <= 50
}

fn same(check: Check, r: &Value, e: &Value) -> bool {
    match (check, r, e) {
        (Check::Pairs, Value::Array(a), Value::Array(b)) => {
            let pairs = |v: &[Value]| {
                let mut p: Vec<(Value, Value)> =
                    v.chunks(2).map(|c| (c[0].clone(), c[1].clone())).collect();
                p.sort_by_key(|(f, _)| format!("{f:?}"));
                p
            };
            a.len() == b.len() && pairs(a) == pairs(b)
        }
        (Check::Set, Value::Array(a), Value::Array(b)) => {
            let sorted = |v: &[Value]| {
                let mut items: Vec<String> = v.iter().map(|i| format!("{i:?}")).collect();
                items.sort();
                items
            };
            sorted(a) == sorted(b)
        }
        (Check::Clock, Value::Int(a), Value::Int(b)) if *a >= 0 && *b >= 0 => near(*a, *b),
        (Check::Scan, Value::Array(a), Value::Array(b)) if a.len() == 2 && b.len() == 2 => {
            let sorted = |v: &Value| match v {
                Value::Array(items) => {
                    let mut keys: Vec<Vec<u8>> = items
                        .iter()
                        .map(|k| match k {
                            Value::BulkString(b) => b.clone(),
                            _ => Vec::new(),
                        })
                        .collect();
                    keys.sort();
                    Some(keys)
                }
                _ => None,
            };
            a[0] == b[0] && sorted(&a[1]) == sorted(&b[1])
        }
        (Check::Info, _, _) => info_fields(r) == info_fields(e),
        _ => r == e,
    }
}

impl Pair {
    fn new(server: &Server, engine: Arc<Engine>, seed: u64) -> Pair {
        let mut pair = Pair {
            redis: connect(server),
            engine,
            seed,
            round: 0,
            seen: Default::default(),
        };
        let load = scripts::load_pipeline();
        let checks = vec![Check::Exact; scripts::ALL.len()];
        pair.run(&load, &checks);
        pair
    }

    /// Sends `pipe` to both; panics at the first reply that differs.
    fn run(&mut self, pipe: &Pipeline, checks: &[Check]) -> Vec<Value> {
        let started = Instant::now();
        let packed = pipe.get_packed_pipeline();
        let from_redis = self
            .redis
            .req_packed_commands(&packed, 0, pipe.len())
            .expect("redis answered");
        let from_engine = self.engine.exec(pipe);
        assert_eq!(from_engine.len(), pipe.len(), "one reply per command");
        for (i, (cmd, (r, e))) in pipe
            .cmd_iter()
            .zip(from_redis.iter().zip(&from_engine))
            .enumerate()
        {
            *self.seen.entry(tally(cmd, r)).or_default() += 1;
            if !same(checks[i], r, e) {
                let before: Vec<String> = pipe
                    .cmd_iter()
                    .zip(&from_redis)
                    .take(i)
                    .map(|(c, r)| format!("  {} -> {r:?}", text(c)))
                    .collect();
                panic!(
                    "seed {} round {} command {i} ({} ms for the pipeline): {}\n redis:  {r:?}\n \
                     engine: {e:?}\nafter:\n{}",
                    self.seed,
                    self.round,
                    started.elapsed().as_millis(),
                    text(cmd),
                    before.join("\n")
                );
            }
        }
        from_redis
    }

    /// Reads back every key, of every kind, with its expiry, from both.
    fn dump(&mut self, state: &str) {
        let mut scan = redis::pipe();
        for kind in ["string", "hash", "zset"] {
            scan.cmd("SCAN")
                .arg(0)
                .arg("COUNT")
                .arg(10_000)
                .arg("TYPE")
                .arg(kind);
        }
        let found = self.run(&scan, &[Check::Scan; 3]);
        let mut pipe = redis::pipe();
        for (reply, kind) in found.iter().zip(["string", "hash", "zset"]) {
            let Value::Array(parts) = reply else { continue };
            let Some(Value::Array(keys)) = parts.get(1) else {
                continue;
            };
            for key in keys {
                let Value::BulkString(key) = key else {
                    continue;
                };
                match kind {
                    "string" => pipe.cmd("GET").arg(key),
                    "hash" => pipe.cmd("HMGET").arg(key).arg(FIELDS),
                    _ => pipe.cmd("ZRANGE").arg(key).arg(0).arg(-1).arg("WITHSCORES"),
                };
                pipe.cmd("PEXPIRETIME").arg(key);
            }
        }
        let checks: Vec<Check> = (0..pipe.len())
            .map(|i| {
                if i % 2 == 1 {
                    Check::Clock
                } else {
                    Check::Exact
                }
            })
            .collect();
        let round = self.round;
        self.round = usize::MAX;
        let replies = self.run(&pipe, &checks);
        self.round = round;
        assert!(
            !replies.is_empty() || state == "empty",
            "{state}: nothing to compare"
        );
    }
}

/// Runs the differential rounds against `engine`; returns the pair for
/// further checks.
fn differential(server: &Server, engine: Arc<Engine>) -> Pair {
    let seed = env_or("ENGINE_DIFF_SEED", 0x5eed_2026);
    let rounds = env_or("ENGINE_DIFF_ROUNDS", 1200) as usize;
    // Reading everything back after every round finds where a difference
    // began; every 50 rounds is the default.
    let dump_every = env_or("ENGINE_DIFF_DUMP_EVERY", 50).max(1) as usize;
    let mut pair = Pair::new(server, engine, seed);
    let mut g = Gen {
        rng: Rng::seeded(seed),
        now: now_ms(),
        near: None,
        allow_near: false,
    };
    let mut stores = [
        Store::new(Lifetime::default(), false),
        Store::new(
            Lifetime {
                idle_ms: Some(50_000),
                absolute_ms: None,
            },
            true,
        ),
        Store::new(
            Lifetime {
                idle_ms: Some(50_000),
                absolute_ms: Some(100_000),
            },
            true,
        ),
    ];
    for round in 0..rounds {
        pair.round = round;
        g.now = now_ms();
        g.near = None;
        g.allow_near = g.rng.chance(3);
        let which = g.rng.below(stores.len());
        let store = &mut stores[which];
        match g.rng.below(10) {
            0..=4 => {
                let mut pipe = redis::pipe();
                let mut checks = Vec::new();
                for _ in 0..1 + g.rng.below(20) {
                    let (cmd, check) = g.raw();
                    pipe.add_command(cmd);
                    checks.push(check);
                }
                pair.run(&pipe, &checks);
            }
            5..=7 => {
                let pipe = store.ops(&mut g);
                pair.run(&pipe, &checks_for(&pipe));
            }
            8 => {
                let mut pipe = redis::pipe();
                let mut checks = Vec::new();
                for (cmd, check) in store.reads(&mut g) {
                    pipe.add_command(cmd);
                    checks.push(check);
                }
                pair.run(&pipe, &checks);
            }
            _ => reclaim_round(&mut pair, &store.ctx, g.now),
        }
        if let Some(at) = g.near {
            // Let every near deadline pass before the next round reads it.
            let wait = at + 3 - now_ms();
            if wait > 0 {
                std::thread::sleep(Duration::from_millis(wait as u64));
            }
        }
        if round % dump_every == dump_every - 1 {
            pair.dump("during the run");
        }
    }
    pair.dump("at the end");
    let total: usize = pair.seen.values().sum();
    println!("seed {seed}, {rounds} rounds, {total} replies compared:");
    for (what, n) in &pair.seen {
        println!("{n:>8}  {what}");
    }
    pair
}

/// How to compare the replies to a pipeline the store built.
fn checks_for(pipe: &Pipeline) -> Vec<Check> {
    pipe.cmd_iter()
        .map(|cmd| {
            let args: Vec<Vec<u8>> = cmd
                .args_iter()
                .map(|a| match a {
                    redis::Arg::Simple(b) => b.to_vec(),
                    _ => Vec::new(),
                })
                .collect();
            match args.first().map(Vec::as_slice) {
                Some(b"PEXPIRETIME" | b"PTTL") => Check::Clock,
                _ => Check::Exact,
            }
        })
        .collect()
}

/// A round of `store/cleanup.rs` over the shards of `SIDS`: every meta in them
/// (the store picks those done with; `RECLAIM` checks anyway) and the
/// device data beside them without a meta, then the owners' indexes of the
/// metas it deleted.
fn reclaim_round(pair: &mut Pair, ctx: &Context, now: i64) {
    let mut shards: Vec<String> = SIDS.iter().map(|s| ctx.keys.shard(s)).collect();
    shards.sort();
    shards.dedup();
    let devices: Vec<String> = shards.iter().map(|s| ctx.keys.devices_beside(s)).collect();
    let mut read = redis::pipe();
    for shard in &shards {
        read.cmd("HGETALL").arg(shard);
    }
    read.cmd("EXISTS").arg(&devices);
    let mut checks = vec![Check::Pairs; shards.len()];
    checks.push(Check::Exact);
    let mut replies = pair.run(&read, &checks);
    let any = matches!(replies.pop(), Some(Value::Int(n)) if n > 0);
    let mut recorded = Vec::new();
    if any {
        let mut keys = redis::pipe();
        for hash in &devices {
            keys.cmd("HKEYS").arg(hash);
        }
        recorded = pair.run(&keys, &vec![Check::Set; devices.len()]);
    }
    let mut recorded = recorded.into_iter();
    let mut metas = Vec::new();
    for (shard, found) in shards.iter().zip(replies) {
        let mut sids: Vec<String> = meta::entries(found)
            .into_iter()
            .map(|(sid, _)| sid)
            .collect();
        if let Some(Value::Array(listed)) = recorded.next() {
            for d in listed {
                if let Value::BulkString(b) = d {
                    let sid = String::from_utf8_lossy(&b).into_owned();
                    if !sids.contains(&sid) {
                        sids.push(sid);
                    }
                }
            }
        }
        metas.extend(sids.into_iter().map(|sid| (shard.clone(), sid)));
    }
    if metas.is_empty() {
        return;
    }
    let mut pipe = redis::pipe();
    for (shard, sid) in &metas {
        pipe.cmd("EVALSHA")
            .arg(&scripts::RECLAIM.hash)
            .arg(4)
            .arg(ctx.keys.session(sid))
            .arg(shard)
            .arg(ctx.keys.devices_beside(shard))
            .arg(keys::tombstone(&ctx.keys.session(sid)))
            .arg(now)
            .arg(sid)
            // With limits a claimed end lingers as a marker (see store/cleanup.rs).
            .arg(if ctx.limited() {
                meta::time(now + 3_600_000)
            } else {
                String::new()
            });
    }
    let found = pair.run(&pipe, &vec![Check::Exact; metas.len()]);
    let mut zrem = redis::pipe();
    for ((_, sid), reply) in metas.iter().zip(found) {
        let Value::Array(parts) = reply else { continue };
        if let [Value::Int(0), Value::BulkString(owner), ..] = parts.as_slice() {
            if !owner.is_empty() {
                let owner = String::from_utf8_lossy(owner);
                zrem.cmd("ZREM").arg(ctx.keys.user_index(&owner)).arg(sid);
            }
        }
    }
    if !zrem.is_empty() {
        let checks = vec![Check::Exact; zrem.len()];
        pair.run(&zrem, &checks);
    }
}

/// A directory of this test process for one file, removed afterwards.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("engine-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn file(&self) -> PathBuf {
        self.0.join("sessions.db")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn file_url(path: &std::path::Path) -> String {
    format!("file://{}", path.display())
}

#[test]
fn the_memory_engine_answers_as_redis() {
    let server = Server::start();
    differential(&server, Engine::open("memory://").unwrap());
}

#[test]
fn the_file_engine_answers_as_redis_and_keeps_it_all_across_a_reopen() {
    let server = Server::start();
    let scratch = Scratch::new("differential");
    let path = scratch.file();
    let mut pair = differential(&server, Engine::open(&file_url(&path)).unwrap());
    // Whatever expired is swept from the file too; then the file alone,
    // reopened, must hold what Redis holds.
    while pair.engine.sweep(10_000) > 0 {}
    // Drop the only handle (releasing the file) before opening it again.
    pair.engine = Engine::open("memory://").unwrap();
    pair.engine = Engine::open(&file_url(&path)).unwrap();
    pair.dump("after reopening the file");
}

/// The child side of `kill_9_loses_no_acknowledged_write`: writes until
/// killed, printing each round once `exec` has returned.
#[test]
#[ignore = "the child process of kill_9_loses_no_acknowledged_write"]
fn child_writes_until_killed() {
    use std::io::Write;
    let path = std::env::var("ENGINE_CHILD_FILE").expect("run by its parent test");
    let engine = Engine::open(&format!("file://{path}")).unwrap();
    let mut out = std::io::stdout().lock();
    for i in 0.. {
        let mut p = redis::pipe();
        p.cmd("SET").arg(format!("s{i}")).arg(format!("v{i}"));
        p.cmd("HSET")
            .arg(format!("h{}", i % 10))
            .arg(format!("f{i}"))
            .arg(i);
        p.cmd("ZADD").arg("z").arg(i).arg(format!("m{i}"));
        let replies = engine.exec(&p);
        assert!(
            replies.iter().all(|r| !matches!(r, Value::ServerError(_))),
            "{replies:?}"
        );
        writeln!(out, "ack {i}").unwrap();
        out.flush().unwrap();
    }
}

fn child(test: &str, path: &std::path::Path) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        test,
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("ENGINE_CHILD_FILE", path)
    .stderr(Stdio::null());
    cmd
}

#[test]
fn kill_9_loses_no_acknowledged_write() {
    let scratch = Scratch::new("kill9");
    let path = scratch.file();
    let mut writer = child("child_writes_until_killed", &path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(writer.stdout.take().unwrap()).lines();
    let ack = |line: std::io::Result<String>| {
        line.ok()
            .and_then(|l| l.strip_prefix("ack ").and_then(|i| i.parse::<i64>().ok()))
    };
    let started = Instant::now();
    let mut last = None;
    while started.elapsed() < Duration::from_secs(30) && last.is_none_or(|i| i < 300) {
        match lines.next() {
            Some(line) => last = ack(line).or(last),
            None => break,
        }
    }
    writer.kill().unwrap(); // SIGKILL: no destructor, no flush.
    writer.wait().unwrap();
    // Acknowledgements still in the pipe count too.
    for line in lines {
        last = ack(line).or(last);
    }
    let last = last.expect("the child acknowledged writes");
    println!("killed after {} acknowledged rounds", last + 1);
    let engine = Engine::open(&file_url(&path)).unwrap();
    let mut p = redis::pipe();
    for i in 0..=last + 1 {
        p.cmd("GET").arg(format!("s{i}"));
        p.cmd("HGET")
            .arg(format!("h{}", i % 10))
            .arg(format!("f{i}"));
        p.cmd("ZSCORE").arg("z").arg(format!("m{i}"));
    }
    let replies = engine.exec(&p);
    for (i, round) in replies.chunks(3).enumerate() {
        let n = i.to_string().into_bytes();
        let written = [
            Value::BulkString(format!("v{i}").into_bytes()),
            Value::BulkString(n.clone()),
            Value::BulkString(n),
        ];
        if i as i64 <= last {
            assert_eq!(round, written, "acknowledged round {i} of {last} lost");
        } else {
            // The round in flight at the kill: all of it or none.
            assert!(
                round == written || round.iter().all(|v| *v == Value::Nil),
                "{round:?}"
            );
        }
    }
}

/// The child side of the exclusive-open test: says what opening gave.
#[test]
#[ignore = "the child process of a_second_process_is_refused_the_file_until_it_is_closed"]
fn child_opens_the_file() {
    let path = std::env::var("ENGINE_CHILD_FILE").expect("run by its parent test");
    match Engine::open(&format!("file://{path}")) {
        Ok(_) => println!("opened"),
        Err(e) => println!("refused {:?}: {}", e.kind, e.message),
    }
}

#[test]
fn a_second_process_is_refused_the_file_until_it_is_closed() {
    let scratch = Scratch::new("exclusive");
    let path = scratch.file();
    let url = file_url(&path);
    let engine = Engine::open(&url).unwrap();
    let other_process = || {
        let out = child("child_opens_the_file", &path).output().unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    let refused = other_process();
    let named = path.canonicalize().unwrap().display().to_string();
    assert!(refused.contains("refused Unavailable"), "{refused}");
    assert!(refused.contains(&named), "{refused}");
    assert!(refused.contains("another process"), "{refused}");
    // In this process the same file is the same engine, by any spelling.
    let again = Engine::open(
        &format!("file://{}", path.display()).replace("/sessions.db", "/./sessions.db"),
    )
    .unwrap();
    assert!(Arc::ptr_eq(&engine, &again));
    drop((engine, again));
    assert!(
        other_process().contains("opened"),
        "the file was not released"
    );
    // And in this one.
    Engine::open(&url).unwrap();
}

#[test]
fn a_file_keeps_every_kind_across_a_reopen() {
    let scratch = Scratch::new("reopen");
    let path = scratch.file();
    let url = file_url(&path);
    let far = now_ms() + 3_600_000;
    {
        let engine = Engine::open(&url).unwrap();
        let mut p = redis::pipe();
        p.cmd("SET").arg("s").arg("v").arg("PXAT").arg(far);
        p.cmd("SET").arg("plain").arg("v");
        p.cmd("HSET").arg("h").arg("a").arg(1).arg("b").arg(2);
        p.cmd("PEXPIREAT").arg("h").arg(far + 1);
        // A large sorted set (past the small form), then part of it removed.
        for i in 0..1000 {
            p.cmd("ZADD").arg("big").arg(i).arg(format!("m{i:04}"));
        }
        p.cmd("ZREMRANGEBYSCORE").arg("big").arg("-inf").arg(499);
        p.cmd("ZADD").arg("gone").arg(1).arg("x");
        p.cmd("DEL").arg("gone");
        // A kind replaced by another.
        p.cmd("ZADD").arg("swap").arg(1).arg("x");
        p.cmd("SET").arg("swap").arg("now a string");
        engine.exec(&p);
    }
    let engine = Engine::open(&url).unwrap();
    let mut p = redis::pipe();
    p.cmd("GET").arg("s").cmd("PEXPIRETIME").arg("s");
    p.cmd("GET").arg("plain").cmd("PEXPIRETIME").arg("plain");
    p.cmd("HMGET")
        .arg("h")
        .arg("a")
        .arg("b")
        .cmd("PEXPIRETIME")
        .arg("h");
    p.cmd("ZCARD")
        .arg("big")
        .cmd("ZRANGE")
        .arg("big")
        .arg(0)
        .arg(0)
        .arg("WITHSCORES");
    p.cmd("EXISTS").arg("gone").cmd("GET").arg("swap");
    let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
    assert_eq!(
        engine.exec(&p),
        vec![
            bulk("v"),
            Value::Int(far),
            bulk("v"),
            Value::Int(-1),
            Value::Array(vec![bulk("1"), bulk("2")]),
            Value::Int(far + 1),
            Value::Int(500),
            Value::Array(vec![bulk("m0500"), bulk("500")]),
            Value::Int(0),
            bulk("now a string"),
        ]
    );
}

#[test]
fn bad_urls_are_refused_naming_them() {
    for url in ["memry://", "file://relative.db", "file:///no/such/dir/x.db"] {
        let e = Engine::open(url).err().expect("refused");
        assert_eq!(e.kind, ErrorKind::InvalidArgument);
        assert!(e.message.contains(url), "{}", e.message);
    }
}

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
        .unwrap_or(0)
}

/// Figures, not a pass/fail check: cargo test --release --test engine --
/// --ignored --nocapture figures
#[test]
#[ignore = "prints figures"]
fn figures() {
    // A tick's pipeline as the store sends it: 32 sets and 32 gets.
    let tick = |round: usize| {
        let mut ops = Vec::new();
        for i in 0..32 {
            let sid = format!("{:032}", (round * 32 + i) % 10_000);
            ops.push(Op::Set {
                sid: sid.clone(),
                value: "x".repeat(300),
                expiry: Expiry::At(now_ms() + 3_600_000),
                owner: None,
                life: None,
            });
            ops.push(Op::Get { sid });
        }
        ops
    };
    let ctx = Store::new(Lifetime::default(), false).ctx;
    let scratch = Scratch::new("figures");
    for url in ["memory://".to_owned(), file_url(&scratch.file())] {
        let engine = Engine::open(&url).unwrap();
        engine.exec(&scripts::load_pipeline());
        let mut seen = Recent::default();
        let start = Instant::now();
        let mut rounds = 0;
        let mut commands = 0;
        while start.elapsed() < Duration::from_secs(3) {
            let (pipe, _) = build(&tick(rounds), &ctx, now_ms(), &mut seen);
            commands += pipe.len();
            engine.exec(&pipe);
            rounds += 1;
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "{url}: {:.0} store ops/s ({:.0} commands/s), {:.3} ms per 64-op exec",
            (rounds * 64) as f64 / secs,
            commands as f64 / secs,
            secs * 1000.0 / rounds as f64
        );
    }
    let engine = Engine::open("memory://").unwrap();
    let before = rss_kb();
    for wave in 0..10 {
        for chunk in 0..100 {
            let mut p = redis::pipe();
            for i in 0..1000 {
                p.cmd("SET")
                    .arg(format!("sess:{wave}:{chunk}:{i:024}"))
                    .arg("x".repeat(200))
                    .arg("PX")
                    .arg(1);
            }
            engine.exec(&p);
        }
        std::thread::sleep(Duration::from_millis(2));
        let start = Instant::now();
        let mut swept = 0;
        loop {
            let n = engine.sweep(1 << 20);
            if n == 0 {
                break;
            }
            swept += n;
        }
        println!(
            "wave {wave}: swept {swept} in {:.1} ms, RSS {} MB (was {} MB)",
            start.elapsed().as_secs_f64() * 1000.0,
            rss_kb() / 1024,
            before / 1024
        );
    }
    let mut p = redis::pipe();
    for i in 0..1_000_000 {
        p.cmd("SET").arg(format!("k{i}")).arg("v").arg("PX").arg(1);
    }
    engine.exec(&p);
    std::thread::sleep(Duration::from_millis(2));
    let start = Instant::now();
    let swept = engine.sweep(1 << 21);
    println!(
        "memory: sweep of {swept} expired keys in {:.1} ms",
        start.elapsed().as_secs_f64() * 1000.0
    );
    // A file of 100k sessions as the store keeps them: write, reopen, sweep.
    let scratch = Scratch::new("figures-load");
    let path = scratch.file();
    let url = file_url(&path);
    let engine = Engine::open(&url).unwrap();
    engine.exec(&scripts::load_pipeline());
    let mut seen = Recent::default();
    let soon = now_ms() + 5_000;
    let start = Instant::now();
    for chunk in 0..1_000 {
        let ops: Vec<Op> = (0..100)
            .map(|i| Op::Set {
                sid: format!("{chunk:05}{i:027}"),
                value: "x".repeat(300),
                expiry: Expiry::At(soon),
                owner: Some(format!("user{}", i % 10)),
                life: None,
            })
            .collect();
        engine.exec(&build(&ops, &ctx, now_ms(), &mut seen).0);
    }
    let written = start.elapsed();
    drop(engine);
    let start = Instant::now();
    let engine = Engine::open(&url).unwrap();
    println!(
        "file: 100k sessions (with metas and indexes) written in {:.1} s, {} MB, reopened in {:.0} ms",
        written.as_secs_f64(),
        std::fs::metadata(&path).unwrap().len() >> 20,
        start.elapsed().as_secs_f64() * 1000.0
    );
    std::thread::sleep(Duration::from_millis((soon - now_ms()).max(0) as u64 + 2));
    let start = Instant::now();
    let mut swept = 0;
    loop {
        let n = engine.sweep(10_000);
        if n == 0 {
            break;
        }
        swept += n;
    }
    println!(
        "file: sweep of {swept} expired sessions, 10k per call, in {:.0} ms",
        start.elapsed().as_secs_f64() * 1000.0
    );
}
