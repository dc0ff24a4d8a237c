//! Float64Arrays JS and Rust share, held by a napi reference between
//! calls: numbers written to memory instead of converted one by one through
//! napi. The near replies' numbers (`near::answer`) and each batch's inputs
//! (`wire::decode`).

use napi::bindgen_prelude::*;

#[derive(Default)]
pub(super) struct Shared(Option<Float64Array>);

impl Shared {
    /// Makes room for `need` numbers, growing only: the new array, for JS,
    /// when one was made.
    pub fn fit<'env>(&mut self, env: &'env Env, need: usize) -> Result<Option<Unknown<'env>>> {
        if self.0.as_ref().is_some_and(|n| n.len() >= need) {
            return Ok(None);
        }
        let len = need
            .max(2 * self.0.as_ref().map_or(0, |n| n.len()))
            .max(256);
        self.replace(env, len).map(Some)
    }

    /// A new array of `len` numbers in place of the one held, for JS.
    pub fn replace<'env>(&mut self, env: &'env Env, len: usize) -> Result<Unknown<'env>> {
        // SAFETY: `env` is this call's, and the value just made is a
        // Float64Array; the kept one holds a reference to it.
        unsafe {
            let value = Float64Array::to_napi_value(env.raw(), Float64Array::new(vec![0.0; len]))?;
            self.0 = Some(Float64Array::from_napi_value(env.raw(), value)?);
            Ok(Unknown::from_raw_unchecked(env.raw(), value))
        }
    }

    /// Read and written only on the JS thread, during a napi call; JS reads
    /// and writes it between calls.
    pub fn slice(&mut self) -> &mut [f64] {
        // SAFETY: as above: nothing else touches it meanwhile.
        self.0.as_mut().map_or(&mut [], |n| unsafe { n.as_mut() })
    }
}
