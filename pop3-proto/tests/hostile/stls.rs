//! STLS refused or unavailable: the operation fails, nothing but `CAPA` and
//! `STLS` goes out, and what was queued behind it never leaves. (That a
//! driver's `connect_starttls` then closes instead of going on in the clear
//! is the scenario suite's `fault_stls_refused` and
//! `fault_stls_missing_from_capa`, on every transport.)

use pop3_proto::{ResponseCode, UsageError};

use crate::peer::{show, Outcome, Session, Step};
use crate::{assert_no_credentials, clear, expect_server, USER};

const CAPA_WITH_STLS: &[u8] = b"+OK\r\nTOP\r\nUSER\r\nSTLS\r\nSASL PLAIN LOGIN\r\nUIDL\r\n.\r\n";

fn stls_refused_with(line: &str, code: Option<ResponseCode>) {
    let mut s = Session::new(
        clear(),
        vec![
            Step::send_line("+OK ready"),
            Step::expect_line("CAPA"),
            Step::Send(CAPA_WITH_STLS.to_vec()),
            Step::expect_line("STLS"),
            Step::send_line(line),
        ],
    );
    s.greet().unwrap();
    let what = format!("STLS answered {line:?}");
    let stls = s.client.start_tls().unwrap();
    // Credentials queued behind STLS (allowed: TLS would be up by then).
    let user = s.client.user(USER).unwrap();
    expect_server(s.run(stls), code, &what);
    match s.run(user) {
        Outcome::Cancelled(UsageError::Cancelled) => {}
        other => panic!("{what}: USER behind a refused STLS: {other:?}"),
    }
    let (sent, result) = s.finish();
    assert_eq!(sent, b"CAPA\r\nSTLS\r\n", "{what}: {}", show(&sent));
    assert_no_credentials(&sent, &what);
    result.expect("script followed");
}

/// STLS refused with a bare `-ERR`: `-ERR` without a code, nothing after it.
#[test]
fn stls_refused_without_code() {
    stls_refused_with("-ERR not now", None);
}

/// STLS refused with `-ERR [SYS/PERM]`: `-ERR` carrying `SysPerm`.
#[test]
fn stls_refused_sys_perm() {
    stls_refused_with(
        "-ERR [SYS/PERM] TLS is broken here",
        Some(ResponseCode::SysPerm),
    );
}

/// CAPA itself refused while STLS is required: the operation is cancelled
/// with `StlsUnavailable`, and nothing but CAPA is sent.
#[test]
fn capa_refused_while_stls_required() {
    let mut s = Session::new(
        clear(),
        vec![
            Step::send_line("+OK ready"),
            Step::expect_line("CAPA"),
            Step::send_line("-ERR unknown command"),
        ],
    );
    s.greet().unwrap();
    let stls = s.client.start_tls().unwrap();
    match s.run(stls) {
        Outcome::Cancelled(UsageError::StlsUnavailable) => {}
        other => panic!("CAPA refused: expected Cancelled(StlsUnavailable), got {other:?}"),
    }
    let (sent, result) = s.finish();
    assert_eq!(sent, b"CAPA\r\n", "{}", show(&sent));
    result.expect("script followed");
}
