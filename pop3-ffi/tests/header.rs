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
    let mut raw = Vec::new();
    bindings.write(&mut raw);
    let generated = c89(&String::from_utf8(raw).expect("cbindgen writes UTF-8")).into_bytes();

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

/// What cbindgen writes that C89 does not take, made C89: it ends every
/// enumerator with a comma, which C89 forbids after the last (`-pedantic`:
/// "comma at end of enumerator list"; an enum body is the one place where
/// `,` ends the line before a closing `}`), and its C++ guards carry `//`
/// comments, whatever `documentation_style` says.
fn c89(header: &str) -> String {
    header
        .replace(",\n} ", "\n} ")
        .replace("// __cplusplus", "/* __cplusplus */")
        .replace("// extern \"C\"", "/* extern \"C\" */")
}

/// Embedders that still build as C89 can include the header: compiled with
/// `-std=c89 -pedantic -Werror` (and as C99 and C++ for good measure).
#[test]
fn header_compiles_as_c89_pedantic() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().expect("temporary directory");
    let source = dir.path().join("c89.c");
    std::fs::write(
        &source,
        "#include \"pop3.h\"\n\
         int main(void) {\n\
           pop3_event ev;\n\
           ev.kind = POP3_EVENT_CLOSED;\n\
           return pop3_result_message(POP3_OK) == 0 || ev.kind != POP3_EVENT_CLOSED;\n\
         }\n",
    )
    .expect("write the test source");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    for std in ["-std=c89", "-std=c99", "-std=c11"] {
        let output = std::process::Command::new(&cc)
            .args([
                std,
                "-pedantic",
                "-Wall",
                "-Wextra",
                "-Werror",
                "-fsyntax-only",
            ])
            .arg("-I")
            .arg(crate_dir.join("include"))
            .arg(&source)
            .output()
            .expect("run the C compiler");
        assert!(
            output.status.success(),
            "{cc} {std}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
