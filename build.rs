//! Generates the C header from the Rust source with cbindgen and checks it
//! against the committed `include/ptrs.h`.
//!
//! The header is written to `$OUT_DIR/ptrs.h`. If the committed copy differs
//! the build fails and says to run `make header`, which sets
//! `PTRS_UPDATE_HEADER=1` so that this script copies the new header into
//! `include/` instead.

use std::env;
use std::fs;
use std::path::PathBuf;

fn main() {
    let crate_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());
    if env::var_os("CARGO_FEATURE_CXX").is_some() {
        build_cxx_operators();
    }
    println!("cargo:rerun-if-changed=src/abi/api.rs");
    println!("cargo:rerun-if-changed=src/abi/pool.rs");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-changed=include/ptrs.h");
    println!("cargo:rerun-if-env-changed=PTRS_UPDATE_HEADER");
    // The shared library's soname: the major version.
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libptrs.so.0");
    // Never unloaded by dlclose: blocks its malloc handed out may outlive
    // a handle, and its exit handler (registered with no DSO handle, see
    // `init.rs`) must stay mapped until exit.
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,nodelete");

    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("cbindgen.toml is readable");
    let generated = out_dir.join("ptrs.h");
    // Only the ptrs_* API modules (api.rs, pool.rs) are parsed: the engine's constants and the
    // standard C names (declared by <stdlib.h> and <malloc.h>) stay out.
    cbindgen::Builder::new()
        .with_src(crate_dir.join("src").join("abi").join("api.rs"))
        .with_src(crate_dir.join("src").join("abi").join("pool.rs"))
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header")
        .write_to_file(&generated);

    let committed = crate_dir.join("include").join("ptrs.h");
    let new_text = fs::read(&generated).unwrap();
    let old_text = fs::read(&committed).unwrap_or_default();
    if new_text == old_text {
        return;
    }
    if env::var_os("PTRS_UPDATE_HEADER").is_some_and(|v| v == "1") {
        fs::write(&committed, &new_text).expect("include/ptrs.h is writable");
        println!("cargo:warning=include/ptrs.h regenerated");
        return;
    }
    panic!(
        "include/ptrs.h is stale: it differs from the header cbindgen generates \
         from the source ({}). Run `make header` and commit the result.",
        generated.display()
    );
}

/// Compiles the C++ operators (`src/cxx/new_delete.cc`) into a static
/// library linked whole into every crate type (nothing in Rust refers to
/// the operators, so without `+whole-archive` the linker would drop them).
/// No C++ standard library is linked: the shim refers to the C++ runtime
/// only through weak symbols (see the file), so C programs gain no
/// libstdc++ dependency.
fn build_cxx_operators() {
    println!("cargo:rerun-if-changed=src/cxx/new_delete.cc");
    cc::Build::new()
        .cpp(true)
        .cpp_link_stdlib(None)
        .file("src/cxx/new_delete.cc")
        .std("c++17")
        .flag("-fexceptions")
        .flag("-fvisibility=hidden")
        // The operators are leaf wrappers on the hot path; unwinding uses
        // the .eh_frame tables, not frame pointers.
        .flag("-fomit-frame-pointer")
        .flag_if_supported("-fno-semantic-interposition")
        .warnings(true)
        .extra_warnings(true)
        .warnings_into_errors(true)
        .link_lib_modifier("+whole-archive")
        .compile("ptrs_cxx");
    // rustc's version script for the cdylib exports only Rust's own
    // symbols; this second one adds the operators (their mangled names all
    // start with _Znw, _Zna, _Zdl or _Zda).
    let script = PathBuf::from(env::var("OUT_DIR").unwrap()).join("cxx-operators.ver");
    fs::write(&script, "{\n  global:\n    _Znw*; _Zna*; _Zdl*; _Zda*;\n};\n").unwrap();
    println!("cargo:rustc-cdylib-link-arg=-Wl,--version-script={}", script.display());
}
