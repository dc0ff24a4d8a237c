//! Where sessions live, behind one interface (`contract::Backend`): one
//! module per topology. Nothing outside this folder asks which one it has.

pub mod contract;
pub mod link;
pub mod options;

mod cluster;
mod embedded;
mod named;
mod reader;
mod sentinel;
mod single;

pub use contract::{dropped, round_trip, Backend, Conn, Reply, SendError};
pub use link::{Link, Plain};
pub use options::{ConnectionOptions, SentinelOptions, Tls};
pub use reader::Reader;
