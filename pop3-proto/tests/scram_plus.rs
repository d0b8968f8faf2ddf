//! SCRAM with channel binding (RFC 5802 sections 6 and 7): known answers, and
//! whole exchanges against a SCRAM server written here from the RFC, which
//! checks the binding and the `y` downgrade flag the way a real server must.
#![allow(clippy::unwrap_used)]

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use pop3_proto::sasl::{
    tls_server_end_point_hash, ChannelBinding, ChannelBindingKind, HashKind, Mechanism, SaslError,
    Scram,
};
use pop3_proto::{Action, Client, Config, Event, Secret};
use sha1::Sha1;
use sha2::{Digest, Sha256};

const NONCE_256: &str = "rOprNGfwEbeRWgbNEkqO";
const SERVER_FIRST_256: &str =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
const NONCE_1: &str = "fyko+d2lbbFgONRv9qkxdawL";
const SERVER_FIRST_1: &str =
    "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096";

fn exporter_data() -> Vec<u8> {
    (0u8..32).collect()
}

fn sha256_plus(nonce: &str, binding: ChannelBinding) -> Scram {
    Scram::sha256_plus(
        "user".into(),
        Secret::new("pencil".into()),
        nonce.into(),
        binding,
    )
    .unwrap()
}

/// Runs client-first, server-first, client-final, server-final with fixed
/// server messages and returns the client's three messages.
fn run_fixed(mut m: Scram, server_first: &str, server_final: &str) -> [String; 2] {
    let first = m.initial_response().unwrap().unwrap();
    let last = m.respond(server_first.as_bytes()).unwrap();
    let empty = m.respond(server_final.as_bytes()).unwrap();
    assert!(empty.expose().is_empty());
    m.finish().unwrap();
    [
        String::from_utf8(first.expose().clone()).unwrap(),
        String::from_utf8(last.expose().clone()).unwrap(),
    ]
}

// The expected messages below were computed independently of this crate, with
// Python's hashlib.pbkdf2_hmac and hmac over the same inputs.

#[test]
fn known_answer_sha256_plus_tls_exporter() {
    let m = sha256_plus(NONCE_256, ChannelBinding::tls_exporter(exporter_data()));
    assert_eq!(m.name(), "SCRAM-SHA-256-PLUS");
    assert_eq!(m.channel_binding(), Some(ChannelBindingKind::TlsExporter));
    let [first, last] = run_fixed(
        m,
        SERVER_FIRST_256,
        "v=2GiAgapEppLVlUXbxUDksL3VgYHzuqiK5tR4mhJGgvs=",
    );
    assert_eq!(first, "p=tls-exporter,,n=user,r=rOprNGfwEbeRWgbNEkqO");
    assert_eq!(
        last,
        "c=cD10bHMtZXhwb3J0ZXIsLAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f,\
         r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
         p=QC6CS20quADQRb3mT99YUH+n3VJxUvzuK0K0E1Vrs2M="
    );
    // c= is the GS2 header followed by the binding data, base64-encoded.
    let mut cbind = b"p=tls-exporter,,".to_vec();
    cbind.extend_from_slice(&exporter_data());
    assert!(last.starts_with(&format!("c={},", BASE64.encode(&cbind))));
}

#[test]
fn known_answer_sha1_plus_tls_server_end_point() {
    let data = tls_server_end_point_hash(b"certificate", HashKind::Sha1);
    assert_eq!(data, Sha256::digest(b"certificate").to_vec());
    let m = Scram::sha1_plus(
        "user".into(),
        Secret::new("pencil".into()),
        NONCE_1.into(),
        ChannelBinding::tls_server_end_point(data),
    )
    .unwrap();
    assert_eq!(m.name(), "SCRAM-SHA-1-PLUS");
    let [first, last] = run_fixed(m, SERVER_FIRST_1, "v=7NzX8edR1CrwQa9fbCIwXrkJ3qk=");
    assert_eq!(
        first,
        "p=tls-server-end-point,,n=user,r=fyko+d2lbbFgONRv9qkxdawL"
    );
    assert_eq!(
        last,
        "c=cD10bHMtc2VydmVyLWVuZC1wb2ludCwsA9Zt0Ig1wco/EozOrNHzGslBYwlrIPRFroQoW8CDLXI=,\
         r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=itNKW6AWt32387Nbh9ejPjfgtl0="
    );
}

#[test]
fn known_answer_binding_supported_but_not_offered() {
    let m = Scram::sha256(
        "user".into(),
        Secret::new("pencil".into()),
        NONCE_256.into(),
    )
    .unwrap()
    .with_binding_supported(true);
    assert_eq!(m.name(), "SCRAM-SHA-256");
    assert_eq!(m.channel_binding(), None);
    let [first, last] = run_fixed(
        m,
        SERVER_FIRST_256,
        "v=dI4KpiQJwBr1+V+K6U1dA6l6I4I9DUNXWND4pcpRU3U=",
    );
    assert_eq!(first, "y,,n=user,r=rOprNGfwEbeRWgbNEkqO");
    // "y,," in base64.
    assert!(last.starts_with("c=eSws,"), "{last}");
    assert!(last.ends_with(",p=FoqiHTtQEDE8lz1CdaEe3tK4mS+iMDTl77SPyDS53DY="));
}

#[test]
fn binding_supported_can_be_switched_off_and_is_ignored_by_plus() {
    let mut m = Scram::sha1("user".into(), Secret::new("pencil".into()), NONCE_1.into())
        .unwrap()
        .with_binding_supported(true)
        .with_binding_supported(false);
    let first = m.initial_response().unwrap().unwrap();
    assert!(first.expose().starts_with(b"n,,"));

    let mut m = sha256_plus(NONCE_256, ChannelBinding::tls_exporter(exporter_data()))
        .with_binding_supported(false);
    let first = m.initial_response().unwrap().unwrap();
    assert!(first.expose().starts_with(b"p=tls-exporter,,"));
}

#[test]
fn plus_with_authzid_keeps_the_binding_after_the_header() {
    let mut m = sha256_plus(NONCE_256, ChannelBinding::tls_exporter(vec![9; 32]))
        .with_authzid("admin".into());
    let first = m.initial_response().unwrap().unwrap();
    assert_eq!(
        first.expose().as_slice(),
        b"p=tls-exporter,a=admin,n=user,r=rOprNGfwEbeRWgbNEkqO"
    );
    let last = m.respond(SERVER_FIRST_256.as_bytes()).unwrap();
    let mut cbind = b"p=tls-exporter,a=admin,".to_vec();
    cbind.extend_from_slice(&[9; 32]);
    assert!(last
        .expose()
        .starts_with(format!("c={},", BASE64.encode(&cbind)).as_bytes()));
}

#[test]
fn empty_binding_data_is_refused() {
    for binding in [
        ChannelBinding::tls_exporter(Vec::new()),
        ChannelBinding::tls_server_end_point(Vec::new()),
    ] {
        assert!(matches!(
            Scram::sha256_plus(
                "u".into(),
                Secret::new("p".into()),
                "n".into(),
                binding.clone()
            ),
            Err(SaslError::InvalidChannelBinding(_))
        ));
        assert!(matches!(
            Scram::sha1_plus("u".into(), Secret::new("p".into()), "n".into(), binding),
            Err(SaslError::InvalidChannelBinding(_))
        ));
    }
}

#[test]
fn debug_shows_neither_password_nor_binding_data() {
    let m = sha256_plus(NONCE_256, ChannelBinding::tls_exporter(vec![0xEE; 32]));
    let dbg = format!("{m:?}");
    assert!(dbg.contains("SCRAM-SHA-256-PLUS"), "{dbg}");
    assert!(dbg.contains("tls-exporter"), "{dbg}");
    assert!(!dbg.contains("pencil") && !dbg.contains("238"), "{dbg}");
}

// ---------------------------------------------------------------------------
// A SCRAM server, written from RFC 5802 for these tests.

#[derive(Clone, Copy, PartialEq)]
enum H {
    Sha1,
    Sha256,
}

impl H {
    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self {
            H::Sha1 => {
                let mut m = Hmac::<Sha1>::new_from_slice(key).unwrap();
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
            H::Sha256 => {
                let mut m = Hmac::<Sha256>::new_from_slice(key).unwrap();
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
        }
    }

    fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            H::Sha1 => Sha1::digest(data).to_vec(),
            H::Sha256 => Sha256::digest(data).to_vec(),
        }
    }

    fn salted(self, password: &str, salt: &[u8], i: u32) -> Vec<u8> {
        match self {
            H::Sha1 => {
                let mut out = [0u8; 20];
                pbkdf2::pbkdf2_hmac::<Sha1>(password.as_bytes(), salt, i, &mut out);
                out.to_vec()
            }
            H::Sha256 => {
                let mut out = [0u8; 32];
                pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt, i, &mut out);
                out.to_vec()
            }
        }
    }
}

/// The server side of one exchange. `channel` is the binding data of the TLS
/// connection as the server sees it, or `None` when the server does not
/// support channel binding (and so offers no `-PLUS` mechanism).
struct Server {
    hash: H,
    password: &'static str,
    channel: Option<ChannelBinding>,
    /// The mechanism the client chose is a `-PLUS` one.
    plus_chosen: bool,
    // Filled in by the first step.
    expected_cbind: Vec<u8>,
    nonce: String,
    auth_prefix: String,
}

impl Server {
    fn new(hash: H, channel: Option<ChannelBinding>, plus_chosen: bool) -> Self {
        Server {
            hash,
            password: "pencil",
            channel,
            plus_chosen,
            expected_cbind: Vec::new(),
            nonce: String::new(),
            auth_prefix: String::new(),
        }
    }

    const SALT: &'static [u8] = b"salt of the test";
    const ITERATIONS: u32 = 4096;

    /// client-first → server-first, or `Err(e=...)`.
    fn first(&mut self, client_first: &[u8]) -> Result<String, String> {
        let text = std::str::from_utf8(client_first).unwrap();
        let mut parts = text.splitn(3, ',');
        let flag = parts.next().unwrap();
        let authzid = parts.next().unwrap();
        let bare = parts.next().unwrap();
        let gs2_header = format!("{flag},{authzid},");
        match (flag, &self.channel) {
            ("n", _) if self.plus_chosen => return Err("e=other-error".into()),
            ("n", _) => self.expected_cbind = gs2_header.into_bytes(),
            // RFC 5802 section 6: a client that supports binding thinks we do
            // not; we do, so the -PLUS offer was stripped on the way.
            ("y", Some(_)) => return Err("e=server-does-support-channel-binding".into()),
            ("y", None) => self.expected_cbind = gs2_header.into_bytes(),
            (p, None) if p.starts_with("p=") => {
                return Err("e=channel-binding-not-supported".into())
            }
            (p, Some(channel)) if p.starts_with("p=") => {
                if &p[2..] != channel.kind.name() {
                    return Err("e=unsupported-channel-binding-type".into());
                }
                let mut cbind = gs2_header.into_bytes();
                cbind.extend_from_slice(&channel.data);
                self.expected_cbind = cbind;
            }
            _ => return Err("e=other-error".into()),
        }
        let client_nonce = bare.split(",r=").nth(1).unwrap();
        self.nonce = format!("{client_nonce}SeRvEr");
        let server_first = format!(
            "r={},s={},i={}",
            self.nonce,
            BASE64.encode(Self::SALT),
            Self::ITERATIONS
        );
        self.auth_prefix = format!("{bare},{server_first}");
        Ok(server_first)
    }

    /// client-final → server-final (`v=` or `e=`).
    fn last(&mut self, client_final: &[u8]) -> String {
        let text = std::str::from_utf8(client_final).unwrap();
        let (without_proof, proof) = text.rsplit_once(",p=").unwrap();
        let mut attrs = without_proof.split(',');
        let c = attrs.next().unwrap().strip_prefix("c=").unwrap();
        let r = attrs.next().unwrap().strip_prefix("r=").unwrap();
        if BASE64.decode(c).ok().as_deref() != Some(&self.expected_cbind[..]) {
            return "e=channel-bindings-dont-match".into();
        }
        if r != self.nonce {
            return "e=other-error".into();
        }
        let auth_message = format!("{},{without_proof}", self.auth_prefix);
        let h = self.hash;
        let salted = h.salted(self.password, Self::SALT, Self::ITERATIONS);
        let stored_key = h.hash(&h.hmac(&salted, b"Client Key"));
        let signature = h.hmac(&stored_key, auth_message.as_bytes());
        let proof = BASE64.decode(proof).unwrap();
        let client_key: Vec<u8> = proof.iter().zip(&signature).map(|(a, b)| a ^ b).collect();
        if h.hash(&client_key) != stored_key {
            return "e=invalid-proof".into();
        }
        let server_key = h.hmac(&salted, b"Server Key");
        format!(
            "v={}",
            BASE64.encode(h.hmac(&server_key, auth_message.as_bytes()))
        )
    }
}

/// How an exchange between a client mechanism and the test server ended.
#[derive(Debug, PartialEq)]
enum Outcome {
    /// The server accepted the proof and the client verified the server.
    Authenticated,
    /// The server refused with this `e=` value; the client reports it.
    Refused(String),
}

fn exchange(mut client: Scram, server: &mut Server) -> Outcome {
    let first = client.initial_response().unwrap().unwrap();
    let server_first = match server.first(first.expose()) {
        Ok(m) => m,
        Err(e) => {
            // The client sees the error in place of the server-first message.
            let reported = client.respond(e.as_bytes()).unwrap_err();
            assert_eq!(reported, SaslError::ServerError(e[2..].into()));
            assert_eq!(client.finish(), Err(SaslError::Incomplete));
            return Outcome::Refused(e);
        }
    };
    let last = client.respond(server_first.as_bytes()).unwrap();
    let server_final = server.last(last.expose());
    match client.respond(server_final.as_bytes()) {
        Ok(empty) => {
            assert!(empty.expose().is_empty());
            client.finish().unwrap();
            Outcome::Authenticated
        }
        Err(SaslError::ServerError(e)) => {
            // Nothing was verified, so +OK now must not be accepted either.
            assert_eq!(client.finish(), Err(SaslError::Incomplete));
            Outcome::Refused(format!("e={e}"))
        }
        Err(other) => panic!("unexpected client error {other:?}"),
    }
}

fn plus(hash: H, binding: ChannelBinding) -> Scram {
    let (user, password, nonce) = ("user".into(), Secret::new("pencil".into()), "cLiEnT".into());
    match hash {
        H::Sha1 => Scram::sha1_plus(user, password, nonce, binding).unwrap(),
        H::Sha256 => Scram::sha256_plus(user, password, nonce, binding).unwrap(),
    }
}

fn plain(hash: H, binding_supported: bool) -> Scram {
    let (user, password, nonce) = ("user".into(), Secret::new("pencil".into()), "cLiEnT".into());
    match hash {
        H::Sha1 => Scram::sha1(user, password, nonce),
        H::Sha256 => Scram::sha256(user, password, nonce),
    }
    .unwrap()
    .with_binding_supported(binding_supported)
}

#[test]
fn server_accepts_a_matching_binding() {
    let end_point = tls_server_end_point_hash(b"the server certificate", HashKind::Sha256);
    for hash in [H::Sha1, H::Sha256] {
        for channel in [
            ChannelBinding::tls_exporter(exporter_data()),
            ChannelBinding::tls_server_end_point(end_point.clone()),
        ] {
            let mut server = Server::new(hash, Some(channel.clone()), true);
            assert_eq!(
                exchange(plus(hash, channel), &mut server),
                Outcome::Authenticated
            );
        }
    }
}

#[test]
fn server_detects_a_different_channel() {
    // A machine in the middle terminates the client's TLS and opens its own to
    // the server: the two connections export different data.
    for hash in [H::Sha1, H::Sha256] {
        let client_channel = ChannelBinding::tls_exporter(vec![1; 32]);
        let server_channel = ChannelBinding::tls_exporter(vec![2; 32]);
        let mut server = Server::new(hash, Some(server_channel), true);
        assert_eq!(
            exchange(plus(hash, client_channel), &mut server),
            Outcome::Refused("e=channel-bindings-dont-match".into())
        );
    }
}

#[test]
fn server_refuses_an_unexpected_binding_type() {
    let mut server = Server::new(
        H::Sha256,
        Some(ChannelBinding::tls_server_end_point(vec![3; 32])),
        true,
    );
    assert_eq!(
        exchange(
            plus(H::Sha256, ChannelBinding::tls_exporter(vec![3; 32])),
            &mut server
        ),
        Outcome::Refused("e=unsupported-channel-binding-type".into())
    );
}

#[test]
fn stripped_plus_offer_is_detected_by_a_binding_server() {
    // The server supports binding and offered SCRAM-SHA-256-PLUS, but the list
    // reached the client without it. The client says "y": it could bind.
    let channel = ChannelBinding::tls_exporter(exporter_data());
    for hash in [H::Sha1, H::Sha256] {
        let mut server = Server::new(hash, Some(channel.clone()), false);
        assert_eq!(
            exchange(plain(hash, true), &mut server),
            Outcome::Refused("e=server-does-support-channel-binding".into())
        );
        // Without the flag the same downgrade would have gone unnoticed.
        let mut server = Server::new(hash, Some(channel.clone()), false);
        assert_eq!(
            exchange(plain(hash, false), &mut server),
            Outcome::Authenticated
        );
    }
}

#[test]
fn y_flag_is_accepted_by_a_server_without_binding() {
    for hash in [H::Sha1, H::Sha256] {
        let mut server = Server::new(hash, None, false);
        assert_eq!(
            exchange(plain(hash, true), &mut server),
            Outcome::Authenticated
        );
    }
}

#[test]
fn plus_is_refused_by_a_server_without_binding() {
    let mut server = Server::new(H::Sha256, None, true);
    assert_eq!(
        exchange(
            plus(H::Sha256, ChannelBinding::tls_exporter(exporter_data())),
            &mut server
        ),
        Outcome::Refused("e=channel-binding-not-supported".into())
    );
}

#[test]
fn wrong_password_with_binding_fails_the_proof() {
    let channel = ChannelBinding::tls_exporter(exporter_data());
    let mut server = Server::new(H::Sha256, Some(channel.clone()), true);
    server.password = "not pencil";
    assert_eq!(
        exchange(plus(H::Sha256, channel), &mut server),
        Outcome::Refused("e=invalid-proof".into())
    );
}

// ---------------------------------------------------------------------------
// The same exchange on the wire, through the client core's AUTH.

/// Drives `client` until it needs input; returns the lines it sent.
fn sent_lines(client: &mut Client) -> Vec<Vec<u8>> {
    let mut sent = Vec::new();
    loop {
        match client.poll().unwrap() {
            Action::Send(bytes) => sent.extend_from_slice(bytes),
            Action::Event(Event::Err { .. }) => sent.extend_from_slice(b"<-ERR>\r\n"),
            Action::Event(Event::Ok { .. }) => sent.extend_from_slice(b"<+OK>\r\n"),
            Action::Event(Event::Failed { error, .. }) => {
                sent.extend_from_slice(format!("<failed: {error:?}>\r\n").as_bytes())
            }
            Action::Event(_) => {}
            Action::NeedInput | Action::StartTls | Action::Closed => break,
        }
    }
    sent.split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l).to_vec())
        .collect()
}

#[test]
fn wire_exchange_sha256_plus() {
    let channel = ChannelBinding::tls_exporter(exporter_data());
    let mut server = Server::new(H::Sha256, Some(channel.clone()), true);
    let mut client = Client::new(Config::encrypted());
    client.receive(b"+OK ready\r\n");
    assert!(sent_lines(&mut client).is_empty());
    client.auth(Box::new(plus(H::Sha256, channel))).unwrap();

    let lines = sent_lines(&mut client);
    assert_eq!(lines.len(), 1);
    let initial = lines[0]
        .strip_prefix(b"AUTH SCRAM-SHA-256-PLUS ")
        .expect("AUTH with an initial response");
    let initial = BASE64.decode(initial).unwrap();
    assert!(initial.starts_with(b"p=tls-exporter,,n=user,r="));
    let server_first = server.first(&initial).unwrap();
    client.receive(format!("+ {}\r\n", BASE64.encode(&server_first)).as_bytes());

    let lines = sent_lines(&mut client);
    assert_eq!(lines.len(), 1);
    let client_final = BASE64.decode(&lines[0]).unwrap();
    let server_final = server.last(&client_final);
    assert!(server_final.starts_with("v="), "{server_final}");
    client.receive(format!("+ {}\r\n", BASE64.encode(&server_final)).as_bytes());

    // The client verified the server and answers the last challenge empty.
    assert_eq!(sent_lines(&mut client), vec![Vec::<u8>::new()]);
    client.receive(b"+OK logged in\r\n");
    assert_eq!(sent_lines(&mut client), vec![b"<+OK>".to_vec()]);
}

#[test]
fn wire_exchange_downgrade_is_refused() {
    let channel = ChannelBinding::tls_exporter(exporter_data());
    let mut server = Server::new(H::Sha256, Some(channel), false);
    let mut client = Client::new(Config::encrypted());
    client.receive(b"+OK ready\r\n");
    sent_lines(&mut client);
    client.auth(Box::new(plain(H::Sha256, true))).unwrap();
    let lines = sent_lines(&mut client);
    let initial = lines[0].strip_prefix(b"AUTH SCRAM-SHA-256 ").unwrap();
    let error = server.first(&BASE64.decode(initial).unwrap()).unwrap_err();
    assert_eq!(error, "e=server-does-support-channel-binding");
    // A server reports the SCRAM error as a challenge, then ends with -ERR.
    client.receive(format!("+ {}\r\n", BASE64.encode(&error)).as_bytes());
    assert_eq!(sent_lines(&mut client), vec![b"*".to_vec()]);
    client.receive(b"-ERR [AUTH] channel binding downgrade\r\n");
    // The login fails with the server's SCRAM error, typed.
    let events = sent_lines(&mut client);
    assert_eq!(events.len(), 1);
    let event = String::from_utf8(events[0].clone()).unwrap();
    assert!(
        event.contains("ServerError(\"server-does-support-channel-binding\")"),
        "{event}"
    );
}

// ---------------------------------------------------------------------------
// `auto` against a server that offers -PLUS and then cannot bind (Cyrus on
// TLS 1.3): one retry with the same SCRAM, unbound.

/// How the server fails the `-PLUS` exchange.
#[derive(Clone, Copy, Debug)]
enum PlusFailure {
    /// `-ERR [AUTH]` after the client's final message, as Cyrus does.
    ErrAfterFinal,
    /// A SCRAM `e=` error in place of the server-final message.
    ScramError,
    /// A server-final `v=` that is not the server's signature: the client
    /// refuses the server, and that is never retried.
    BadSignature,
}

/// Runs `login_with(Auto)` against a server offering SCRAM-SHA-256 and its
/// -PLUS variant; returns the AUTH lines the client sent and whether the
/// login succeeded.
fn auto_against_unbindable(failure: PlusFailure) -> (Vec<String>, bool, Vec<String>) {
    use pop3_proto::{AuthMethod, Credentials};
    let mut client = Client::new(Config::encrypted());
    client.receive(b"+OK ready\r\n");
    let credentials = Credentials::new("user", "pencil")
        .scram_nonce("cLiEnT")
        .channel_binding(ChannelBinding::tls_exporter(exporter_data()));
    let login = client.login_with(credentials, AuthMethod::Auto).unwrap();
    let mut auth_lines = Vec::new();
    // The mechanism in progress on the server side, and its step.
    let mut scram: Option<(bool, Server, u8)> = None;
    let mut pending = Vec::new();
    let mut outcome = None;
    for _ in 0..1000 {
        match client.poll().unwrap() {
            Action::Send(bytes) => pending.extend_from_slice(bytes),
            Action::Event(Event::Ok { handle, .. }) if handle == login => outcome = Some(true),
            Action::Event(Event::Err { handle, .. } | Event::Failed { handle, .. })
                if handle == login =>
            {
                outcome = Some(false)
            }
            Action::Event(_) => {}
            Action::NeedInput | Action::StartTls | Action::Closed => {
                if outcome.is_some() && pending.is_empty() {
                    break;
                }
                let text = String::from_utf8(std::mem::take(&mut pending)).unwrap();
                for line in text.split_terminator("\r\n") {
                    let reply = if line == "CAPA" {
                        "+OK\r\nSASL SCRAM-SHA-256 SCRAM-SHA-256-PLUS\r\n.\r\n".to_string()
                    } else if let Some(rest) = line.strip_prefix("AUTH ") {
                        auth_lines.push(rest.split(' ').next().unwrap().to_string());
                        let (name, initial) = rest.split_once(' ').unwrap();
                        let plus = name.ends_with("-PLUS");
                        // The server cannot bind: it checks the -PLUS
                        // exchange as if the data were its own.
                        let channel = plus.then(|| ChannelBinding::tls_exporter(exporter_data()));
                        let mut server = Server::new(H::Sha256, channel, plus);
                        let first = server.first(&BASE64.decode(initial).unwrap()).unwrap();
                        scram = Some((plus, server, 1));
                        format!("+ {}\r\n", BASE64.encode(first))
                    } else if line == "*" {
                        "-ERR [AUTH] cancelled\r\n".to_string()
                    } else {
                        let (plus, server, step) = scram.as_mut().unwrap();
                        *step += 1;
                        match (*step, *plus, failure) {
                            (2, true, PlusFailure::ErrAfterFinal) => {
                                "-ERR [AUTH] authenticating: bad protocol / cancel\r\n".to_string()
                            }
                            (2, true, PlusFailure::ScramError) => format!(
                                "+ {}\r\n",
                                BASE64.encode("e=unsupported-channel-binding-type")
                            ),
                            (2, true, PlusFailure::BadSignature) => format!(
                                "+ {}\r\n",
                                BASE64.encode(format!("v={}", BASE64.encode([0u8; 32])))
                            ),
                            (2, _, _) => {
                                let last = server.last(&BASE64.decode(line).unwrap());
                                format!("+ {}\r\n", BASE64.encode(last))
                            }
                            _ => "+OK welcome\r\n".to_string(),
                        }
                    };
                    client.receive(reply.as_bytes());
                }
                if outcome.is_some() && text.is_empty() {
                    break;
                }
            }
        }
    }
    let attempts = client.login_attempts().to_vec();
    (auth_lines, outcome.unwrap(), attempts)
}

#[test]
fn auto_logs_in_unbound_after_the_server_fails_plus() {
    for failure in [PlusFailure::ErrAfterFinal, PlusFailure::ScramError] {
        let (lines, ok, attempts) = auto_against_unbindable(failure);
        assert_eq!(
            lines,
            ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"],
            "{failure:?}"
        );
        assert!(ok, "{failure:?}: the unbound retry logs in");
        assert_eq!(attempts, ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"]);
    }
}

#[test]
fn a_server_that_fails_its_own_signature_gets_no_second_try() {
    let (lines, ok, _) = auto_against_unbindable(PlusFailure::BadSignature);
    assert_eq!(lines, ["SCRAM-SHA-256-PLUS"]);
    assert!(!ok);
}
