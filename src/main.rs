//! The `koppeltest` binary: everything lives in the library; see `cli.rs`.
#![forbid(unsafe_code)]

fn main() {
    std::process::exit(koppeltest::cli::main());
}
