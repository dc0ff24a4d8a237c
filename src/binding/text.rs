//! JS strings read in one pass. napi-rs reads a string by asking V8 for its
//! UTF-8 length, which walks it, then for its bytes, a second walk; sized
//! from its UTF-16 length (known, and at most three bytes a unit), one walk
//! writes it. A batch's values are the session texts, kilobytes each.

use std::ptr;

use napi::bindgen_prelude::*;
use napi::sys;

/// A string argument.
pub struct Text(pub String);

/// An array of strings argument.
pub struct Texts(pub Vec<String>);

unsafe fn read(env: sys::napi_env, value: sys::napi_value) -> Result<String> {
    let mut units = 0;
    check_status!(
        unsafe { sys::napi_get_value_string_utf16(env, value, ptr::null_mut(), 0, &mut units) },
        "expected a string"
    )?;
    // Room for the terminating NUL V8 writes.
    let room = units * 3 + 1;
    let mut bytes = Vec::<u8>::with_capacity(room);
    let mut written = 0;
    check_status!(unsafe {
        sys::napi_get_value_string_utf8(env, value, bytes.as_mut_ptr().cast(), room, &mut written)
    })?;
    // SAFETY: V8 wrote `written` bytes (lone surrogates as U+FFFD).
    unsafe { bytes.set_len(written) };
    String::from_utf8(bytes).map_err(|_| Error::new(Status::InvalidArg, "a string is not UTF-8"))
}

impl FromNapiValue for Text {
    unsafe fn from_napi_value(env: sys::napi_env, value: sys::napi_value) -> Result<Self> {
        unsafe { read(env, value) }.map(Text)
    }
}

impl FromNapiValue for Texts {
    unsafe fn from_napi_value(env: sys::napi_env, value: sys::napi_value) -> Result<Self> {
        let mut len = 0;
        check_status!(
            unsafe { sys::napi_get_array_length(env, value, &mut len) },
            "expected an array"
        )?;
        let mut out = Vec::with_capacity(len as usize);
        for i in 0..len {
            let mut item = ptr::null_mut();
            check_status!(unsafe { sys::napi_get_element(env, value, i, &mut item) })?;
            out.push(unsafe { read(env, item) }?);
        }
        Ok(Texts(out))
    }
}

impl TypeName for Text {
    fn type_name() -> &'static str {
        "String"
    }

    fn value_type() -> ValueType {
        ValueType::String
    }
}

impl TypeName for Texts {
    fn type_name() -> &'static str {
        "Vec<String>"
    }

    fn value_type() -> ValueType {
        ValueType::Object
    }
}
