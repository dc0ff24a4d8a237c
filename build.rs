fn main() {
    // Without this, cargo reruns the build script (and so recompiles the
    // crate) whenever any file of the package changes, a README edit too.
    println!("cargo:rerun-if-changed=build.rs");
    napi_build::setup();
}
