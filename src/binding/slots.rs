//! The JS thread's two hot calls, `exec` and `nearRead`, as free functions
//! that name their store by slot instead of methods of `NativeStore`. A
//! method unwraps its receiver (a V8 private-property look-up) and
//! registers a native borrow (a process-wide mutex and map) at every call:
//! one request at a time, that was about a quarter of each call's time
//! (`node bench/crossing.js`, docs/benchmarks.md).

use std::sync::atomic::{AtomicU32, Ordering};

use napi::bindgen_prelude::*;
use napi_derive::napi;

use super::text::{Text, Texts};
use super::NativeStore;

thread_local! {
    /// The stores of this JS thread that took a slot, by slot; null once
    /// dropped. Slots are not reused, so a stale one finds nothing.
    static SLOTS: std::cell::RefCell<Vec<*const NativeStore>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// A store's slot, once it took one (`NativeStore::slot`).
pub(super) struct Slot(AtomicU32);

const NONE: u32 = u32::MAX;

impl Default for Slot {
    fn default() -> Self {
        Slot(AtomicU32::new(NONE))
    }
}

#[napi]
impl NativeStore {
    /// This store's slot for `exec` and `nearRead`: taken on the first
    /// call, once napi-rs has the store where it stays until dropped.
    #[napi]
    pub fn slot(&self) -> u32 {
        let taken = self.slot.0.load(Ordering::Acquire);
        if taken != NONE {
            return taken;
        }
        SLOTS.with(|slots| {
            let mut slots = slots.borrow_mut();
            slots.push(self as *const NativeStore);
            let slot = (slots.len() - 1) as u32;
            self.slot.0.store(slot, Ordering::Release);
            slot
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let slot = *self.0.get_mut();
        if slot == NONE {
            return;
        }
        // Gone already when the thread itself is ending: nothing to clear.
        let _ = SLOTS.try_with(|slots| {
            if let Some(store) = slots.borrow_mut().get_mut(slot as usize) {
                *store = std::ptr::null();
            }
        });
    }
}

fn with_store<R>(slot: u32, call: impl FnOnce(&NativeStore) -> Result<R>) -> Result<R> {
    let store = SLOTS
        .with(|slots| slots.borrow().get(slot as usize).copied())
        .filter(|store| !store.is_null())
        .ok_or_else(|| Error::new(Status::InvalidArg, "no store in this slot"))?;
    // SAFETY: the pointer was registered by `slot()` from the store napi-rs
    // keeps boxed behind its JS object, and is cleared when that store is
    // dropped (its `Slot` field), on this thread, the only one that can
    // reach it. Every method takes `&self`.
    call(unsafe { &*store })
}

// napi-rs registers free functions outside `cfg(test)` only: unit tests
// would see these (and all they call) as unused.

/// `NativeStore::exec` for the store in `slot`.
#[cfg_attr(test, allow(dead_code))]
// One argument per part of the wire form (see `wire::decode`).
#[allow(clippy::too_many_arguments)]
#[napi(catch_unwind)]
pub fn exec<'env>(
    env: &'env Env,
    slot: u32,
    batch_id: u32,
    count: u32,
    #[napi(ts_arg_type = "string")] sids: Text,
    #[napi(ts_arg_type = "Array<string>")] values: Texts,
    #[napi(ts_arg_type = "Array<string>")] owners: Texts,
    near: bool,
) -> Result<Option<Unknown<'env>>> {
    with_store(slot, |store| {
        store.exec(env, (batch_id, count), (sids, values, owners), near)
    })
}

/// `NativeStore::near_read` for the store in `slot`.
#[cfg_attr(test, allow(dead_code))]
#[napi]
pub fn near_read<'env>(
    env: &'env Env,
    slot: u32,
    data: BufferSlice,
) -> Result<Option<Unknown<'env>>> {
    with_store(slot, |store| store.near_read(env, &data))
}
