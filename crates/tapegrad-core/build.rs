//! Links the system CBLAS when the `blas` feature is on (nothing otherwise).
//!
//! `TAPEGRAD_BLAS_LIB` names the library (default `openblas`, e.g. Debian's
//! `libopenblas-dev`; `mkl_rt` for MKL), `TAPEGRAD_BLAS_DIR` adds a directory to search.

fn main() {
    println!("cargo:rerun-if-env-changed=TAPEGRAD_BLAS_LIB");
    println!("cargo:rerun-if-env-changed=TAPEGRAD_BLAS_DIR");
    if std::env::var_os("CARGO_FEATURE_BLAS").is_none() {
        return;
    }
    if let Ok(dir) = std::env::var("TAPEGRAD_BLAS_DIR") {
        println!("cargo:rustc-link-search=native={dir}");
    }
    let lib = std::env::var("TAPEGRAD_BLAS_LIB").unwrap_or_else(|_| "openblas".to_string());
    println!("cargo:rustc-link-lib=dylib={lib}");
}
