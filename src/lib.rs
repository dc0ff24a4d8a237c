//! Native core of redis-session-store. Plain Rust modules do the work and are
//! tested with `cargo test`; `binding` is the only napi-aware module.
//!
//! A call flows `binding` → `store` (its writer) → `ops` → `backend` → Redis
//! or `engine`: the binding hands each event-loop tick's operations to the
//! store as one batch; its writer sends them in order as one pipeline
//! (`near` sends them on the JS thread's own socket while the writer is
//! idle); `ops` turns operations into commands and the replies back into
//! outcomes; `backend` carries the pipeline. The calls over many sessions
//! (`admin`) run beside the batches, behind the store's fences.
//!
//! - `binding`: the napi surface (options, the wire format, the near path's face).
//! - `store`: the queue and its writer, what the store knows of its server, cleanup.
//! - `near`: the JS thread's own connection, for batches while the writer is idle.
//! - `ops`: operations, their commands and replies, merging, device data
//!   commands, and what this process wrote recently.
//! - `admin`: listing, users' sessions, stats, reindex, reencrypt, device calls.
//! - `session`: what is kept beside a session (keys, meta, expiry, the Lua
//!   scripts that keep them, sealing, lifecycle events, ended-session
//!   numbers). It depends on nothing above it.
//! - `backend`: one module per topology (one server, TLS, Sentinel, Cluster, the
//!   embedded engine) behind one interface.
//! - `engine`: `memory://` and `file://`, answering as Redis would, running the
//!   store's scripts natively.
//! - `error`: the error kinds and their codes.

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
