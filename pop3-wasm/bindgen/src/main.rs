//! `pop3-wasm-bindgen MODULE.wasm OUT_DIR`: writes the ES module glue
//! (`pop3_wasm.js`) and the processed module (`pop3_wasm_bg.wasm`) for
//! `pop3-js`, as `wasm-bindgen --target web --no-typescript` would.
//!
//! The `web` target uses no Node.js API, so the same files serve Node.js,
//! Bun, Deno and Workers; the package's own `.d.ts` files describe the API.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(module), Some(out_dir), None) = (args.next(), args.next(), args.next()) else {
        eprintln!("usage: pop3-wasm-bindgen MODULE.wasm OUT_DIR");
        return ExitCode::from(64);
    };
    match generate(PathBuf::from(module), PathBuf::from(out_dir)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("pop3-wasm-bindgen: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Runs wasm-bindgen; its errors carry their causes, said as one line.
fn generate(module: PathBuf, out_dir: PathBuf) -> Result<(), String> {
    let mut bindgen = wasm_bindgen_cli_support::Bindgen::new();
    bindgen
        .input_path(module)
        .out_name("pop3_wasm")
        .web(true)
        .map_err(|error| format!("{error:#}"))?
        .typescript(false)
        // As the command-line tool does: `init()` with no argument finds the
        // module next to the glue (`new URL(.., import.meta.url)`).
        .omit_default_module_path(false);
    bindgen
        .generate(out_dir)
        .map_err(|error| format!("{error:#}"))
}
