//! Links this package's binaries and tests with an rpath to libtorch's libraries (torch-sys
//! reports their directory), so they run without LD_LIBRARY_PATH.
//!
//! With the `cuda` feature they are linked with libtorch.so itself as well, kept although
//! none of its symbols is used, so that libtorch's CUDA library is loaded at start-up and
//! `Device::cuda_if_available()` can find a GPU (without it the linker drops the
//! dependency, and libtorch runs on the CPU only). It is a feature because the CUDA
//! libraries are large: every process of a CPU-only build would load them for nothing.

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
        if std::env::var_os("CARGO_FEATURE_CUDA").is_some() {
            println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
            println!("cargo:rustc-link-arg=-ltorch");
        }
    }
}
