//! Arbitrary server challenges fed straight to each SASL mechanism through
//! `Mechanism::initial_response` / `respond` / `finish`.
//!
//! SCRAM runs with the RFC 5802 / RFC 7677 test credentials (user `user`,
//! password `pencil`, the RFCs' client nonces) and at most 4096 iterations.
//!
//! Asserted: no panic; constructors refuse exactly the credentials the
//! mechanism cannot carry; initial responses and answers have the exact form
//! each mechanism defines (PLAIN, LOGIN, CRAM-MD5, XOAUTH2, OAUTHBEARER) and
//! each answers no more challenges than it has steps; SCRAM accepts a
//! server-first only if its nonce extends ours and its iteration count is 1 to
//! 4096, answers the RFC server-first with exactly the RFC client-final, never
//! recovers after an error, and `finish()` is Ok only right after an accepted
//! `v=` server-final (for the RFC exchange: only the RFC's own verifier).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pop3_fuzz::{
    base64_encode, SaslCase, SaslInput, SCRAM_MAX_ITERATIONS, SCRAM_PASSWORD, SCRAM_SHA1_NONCE,
    SCRAM_SHA256_NONCE,
};
use pop3_proto::sasl::{CramMd5, Login, Mechanism, OAuthBearer, Plain, SaslError, Scram, XOauth2};
use pop3_proto::Secret;

const SHA1_SERVER_FIRST: &[u8] =
    b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096";
const SHA1_CLIENT_FINAL: &[u8] =
    b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=";
const SHA1_VERIFIER: &[u8] = b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ=";
const SHA256_SERVER_FIRST: &[u8] =
    b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
const SHA256_CLIENT_FINAL: &[u8] = b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
const SHA256_VERIFIER: &[u8] = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

fn escape(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

fn s(x: &pop3_fuzz::Str) -> String {
    x.0.clone()
}

/// The first attribute of a SCRAM message, and the value of `key=` if present.
fn attribute<'a>(message: &'a [u8], key: &str) -> Option<&'a [u8]> {
    message
        .split(|&b| b == b',')
        .find_map(|a| a.strip_prefix(key.as_bytes()))
}

fn scram(case: &SaslCase, input: &SaslInput) {
    let (sha1, authzid) = match case {
        SaslCase::ScramSha1 { authzid } => (true, authzid),
        SaslCase::ScramSha256 { authzid } => (false, authzid),
        _ => unreachable!(),
    };
    let nonce = if sha1 {
        SCRAM_SHA1_NONCE
    } else {
        SCRAM_SHA256_NONCE
    };
    let built = if sha1 {
        Scram::sha1(
            "user".into(),
            Secret::new(SCRAM_PASSWORD.into()),
            nonce.into(),
        )
    } else {
        Scram::sha256(
            "user".into(),
            Secret::new(SCRAM_PASSWORD.into()),
            nonce.into(),
        )
    };
    // Any count from 1 is accepted here (RFC 7677's minimum of 4096 is the
    // default), so that the accepting path is explored cheaply.
    let mut m = built
        .unwrap()
        .with_max_iterations(SCRAM_MAX_ITERATIONS)
        .with_min_iterations(1);
    if let Some(a) = authzid {
        m = m.with_authzid(s(a));
    }
    assert_eq!(m.name(), if sha1 { "SCRAM-SHA-1" } else { "SCRAM-SHA-256" });
    assert!(!m.exposes_credentials());
    // Before anything, the exchange is not complete.
    assert_eq!(m.finish(), Err(SaslError::Incomplete));

    let expected_first = |gs2: &str| format!("{gs2}n=user,r={nonce}").into_bytes();
    let mut first_sent = false;
    let mut gs2 = String::new();
    let mut failed = false;
    if input.initial {
        match m.initial_response() {
            Ok(Some(first)) => {
                let first = first.expose().clone();
                gs2 = match authzid {
                    None => "n,,".to_string(),
                    Some(_) => {
                        let end = first
                            .windows(3)
                            .position(|w| w == b",n=")
                            .expect("no GS2 header end")
                            + 1;
                        String::from_utf8(first[..end].to_vec()).unwrap()
                    }
                };
                assert!(gs2.starts_with("n,"), "GS2 header {gs2:?}");
                assert_eq!(first, expected_first(&gs2));
                first_sent = true;
                // Only once.
                assert!(m.initial_response().is_err());
            }
            Ok(None) => panic!("SCRAM has an initial response"),
            Err(e) => {
                assert!(
                    authzid.is_some(),
                    "initial response failed without authzid: {e:?}"
                );
                assert!(matches!(e, SaslError::InvalidCredential(_)));
                failed = true;
            }
        }
    }
    let mut server_first: Option<Vec<u8>> = None;
    let mut verified = false;
    let mut last_ok_challenge: Option<Vec<u8>> = None;
    for challenge in &input.challenges {
        let challenge = &challenge.0;
        let result = m.respond(challenge);
        match result {
            Ok(answer) => {
                assert!(!failed, "SCRAM answered after an error");
                assert!(!verified, "SCRAM answered after verification");
                let answer = answer.expose().clone();
                if challenge.is_empty() && server_first.is_none() {
                    // Asked for client-first.
                    if authzid.is_none() {
                        assert_eq!(answer, expected_first("n,,"));
                        gs2 = "n,,".into();
                    } else {
                        let end = answer.windows(3).position(|w| w == b",n=").unwrap() + 1;
                        gs2 = String::from_utf8(answer[..end].to_vec()).unwrap();
                    }
                    first_sent = true;
                } else if server_first.is_none() {
                    assert!(first_sent, "client-final before client-first");
                    // A server-first was accepted: nonce, salt, iterations.
                    let text =
                        std::str::from_utf8(challenge).expect("accepted non-UTF-8 server-first");
                    assert!(
                        text.starts_with("r="),
                        "server-first accepted without r= first: {text:?}"
                    );
                    let r = attribute(challenge, "r=").unwrap();
                    assert!(
                        r.starts_with(nonce.as_bytes()) && r.len() > nonce.len(),
                        "nonce {r:?}"
                    );
                    let i = attribute(challenge, "i=").expect("no i=");
                    let i: u32 = std::str::from_utf8(i)
                        .unwrap()
                        .parse()
                        .expect("i= not a number");
                    assert!(
                        (1..=SCRAM_MAX_ITERATIONS).contains(&i),
                        "accepted {i} iterations"
                    );
                    // client-final: c=base64(gs2),r=nonce,p=proof
                    let c = format!("c={},r=", base64_encode(gs2.as_bytes()));
                    assert!(
                        answer.starts_with(c.as_bytes()),
                        "client-final {:?}",
                        String::from_utf8_lossy(&answer)
                    );
                    assert_eq!(attribute(&answer, "r=").unwrap(), r);
                    assert!(attribute(&answer, "p=").is_some());
                    let rfc = if sha1 {
                        (SHA1_SERVER_FIRST, SHA1_CLIENT_FINAL)
                    } else {
                        (SHA256_SERVER_FIRST, SHA256_CLIENT_FINAL)
                    };
                    if challenge.as_slice() == rfc.0 && authzid.is_none() {
                        assert_eq!(
                            answer.as_slice(),
                            rfc.1,
                            "wrong client-final for the RFC exchange"
                        );
                    }
                    server_first = Some(challenge.clone());
                } else {
                    // The server-final was accepted.
                    assert!(
                        challenge.starts_with(b"v="),
                        "accepted server-final {challenge:?}"
                    );
                    assert!(answer.is_empty(), "non-empty answer to server-final");
                    let rfc = if sha1 {
                        (SHA1_SERVER_FIRST, SHA1_VERIFIER)
                    } else {
                        (SHA256_SERVER_FIRST, SHA256_VERIFIER)
                    };
                    if server_first.as_deref() == Some(rfc.0) && authzid.is_none() {
                        let v = challenge.split(|&b| b == b',').next().unwrap();
                        assert_eq!(v, rfc.1, "accepted a forged verifier");
                    }
                    verified = true;
                }
                last_ok_challenge = Some(challenge.clone());
            }
            Err(_) => {
                failed = true;
                last_ok_challenge = None;
            }
        }
    }
    let finish = m.finish();
    if finish.is_ok() {
        assert!(
            verified && !failed,
            "finish() Ok without a verified server signature"
        );
        let last = last_ok_challenge.expect("finish() Ok but the last challenge failed");
        assert!(
            last.starts_with(b"v="),
            "finish() Ok, last challenge {last:?}"
        );
    } else {
        assert_eq!(finish, Err(SaslError::Incomplete));
        assert!(!verified || failed);
    }
}

fn other(case: &SaslCase, input: &SaslInput) {
    // Build, checking that constructors refuse exactly what they must.
    let mut m: Box<dyn Mechanism> = match case {
        SaslCase::CramMd5 { user, password } => {
            Box::new(CramMd5::new(s(user), Secret::new(s(password))))
        }
        SaslCase::Login { user, password } => {
            Box::new(Login::new(s(user), Secret::new(s(password))))
        }
        SaslCase::Plain {
            authzid,
            user,
            password,
        } => {
            let bad = authzid.as_ref().is_some_and(|a| a.0.contains('\0'))
                || user.0.contains('\0')
                || password.0.contains('\0');
            match Plain::new(authzid.as_ref().map(s), s(user), Secret::new(s(password))) {
                Ok(m) => {
                    assert!(!bad, "PLAIN accepted a NUL");
                    Box::new(m)
                }
                Err(e) => {
                    assert!(bad, "PLAIN refused {e:?}");
                    return;
                }
            }
        }
        SaslCase::XOauth2 { user, token } | SaslCase::OAuthBearer { user, token } => {
            let bad = [&user.0, &token.0]
                .iter()
                .any(|f| f.contains(['\x01', '\r', '\n']));
            let built: Result<Box<dyn Mechanism>, SaslError> = match case {
                SaslCase::XOauth2 { .. } => {
                    XOauth2::new(s(user), Secret::new(s(token))).map(|m| Box::new(m) as _)
                }
                _ => OAuthBearer::new(s(user), Secret::new(s(token))).map(|m| Box::new(m) as _),
            };
            match built {
                Ok(m) => {
                    assert!(!bad, "bearer mechanism accepted 0x01/CR/LF");
                    m
                }
                Err(e) => {
                    assert!(bad, "bearer mechanism refused {e:?}");
                    return;
                }
            }
        }
        SaslCase::ScramSha1 { .. } | SaslCase::ScramSha256 { .. } => unreachable!(),
    };

    // The one message each client-first mechanism sends.
    let message: Option<Vec<u8>> = match case {
        SaslCase::Plain {
            authzid,
            user,
            password,
        } => Some(
            [
                authzid.as_ref().map_or("", |a| &a.0),
                "\0",
                &user.0,
                "\0",
                &password.0,
            ]
            .concat()
            .into_bytes(),
        ),
        SaslCase::XOauth2 { user, token } => {
            Some(format!("user={}\x01auth=Bearer {}\x01\x01", user.0, token.0).into_bytes())
        }
        SaslCase::OAuthBearer { user, token } => Some(
            format!(
                "n,a={},\x01auth=Bearer {}\x01\x01",
                escape(&user.0),
                token.0
            )
            .into_bytes(),
        ),
        _ => None,
    };
    let (name, exposes) = match case {
        SaslCase::CramMd5 { .. } => ("CRAM-MD5", false),
        SaslCase::Login { .. } => ("LOGIN", true),
        SaslCase::Plain { .. } => ("PLAIN", true),
        SaslCase::XOauth2 { .. } => ("XOAUTH2", true),
        _ => ("OAUTHBEARER", true),
    };
    assert_eq!(m.name(), name);
    assert_eq!(m.exposes_credentials(), exposes);

    let mut sent_message = false;
    if input.initial {
        let ir = m.initial_response().expect("initial_response failed");
        // Bearer tokens always go in two steps, never on the AUTH line.
        let expected = match case {
            SaslCase::XOauth2 { .. } | SaslCase::OAuthBearer { .. } => None,
            _ => message.clone(),
        };
        assert_eq!(
            ir.as_ref().map(|s| s.expose().clone()),
            expected,
            "initial response"
        );
        // Bearer mechanisms remember nothing of it; PLAIN neither.
    }
    let mut answered = 0usize;
    let mut error_acked = false;
    for challenge in &input.challenges {
        let challenge = &challenge.0;
        let r = m.respond(challenge);
        match case {
            SaslCase::Login { user, password } => match answered {
                0 => assert_eq!(r.unwrap().expose(), user.0.as_bytes()),
                1 => assert_eq!(r.unwrap().expose(), password.0.as_bytes()),
                _ => assert_eq!(r.err(), Some(SaslError::UnexpectedChallenge)),
            },
            SaslCase::CramMd5 { user, .. } => {
                if answered > 0 {
                    assert_eq!(r.err(), Some(SaslError::UnexpectedChallenge));
                } else if challenge.is_empty() {
                    assert!(matches!(r, Err(SaslError::MalformedChallenge(_))));
                    continue;
                } else {
                    let answer = r.unwrap().expose().clone();
                    let (u, digest) = answer.split_at(answer.len() - 33);
                    assert_eq!(u, user.0.as_bytes());
                    assert_eq!(digest[0], b' ');
                    assert!(
                        digest[1..].iter().all(|b| b"0123456789abcdef".contains(b)),
                        "digest {digest:?}"
                    );
                }
            }
            SaslCase::Plain { .. } => {
                if answered == 0 && challenge.is_empty() {
                    assert_eq!(Some(r.unwrap().expose().clone()), message);
                } else {
                    assert_eq!(r.err(), Some(SaslError::UnexpectedChallenge));
                    continue;
                }
            }
            _ => {
                // Bearer: an empty challenge asks for the message (once); a
                // non-empty one is an error report, acknowledged once.
                if error_acked {
                    assert_eq!(r.err(), Some(SaslError::UnexpectedChallenge));
                    continue;
                }
                if challenge.is_empty() {
                    if sent_message {
                        assert_eq!(r.err(), Some(SaslError::UnexpectedChallenge));
                        continue;
                    }
                    assert_eq!(Some(r.unwrap().expose().clone()), message);
                    sent_message = true;
                } else {
                    let ack: &[u8] = if matches!(case, SaslCase::XOauth2 { .. }) {
                        b""
                    } else {
                        b"\x01"
                    };
                    assert_eq!(r.unwrap().expose(), ack);
                    error_acked = true;
                }
            }
        }
        answered += 1;
    }
    // Only SCRAM verifies the server.
    assert_eq!(m.finish(), Ok(()));
}

fuzz_target!(|input: SaslInput| {
    match &input.case {
        c @ (SaslCase::ScramSha1 { .. } | SaslCase::ScramSha256 { .. }) => scram(c, &input),
        c => other(c, &input),
    }
});
