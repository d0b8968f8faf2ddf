//! The committed C header must be exactly what cbindgen generates from the
//! sources, so that it can never drift from the ABI. Set `POP3_FFI_BLESS=1`
//! to rewrite it after changing the ABI.

use std::path::Path;

#[test]
fn committed_header_matches_the_sources() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("cbindgen.toml is readable");
    let bindings = cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header");
    let mut generated = Vec::new();
    bindings.write(&mut generated);

    let path = crate_dir.join("include/pop3.h");
    if std::env::var_os("POP3_FFI_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&path, &generated).expect("write include/pop3.h");
        return;
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "include/pop3.h differs from what cbindgen generates; \
         run `POP3_FFI_BLESS=1 cargo test -p pop3-ffi --test header` and commit it"
    );
}
