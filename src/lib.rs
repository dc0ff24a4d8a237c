//! Native core of redis-session-store. Plain Rust modules do the work and are
//! tested with `cargo test`; `binding` is the only napi-aware module.

pub mod admin;
pub mod backend;
pub mod engine;
pub mod error;
pub mod near;
pub mod ops;
pub mod session;
pub mod store;

mod binding;

// Batches allocate many short-lived strings and vectors across threads;
// mimalloc's thread-local free lists are cheaper than glibc malloc here.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
