//! `pop3 serverinfo` and the trust options (`--tls-fingerprint`, `--trust`)
//! of the `pop3` binary, against real Dovecot servers and scripted ones, on
//! all three runtimes.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use pop3_transport::{CertificateInfo, Sha256Fingerprint};
use serde_json::Value;
use test_support::dovecot::{unique_user, Dovecot, DovecotOptions, Mailbox};
use test_support::pki::{certificate_named, rustls_server_config, HomemadeCerts};
use test_support::scripted::{ScriptedServer, Step};

mod common;
use common::{assert_code, run, stderr, stdout};

const RUNTIMES: [&str; 3] = ["blocking", "tokio", "smol"];
const PASSWORD_VAR: &str = "POP3_TEST_PASSWORD";

/// `pop3` with nothing inherited that could change its behaviour.
fn pop3() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pop3"));
    command
        .env_remove("XDG_STATE_HOME")
        .env("XDG_CONFIG_HOME", "/nonexistent/pop3-test-config")
        .env_remove(PASSWORD_VAR)
        .env_remove("SSL_CERT_FILE")
        .env_remove("SSL_CERT_DIR")
        .stdin(Stdio::null());
    command
}

#[track_caller]
fn json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(output)))
}

/// A directory removed at the end of the test binary's run.
fn temp_dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("tempdir"))
        .path()
}

/// Writes `text` into a fresh file named `name`.
fn file(name: &str, text: &str) -> PathBuf {
    let path = temp_dir().join(unique_user(name));
    fs::write(&path, text).expect("write");
    path
}

/// The shared Dovecot's CA, for `--ca-file`.
fn ca_file() -> &'static Path {
    static CA: OnceLock<PathBuf> = OnceLock::new();
    CA.get_or_init(|| file("ca.pem", Dovecot::shared().ca_pem()))
}

/// A Dovecot presenting a certificate made by `openssl req -x509` for
/// `localhost`, which nothing trusts.
fn homemade() -> &'static Dovecot {
    static CELL: OnceLock<Dovecot> = OnceLock::new();
    CELL.get_or_init(|| {
        Dovecot::start_with_cert(
            DovecotOptions::default(),
            &HomemadeCerts::shared().localhost,
        )
        .expect("start Dovecot with a self-signed certificate")
    })
}

/// The client lines of a `-v` trace.
fn commands_sent(output: &Output) -> Vec<String> {
    stderr(output)
        .lines()
        .filter_map(|l| l.strip_prefix("C: "))
        .map(str::to_owned)
        .collect()
}

fn names(capabilities: &Value) -> Vec<String> {
    capabilities
        .as_array()
        .expect("capability array")
        .iter()
        .map(|c| c["name"].as_str().expect("name").to_owned())
        .collect()
}

#[track_caller]
fn capability<'a>(capabilities: &'a Value, name: &str) -> &'a Value {
    capabilities
        .as_array()
        .expect("capability array")
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {capabilities}"))
}

// ----- against the real Dovecot -----

#[test]
fn serverinfo_against_dovecot_in_every_mode() {
    let dovecot = Dovecot::shared();
    let cert = &dovecot.server_cert().cert_der;
    let expected = CertificateInfo::from_der(cert).expect("server certificate parses");
    let fingerprint = Sha256Fingerprint::of(cert).to_string();
    for runtime in RUNTIMES {
        for (mode, url) in [
            (
                "implicit",
                format!("pop3s://127.0.0.1:{}", dovecot.tls_addr().port()),
            ),
            (
                "starttls",
                format!("pop3://127.0.0.1:{}", dovecot.plain_addr().port()),
            ),
            (
                "none",
                format!("pop3://127.0.0.1:{}", dovecot.plain_addr().port()),
            ),
        ] {
            let mut command = pop3();
            command
                .args([&url, "serverinfo", "--json", "-v", "--runtime", runtime])
                .arg("--ca-file")
                .arg(ca_file());
            if mode == "none" {
                command.args(["--tls", "none"]);
            }
            let out = run(&mut command);
            assert_code(&out, 0);
            let info = json(&out);
            let what = format!("{runtime} {mode}: {info}");
            assert_eq!(info["tls_mode"], mode, "{what}");
            assert_eq!(
                info["server"],
                url.rsplit("//").next().expect("authority"),
                "{what}"
            );
            let greeting = info["greeting"].as_str().expect("greeting");
            assert!(
                greeting.contains("Dovecot") && greeting.contains("ready"),
                "{what}"
            );
            // The greeting's text only, without the status indicator.
            assert!(!greeting.starts_with("+OK"), "{what}");
            // Dovecot's greeting carries an APOP timestamp.
            assert_eq!(info["apop"], true, "{what}");

            let caps = &info["capabilities"];
            let listed = names(caps);
            for name in ["TOP", "UIDL", "USER", "SASL", "PIPELINING", "RESP-CODES"] {
                assert!(listed.iter().any(|n| n == name), "{name}: {what}");
            }
            let sasl = capability(caps, "SASL");
            assert!(
                sasl["mechanisms"]
                    .as_array()
                    .expect("mechanisms")
                    .iter()
                    .any(|m| m == "PLAIN"),
                "{what}"
            );
            assert_eq!(sasl["known"], true);
            assert!(sasl["meaning"]
                .as_str()
                .is_some_and(|m| m.contains("PLAIN")));
            assert!(capability(caps, "UIDL")["meaning"]
                .as_str()
                .is_some_and(|m| m.contains("unique")));
            // STLS is listed only before TLS.
            assert_eq!(listed.iter().any(|n| n == "STLS"), mode == "none", "{what}");

            let sent = commands_sent(&out);
            match mode {
                "implicit" | "none" => assert_eq!(sent, ["CAPA", "QUIT"], "{what}"),
                _ => {
                    assert_eq!(sent, ["CAPA", "STLS", "CAPA", "QUIT"], "{what}");
                    assert!(names(&info["capabilities_before_tls"])
                        .iter()
                        .any(|n| n == "STLS"));
                }
            }

            if mode == "none" {
                assert_eq!(info["tls"], Value::Null, "{what}");
                continue;
            }
            let tls = &info["tls"];
            assert_eq!(tls["trusted"], true, "{what}");
            assert_eq!(tls["trusted_by"], "roots", "{what}");
            assert_eq!(tls["problem"], Value::Null, "{what}");
            assert!(
                tls["version"] == "TLSv1.3" || tls["version"] == "TLSv1.2",
                "{what}"
            );
            assert!(
                tls["cipher"].as_str().is_some_and(|c| c.starts_with("TLS")),
                "{what}"
            );
            let certificate = &tls["certificate"];
            assert_eq!(certificate["subject"], "CN=localhost", "{what}");
            assert_eq!(certificate["subject"], expected.subject);
            assert_eq!(certificate["issuer"], expected.issuer, "{what}");
            assert_eq!(
                certificate["names"],
                serde_json::json!(["localhost", "127.0.0.1", "::1"]),
                "{what}"
            );
            assert_eq!(certificate["sha256"], fingerprint, "{what}");
            assert_eq!(certificate["not_before"], expected.not_before_text());
            assert_eq!(certificate["not_after"], expected.not_after_text());
            assert_eq!(certificate["self_signed"], false);
            assert_eq!(certificate["valid_now"], true);
            assert_eq!(tls["trust_with"], serde_json::json!([]));
        }
    }

    // The text form says the same in words.
    let out = run(pop3()
        .arg(format!("pop3s://127.0.0.1:{}", dovecot.tls_addr().port()))
        .arg("serverinfo")
        .arg("--ca-file")
        .arg(ca_file()));
    assert_code(&out, 0);
    let text = stdout(&out);
    for wanted in [
        "Certificate: trusted".to_owned(),
        "Subject: CN=localhost".to_owned(),
        format!("SHA-256 fingerprint: {fingerprint}"),
        "Names: localhost, 127.0.0.1, ::1".to_owned(),
        "PIPELINING".to_owned(),
        "CAPA: the server lists its capabilities".to_owned(),
    ] {
        assert!(text.contains(&wanted), "{wanted}: {text}");
    }
}

#[test]
fn an_untrusted_certificate_is_shown_and_can_then_be_pinned() {
    let dovecot = homemade();
    let cert = &HomemadeCerts::shared().localhost;
    let fingerprint = Sha256Fingerprint::of(&cert.cert_der).to_string();
    let implicit = format!("pop3s://127.0.0.1:{}", dovecot.tls_addr().port());
    let stls = format!("pop3://127.0.0.1:{}", dovecot.plain_addr().port());
    for runtime in RUNTIMES {
        for url in [&implicit, &stls] {
            let what = format!("{runtime} {url}");
            // Text: NOT trusted, why, and the option that would trust it.
            let out = run(pop3().args([url.as_str(), "serverinfo", "-v", "--runtime", runtime]));
            assert_code(&out, 78);
            let text = stdout(&out);
            assert!(text.contains("NOT trusted"), "{what}: {text}");
            assert!(text.contains("Self-signed"), "{what}: {text}");
            assert!(text.contains("CA:TRUE"), "{what}: {text}");
            assert!(
                text.contains(&format!("--tls-fingerprint {fingerprint}")),
                "{what}: {text}"
            );
            assert!(text.contains("Subject: CN=localhost"), "{what}: {text}");
            assert!(stderr(&out).contains("NOT trusted"), "{what}");
            // Nothing went over the untrusted TLS connection.
            let sent = commands_sent(&out);
            if url == &implicit {
                assert!(sent.is_empty(), "{what}: {sent:?}");
                assert!(text.contains("Greeting: not read"), "{what}: {text}");
            } else {
                assert_eq!(sent, ["CAPA", "STLS"], "{what}");
                assert!(
                    text.contains("Greeting (before TLS, not authenticated): "),
                    "{what}: {text}"
                );
                assert!(text.contains("before TLS, not authenticated"), "{what}");
            }

            // JSON: the same, field by field.
            let out =
                run(pop3().args([url.as_str(), "serverinfo", "--json", "--runtime", runtime]));
            assert_code(&out, 78);
            let info = json(&out);
            let tls = &info["tls"];
            assert_eq!(tls["trusted"], false, "{what}: {info}");
            assert!(
                tls["problem"]
                    .as_str()
                    .is_some_and(|p| p.contains("CA certificate")),
                "{what}: {info}"
            );
            assert_eq!(tls["version"], Value::Null);
            assert_eq!(tls["certificate"]["sha256"], fingerprint.as_str());
            assert_eq!(tls["certificate"]["self_signed"], true);
            assert_eq!(tls["certificate"]["is_ca"], true);
            assert_eq!(
                tls["certificate"]["names"],
                serde_json::json!(["localhost"])
            );
            // Connected by IP: the host-name check of --ca-file would fail,
            // so only the pin is offered.
            assert_eq!(
                tls["trust_with"],
                serde_json::json!([format!("--tls-fingerprint {fingerprint}")]),
                "{what}"
            );
            if url == &implicit {
                assert_eq!(info["greeting"], Value::Null);
                assert_eq!(info["capabilities"], Value::Null);
            } else {
                assert!(info["greeting"]
                    .as_str()
                    .is_some_and(|g| g.contains("Dovecot")));
                assert!(names(&info["capabilities"]).iter().any(|n| n == "STLS"));
            }
        }
    }

    // Connected by the name the certificate carries, --ca-file is offered
    // too, with the certificate to put in the file; and it works.
    let by_name = format!("pop3s://localhost:{}", dovecot.tls_addr().port());
    let out = run(pop3().args([&by_name, "serverinfo", "--json"]));
    assert_code(&out, 78);
    let info = json(&out);
    assert_eq!(
        info["tls"]["trust_with"],
        serde_json::json!([format!("--tls-fingerprint {fingerprint}"), "--ca-file FILE"])
    );
    let pem = info["tls"]["certificate"]["pem"].as_str().expect("pem");
    let saved = file("served.pem", pem);
    let mailbox = dovecot.add_user(&unique_user("pinned"), "pin-pw");
    let stat = |url: &str, runtime: &str, extra: &[&str]| {
        run(pop3()
            .env(PASSWORD_VAR, mailbox.password())
            .arg(url)
            .args(["--user", mailbox.user(), "--password-env", PASSWORD_VAR])
            .args(["--runtime", runtime])
            .args(extra)
            .arg("stat"))
    };
    let saved_arg = saved.to_string_lossy().into_owned();
    let out = stat(
        &by_name,
        "blocking",
        &["--trust", "ca-file", "--ca-file", &saved_arg],
    );
    assert_code(&out, 0);

    // The fingerprint serverinfo printed (checked above to be the
    // certificate's) is accepted, in both modes, on every runtime; and
    // without it the error of any command names it too.
    let printed = info["tls"]["trust_with"][0]
        .as_str()
        .and_then(|o| o.strip_prefix("--tls-fingerprint "))
        .expect("a --tls-fingerprint option")
        .to_owned();
    assert_eq!(printed, fingerprint);
    let fingerprint = printed;
    for runtime in RUNTIMES {
        for url in [&implicit, &stls] {
            let out = stat(url, runtime, &[]);
            assert_code(&out, 78);
            let err = stderr(&out);
            assert!(
                err.contains(&format!("--tls-fingerprint {fingerprint}")),
                "{err}"
            );
            assert_eq!(err.lines().count(), 1, "{err}");
            let out = stat(url, runtime, &["--tls-fingerprint", &fingerprint]);
            assert_code(&out, 0);
            assert_eq!(stdout(&out), "0 0\n");
        }
    }
    // Without colons, lower case: the same pin.
    let bare = fingerprint.replace(':', "").to_lowercase();
    assert_code(&stat(&implicit, "tokio", &["--tls-fingerprint", &bare]), 0);
    // And from a config file.
    let config = file(
        "pinned.toml",
        &format!("[defaults]\ntls_fingerprint = \"{bare}\"\ntimeout = 30\n"),
    );
    let out = run(pop3()
        .env(PASSWORD_VAR, mailbox.password())
        .arg("--config")
        .arg(&config)
        .arg(&stls)
        .args(["--user", mailbox.user(), "--password-env", PASSWORD_VAR])
        .arg("stat"));
    assert_code(&out, 0);
    wrong_fingerprint_fails_before_any_command(dovecot, &mailbox);
}

/// A pin of another certificate: exit 78 before any command but CAPA and
/// STLS, and Dovecot never sees a login.
fn wrong_fingerprint_fails_before_any_command(dovecot: &Dovecot, logged_in: &Mailbox) {
    let other =
        Sha256Fingerprint::of(&HomemadeCerts::shared().other_localhost.cert_der).to_string();
    let presented = Sha256Fingerprint::of(&HomemadeCerts::shared().localhost.cert_der).to_string();
    let mailbox: Mailbox = dovecot.add_user(&unique_user("wrongpin"), "wrong-pin-pw");
    for runtime in RUNTIMES {
        for (url, allowed) in [
            (
                format!("pop3s://127.0.0.1:{}", dovecot.tls_addr().port()),
                &[][..],
            ),
            (
                format!("pop3://127.0.0.1:{}", dovecot.plain_addr().port()),
                &["CAPA", "STLS"][..],
            ),
        ] {
            let out = run(pop3()
                .env(PASSWORD_VAR, mailbox.password())
                .arg(&url)
                .args(["--user", mailbox.user(), "--password-env", PASSWORD_VAR])
                .args(["--runtime", runtime, "-v", "--tls-fingerprint", &other])
                .arg("stat"));
            assert_code(&out, 78);
            let err = stderr(&out);
            assert!(err.contains(&format!("fingerprint {presented}")), "{err}");
            assert!(err.contains(&format!("not the pinned {other}")), "{err}");
            assert_eq!(commands_sent(&out), allowed, "{runtime} {url}");
        }
    }
    let log = dovecot.log();
    // The control: the pinned sessions' logins are in the log.
    assert!(log.contains(logged_in.user()), "{log}");
    assert!(!log.contains(mailbox.user()), "a login got through:\n{log}");
}

#[test]
fn trust_chooses_the_roots_and_honours_ssl_cert_file() {
    let dovecot = Dovecot::shared();
    let mailbox = dovecot.add_user(&unique_user("trust"), "trust-pw");
    let other_ca = file("other-ca.pem", &dovecot.pki().other_ca_pem);
    let url = format!(
        "pop3s://{}@127.0.0.1:{}",
        mailbox.user(),
        dovecot.tls_addr().port()
    );
    let stat = |runtime: &str, args: &[&str], ssl_cert_file: Option<&Path>| {
        let mut command = pop3();
        command
            .env(PASSWORD_VAR, mailbox.password())
            .args([&url, "--password-env", PASSWORD_VAR, "--runtime", runtime])
            .args(args)
            .arg("stat");
        if let Some(path) = ssl_cert_file {
            command.env("SSL_CERT_FILE", path);
        }
        run(&mut command)
    };
    let ca = ca_file().to_string_lossy().into_owned();
    let other = other_ca.to_string_lossy().into_owned();
    for runtime in RUNTIMES {
        // The system store is SSL_CERT_FILE when set, by default and with
        // --trust system.
        assert_code(&stat(runtime, &[], Some(ca_file())), 0);
        assert_code(&stat(runtime, &["--trust", "system"], Some(ca_file())), 0);
        assert_code(&stat(runtime, &["--trust", "system"], Some(&other_ca)), 78);
        // Mozilla's roots do not include the test CA, whatever SSL_CERT_FILE says.
        let out = stat(runtime, &["--trust", "mozilla"], Some(ca_file()));
        assert_code(&out, 78);
        assert!(stderr(&out).contains("does not trust"), "{}", stderr(&out));
        // --trust ca-file: only --ca-file counts, SSL_CERT_FILE is ignored.
        assert_code(
            &stat(
                runtime,
                &["--trust", "ca-file", "--ca-file", &ca],
                Some(&other_ca),
            ),
            0,
        );
        assert_code(
            &stat(
                runtime,
                &["--trust", "ca-file", "--ca-file", &other],
                Some(ca_file()),
            ),
            78,
        );
    }
    // ca-file without a file trusts nothing: refused before connecting.
    let out = stat("blocking", &["--trust", "ca-file"], None);
    assert_code(&out, 64);

    // The same settings from a config file.
    let config = file(
        "config.toml",
        &format!(
            "[accounts.a]\nurl = \"{url}\"\npassword_env = \"{PASSWORD_VAR}\"\n\
             trust = \"ca-file\"\nca_file = \"{ca}\"\n"
        ),
    );
    let out = run(pop3()
        .env(PASSWORD_VAR, mailbox.password())
        .env("SSL_CERT_FILE", &other_ca)
        .arg("--config")
        .arg(&config)
        .args(["--account", "a", "stat"]));
    assert_code(&out, 0);
}

#[test]
fn bad_fingerprints_are_usage_errors() {
    for (args, wanted) in [
        (&["--tls-fingerprint", "AB:CD"][..], "64 hex digits"),
        (
            &["--tls-fingerprint", &"zz".repeat(32)][..],
            "hex digits only",
        ),
        (
            &["--tls", "none", "--tls-fingerprint", &"ab".repeat(32)][..],
            "needs TLS",
        ),
    ] {
        let out = run(pop3().args(["pop3://u@127.0.0.1:1", "stat"]).args(args));
        assert_code(&out, 64);
        assert!(stderr(&out).contains(wanted), "{}", stderr(&out));
    }
    let config = file(
        "bad-pin.toml",
        "[accounts.a]\nurl = \"pop3s://u@127.0.0.1:1\"\ntls_fingerprint = \"12:34\"\n",
    );
    let out = run(pop3()
        .arg("--config")
        .arg(&config)
        .args(["--account", "a", "stat"]));
    assert_code(&out, 64);
    let err = stderr(&out);
    assert!(err.contains(":3: tls_fingerprint:"), "{err}");
}

// ----- against scripted servers -----

/// A plaintext server that greets, answers one `CAPA` with `capa` (the
/// lines after `+OK`, or a whole `-ERR` line) and then `QUIT`.
fn capa_server(greeting: &str, capa: &str) -> ScriptedServer {
    let reply = if capa.starts_with("-ERR") {
        format!("{capa}\r\n")
    } else {
        let mut lines = String::from("+OK capabilities follow\r\n");
        for line in capa.lines() {
            lines.push_str(line);
            lines.push_str("\r\n");
        }
        lines.push_str(".\r\n");
        lines
    };
    ScriptedServer::start(vec![
        Step::send_line(greeting),
        Step::expect_line("CAPA"),
        Step::Send(reply.into_bytes()),
        Step::expect_line("QUIT"),
        Step::send_line("+OK bye"),
        Step::ExpectClose,
    ])
}

fn scripted_serverinfo(server: &ScriptedServer, runtime: &str, json_output: bool) -> Output {
    let mut command = pop3();
    command
        .arg(format!("pop3://127.0.0.1:{}", server.addr().port()))
        .args(["--tls", "none", "--runtime", runtime, "serverinfo"]);
    if json_output {
        command.arg("--json");
    }
    run(&mut command)
}

#[test]
fn unusual_capability_lists_are_explained() {
    for runtime in RUNTIMES {
        let server = capa_server(
            "+OK hello <1.2@scripted>",
            "LOGIN-DELAY 900 USER\nEXPIRE NEVER\nX-ODD-THING a b\n\
             SASL SCRAM-SHA-256-PLUS SCRAM-SHA-256 PLAIN\nIMPLEMENTATION Scripted 1.0\n\
             UTF8 USER\nLANG\nAUTH-RESP-CODE\nSTLS",
        );
        let out = scripted_serverinfo(&server, runtime, true);
        assert_code(&out, 0);
        server.join().expect("the script ran to its end");
        let info = json(&out);
        assert_eq!(info["greeting"], "hello <1.2@scripted>", "{info}");
        assert_eq!(info["apop"], true);
        assert_eq!(info["implementation"], "Scripted 1.0");
        assert_eq!(info["tls"], Value::Null);
        let caps = &info["capabilities"];
        assert_eq!(
            names(caps),
            [
                "LOGIN-DELAY",
                "EXPIRE",
                "X-ODD-THING",
                "SASL",
                "IMPLEMENTATION",
                "UTF8",
                "LANG",
                "AUTH-RESP-CODE",
                "STLS"
            ]
        );
        let delay = capability(caps, "LOGIN-DELAY");
        assert_eq!(delay["seconds"], 900);
        assert_eq!(delay["per_user"], true);
        assert_eq!(delay["line"], "LOGIN-DELAY 900 USER");
        assert!(delay["meaning"]
            .as_str()
            .is_some_and(|m| m.contains("15 minutes") && m.contains("each user")));
        let expire = capability(caps, "EXPIRE");
        assert_eq!(expire["never"], true);
        assert_eq!(expire["days"], Value::Null);
        assert!(expire["meaning"]
            .as_str()
            .is_some_and(|m| m.contains("never deletes")));
        let odd = capability(caps, "X-ODD-THING");
        assert_eq!(odd["known"], false);
        assert_eq!(odd["args"], serde_json::json!(["a", "b"]));
        assert_eq!(odd["line"], "X-ODD-THING a b");
        let sasl = capability(caps, "SASL");
        assert_eq!(
            sasl["mechanisms"],
            serde_json::json!(["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "PLAIN"])
        );
        assert!(sasl["meaning"]
            .as_str()
            .is_some_and(|m| m.contains("-PLUS")));
        assert_eq!(capability(caps, "UTF8")["user"], true);
        assert_eq!(capability(caps, "STLS")["known"], true);
    }

    // EXPIRE 0 and the text form.
    let server = capa_server(
        "+OK ready",
        "EXPIRE 0\nTOP\nUIDL\nRESP-CODES\nPIPELINING\nUSER",
    );
    let out = scripted_serverinfo(&server, "smol", false);
    assert_code(&out, 0);
    server.join().expect("the script ran to its end");
    let text = stdout(&out);
    assert!(text.contains("EXPIRE 0"), "{text}");
    assert!(text.contains("may not be left on the server"), "{text}");
    assert!(text.contains("TLS: none"), "{text}");
    let server = capa_server("+OK ready", "EXPIRE 0 USER\nEXPIRE 30");
    let out = scripted_serverinfo(&server, "tokio", true);
    assert_code(&out, 0);
    let info = json(&out);
    let list = info["capabilities"].as_array().expect("array");
    assert_eq!(list[0]["days"], 0);
    assert_eq!(list[0]["never"], false);
    assert_eq!(list[0]["per_user"], true);
    assert_eq!(list[1]["days"], 30);

    // --tls starttls and no STLS offered: the report, then 78, and QUIT.
    let server = capa_server("+OK ready", "USER\nTOP");
    let out = run(pop3()
        .arg(format!("pop3://127.0.0.1:{}", server.addr().port()))
        .args(["serverinfo", "--json"]));
    assert_code(&out, 78);
    server.join().expect("the script ran to its end");
    assert!(
        stderr(&out).contains("does not offer STLS"),
        "{}",
        stderr(&out)
    );
    let info = json(&out);
    assert_eq!(info["tls"], Value::Null);
    assert_eq!(names(&info["capabilities"]), ["USER", "TOP"]);

    // A server without CAPA: the greeting, and no capabilities.
    let server = capa_server("+OK old server", "-ERR unknown command");
    let out = scripted_serverinfo(&server, "blocking", true);
    assert_code(&out, 0);
    server.join().expect("the script ran to its end");
    let info = json(&out);
    assert_eq!(info["greeting"], "old server");
    assert_eq!(info["apop"], false);
    assert_eq!(info["capabilities"], Value::Null);
    assert_eq!(info["capabilities_note"], "the server does not answer CAPA");
}

#[test]
fn an_expired_certificate_is_explained_and_only_a_pin_offered() {
    let certs = HomemadeCerts::shared();
    let dovecot = Dovecot::start_with_cert(DovecotOptions::default(), &certs.expired)
        .expect("start Dovecot with an expired certificate");
    let fingerprint = Sha256Fingerprint::of(&certs.expired.cert_der).to_string();
    // Trusted by its exact bytes, yet expired: --ca-file keeps checking the
    // dates, so only the pin would trust it.
    let ca = file("expired.pem", &certs.expired.cert_pem);
    let out = run(pop3()
        .arg(format!("pop3s://localhost:{}", dovecot.tls_addr().port()))
        .args(["serverinfo", "--json", "--trust", "ca-file", "--ca-file"])
        .arg(&ca));
    assert_code(&out, 78);
    let info = json(&out);
    let tls = &info["tls"];
    assert_eq!(tls["trusted"], false);
    assert!(
        tls["problem"]
            .as_str()
            .is_some_and(|p| p.contains("expired on 2001-01-01 00:00:00 UTC")),
        "{info}"
    );
    assert_eq!(tls["certificate"]["valid_now"], false);
    assert_eq!(tls["certificate"]["not_after"], "2001-01-01 00:00:00 UTC");
    assert_eq!(
        tls["trust_with"],
        serde_json::json!([format!("--tls-fingerprint {fingerprint}")])
    );
    let out = run(pop3()
        .arg(format!("pop3s://localhost:{}", dovecot.tls_addr().port()))
        .args(["serverinfo", "--tls-fingerprint", &fingerprint]));
    assert_code(&out, 0);
    assert!(stdout(&out).contains("(NOT valid now)"), "{}", stdout(&out));
    assert!(stdout(&out).contains("Certificate: trusted (its fingerprint is pinned"));
}

/// A certificate whose names hold terminal escapes (cursor movement, screen
/// clearing, a colour, OSC) and bidirectional overrides: `serverinfo` shows
/// it, in text and JSON, with every such character as U+FFFD, so a
/// certificate cannot redraw "NOT trusted" as "trusted".
#[test]
fn certificate_names_cannot_drive_the_terminal() {
    let hostile = "\u{1b}[1A\u{1b}[2K\u{1b}[32mCertificate: trusted\u{1b}]0;t\u{7}\u{202e}detsurt\u{202c}\u{2066}x\u{2069}\u{200b}";
    let cert = certificate_named(hostile, "evil\u{1b}[2J.example");
    for runtime in RUNTIMES {
        for json_output in [false, true] {
            let server = ScriptedServer::start(vec![
                Step::StartTls(rustls_server_config(&cert)),
                Step::ExpectClose,
            ]);
            let mut command = pop3();
            command
                .arg(format!("pop3s://localhost:{}", server.addr().port()))
                .args(["--runtime", runtime, "serverinfo"]);
            if json_output {
                command.arg("--json");
            }
            let out = run(&mut command);
            assert_code(&out, 78);
            let shown = format!("{}{}", stdout(&out), stderr(&out));
            let what = format!("{runtime}, json {json_output}");
            for bad in [
                '\u{1b}', '\u{7}', '\u{202e}', '\u{202c}', '\u{2066}', '\u{200b}',
            ] {
                assert!(!shown.contains(bad), "{what}: {bad:?} in {shown:?}");
            }
            // JSON may escape the control characters it meets: none is left
            // to escape.
            assert!(!shown.contains("\\u001b"), "{what}: {shown}");
            assert!(shown.contains("\u{fffd}[1A\u{fffd}[2K"), "{what}: {shown}");
            assert!(shown.contains("evil\u{fffd}[2J.example"), "{what}: {shown}");
            drop(server);
        }
    }
}
