//! `pop3 serverinfo`: what a server offers and how it proves who it is,
//! without logging in.
//!
//! Nothing but `CAPA`, `STLS` and `QUIT` is sent. When the server's
//! certificate is not trusted, the certificate recorded during the failed
//! handshake is shown, and nothing at all is sent or read over that TLS
//! connection: the command does not connect again with the certificate
//! accepted, because a server not yet known to be the right one should not
//! be told anything, nor be believed about its capabilities. So with implicit
//! TLS an untrusted server's greeting and capabilities stay unknown (and the
//! protocol version and cipher suite too, as the handshake never completed);
//! with STLS, the plaintext greeting and capabilities read before `STLS` are
//! shown, marked as not authenticated.

use std::io::{self, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use pop3_blocking::rustls::{self, ClientConnection};
use pop3_proto::{Capabilities, Capability};
use pop3_transport::runtime::{Runtime as LibraryRuntime, StartTls, WriteTo};
use pop3_transport::{CertificateInfo, Error, MaybeTls, TlsStream};
use serde_json::{json, Map, Value};

use crate::advice::{tls_advice, unknown_issuer};
use crate::cli::{Runtime, TlsMode};
use crate::error::{net_failure, Exit, Failure};
use crate::target::Target;
use crate::transport::{open, options, ConnectConfig, Exec, Session, WithSession};

/// Everything learnt about the server.
struct Report {
    endpoint: String,
    mode: TlsMode,
    greeting: Option<String>,
    apop: Option<bool>,
    /// The capabilities of the session as it ended up (over TLS when
    /// trusted; before TLS when STLS found the server untrusted).
    capabilities: Option<Capabilities>,
    /// With STLS: the capabilities listed before TLS.
    before_tls: Option<Capabilities>,
    /// Why the capability list is missing, when it is.
    capabilities_note: Option<&'static str>,
    tls: Option<TlsReport>,
    /// A failure found after the report could be made (STLS not offered).
    failure: Option<Failure>,
}

/// What the TLS layer negotiated, and the certificates the server
/// presented.
#[derive(Debug, Clone, Default)]
struct TlsDetails {
    /// The protocol version, as `TLSv1.3`.
    version: Option<String>,
    /// The cipher suite's IANA name, as `TLS13_AES_256_GCM_SHA384`.
    cipher: Option<String>,
    /// The server's certificate chain (DER), its own certificate first.
    chain: Vec<Vec<u8>>,
}

/// Why the server's certificate was refused.
struct Refusal {
    /// What went wrong and what would fix it, in words.
    advice: String,
    /// Refused only because no trusted authority issued it (self-signed, or
    /// a private CA): `--ca-file` with it would do too. Not for a wrong
    /// host name or expired dates, which `--ca-file` keeps checking.
    unknown_issuer: bool,
}

/// The TLS part of the report.
struct TlsReport {
    /// `None` when trusted; the reason otherwise.
    problem: Option<Refusal>,
    details: TlsDetails,
    /// The name the certificate must be valid for (the host).
    host: String,
    /// Trusted by `--tls-fingerprint` rather than by roots.
    pinned: bool,
}

/// Runs `pop3 serverinfo` against `target`.
pub(crate) fn serverinfo(target: &Target, runtime: Runtime, json: bool) -> Result<(), Failure> {
    let config = &target.connect;
    let endpoint = config.endpoint();
    let options = options(config)?;
    let mut report = Report {
        endpoint: endpoint.clone(),
        mode: config.tls,
        greeting: None,
        apop: None,
        capabilities: None,
        before_tls: None,
        capabilities_note: None,
        tls: None,
        failure: None,
    };
    open(
        runtime,
        config,
        &options,
        Probe {
            config,
            report: &mut report,
        },
    )??;
    if report.capabilities.is_none() {
        report.capabilities_note = Some(match &report.tls {
            Some(TlsReport {
                problem: Some(_), ..
            }) if report.greeting.is_none() => {
                "not asked: nothing is sent over a TLS connection that is not trusted"
            }
            _ => "the server does not answer CAPA",
        });
    }
    let text = if json {
        let mut text = report.json().to_string();
        text.push('\n');
        text
    } else {
        report.text()
    };
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| Failure::io("stdout", &e))?;
    if let Some(failure) = report.failure {
        return Err(failure);
    }
    if let Some(TlsReport {
        problem: Some(_), ..
    }) = &report.tls
    {
        return Err(Failure::new(
            Exit::Tls,
            format!("{endpoint}: the server's certificate is NOT trusted (see above)"),
        ));
    }
    Ok(())
}

/// What `serverinfo` does on the connection, whatever the runtime.
struct Probe<'a> {
    config: &'a ConnectConfig,
    report: &'a mut Report,
}

impl WithSession for Probe<'_> {
    type Output = Result<(), Failure>;

    fn with<X, Y, R, E>(self, opened: Result<Session<X, Y, R, E>, Error>) -> Self::Output
    where
        MaybeTls<X, Y>: StartTls,
        Y: TlsStream<X>,
        R: LibraryRuntime + WriteTo<Vec<u8>>,
        E: Exec,
    {
        let Probe { config, report } = self;
        let context = |e: Error| {
            net_failure(&e, config.presented_certificate().as_ref()).context(config.endpoint())
        };
        let mut session = match opened {
            Ok(session) => session,
            Err(e) => match refusal(&e, config) {
                Some(problem) => {
                    report.tls = Some(untrusted(config, problem));
                    return Ok(());
                }
                None => return Err(context(e)),
            },
        };
        let greeting = session.conn().greeting();
        report.greeting = Some(greeting.text.to_string());
        report.apop = Some(greeting.apop_timestamp.is_some());
        // Whether the session goes on over TLS (or plaintext by choice), and
        // whether it can still say QUIT.
        let mut trusted_session = true;
        let mut can_quit = true;
        if config.tls == TlsMode::Starttls {
            report.before_tls = ask_capa(&mut session).map_err(context)?;
            match session.run(|c| c.start_tls(config.tls_name())) {
                Ok(()) => {}
                Err(e) => match refusal(&e, config) {
                    Some(problem) => {
                        report.tls = Some(untrusted(config, problem));
                        report.capabilities.clone_from(&report.before_tls);
                        trusted_session = false;
                        // The failed handshake took the stream.
                        can_quit = false;
                    }
                    None if matches!(e, Error::StlsUnavailable) => {
                        report.capabilities.clone_from(&report.before_tls);
                        report.failure = Some(context(e));
                        trusted_session = false;
                    }
                    None => return Err(context(e)),
                },
            }
        }
        if trusted_session {
            if let Some(tls) = session.conn().get_ref().tls_connection() {
                report.tls = Some(TlsReport {
                    problem: None,
                    details: tls_details(tls),
                    host: config.tls_name().to_owned(),
                    pinned: config.fingerprint.is_some(),
                });
            }
            // After STLS the core has asked again over TLS by itself.
            report.capabilities = match session.conn().capabilities() {
                Some(caps) => Some(caps.clone()),
                None => ask_capa(&mut session).map_err(context)?,
            };
        }
        if can_quit {
            session.finish(|c| c.quit()).map_err(|e| {
                Failure::from(e).context(format_args!("{}: QUIT", config.endpoint()))
            })?;
        }
        Ok(())
    }
}

/// `CAPA`; `None` when the server refuses it (it need not support it).
fn ask_capa<X, Y, R: LibraryRuntime, E: Exec>(
    session: &mut Session<X, Y, R, E>,
) -> Result<Option<Capabilities>, Error>
where
    MaybeTls<X, Y>: StartTls,
{
    match session.run(|c| c.capa()) {
        Ok(caps) => Ok(Some(caps)),
        Err(Error::Server(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Why the server's certificate was refused, when the error is that (and
/// the certificate was recorded).
fn refusal(error: &Error, config: &ConnectConfig) -> Option<Refusal> {
    let Error::Tls(rustls::Error::InvalidCertificate(_)) = error else {
        return None;
    };
    let presented = config.presented_certificate()?;
    let diagnosis = error.tls_diagnosis(Some(&presented))?;
    Some(Refusal {
        advice: tls_advice(&diagnosis),
        unknown_issuer: unknown_issuer(&diagnosis),
    })
}

/// What a rustls session negotiated and was shown.
fn tls_details(connection: &ClientConnection) -> TlsDetails {
    let version = connection.protocol_version().map(|v| match v {
        rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3".to_owned(),
        rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2".to_owned(),
        other => format!("{other:?}"),
    });
    let cipher = connection.negotiated_cipher_suite().map(|suite| {
        let id = suite.suite();
        id.as_str().map_or_else(|| format!("{id:?}"), str::to_owned)
    });
    let chain = connection
        .peer_certificates()
        .map(|certs| certs.iter().map(|c| c.as_ref().to_vec()).collect())
        .unwrap_or_default();
    TlsDetails {
        version,
        cipher,
        chain,
    }
}

/// The TLS part for a handshake that refused the server's certificate: the
/// chain recorded before verification.
fn untrusted(config: &ConnectConfig, problem: Refusal) -> TlsReport {
    let chain = config
        .presented
        .get()
        .unwrap_or_default()
        .iter()
        .map(|c| c.as_ref().to_vec())
        .collect();
    TlsReport {
        problem: Some(problem),
        details: TlsDetails {
            version: None,
            cipher: None,
            chain,
        },
        host: config.tls_name().to_owned(),
        pinned: config.fingerprint.is_some(),
    }
}

impl TlsReport {
    fn certificate(&self) -> Option<CertificateInfo> {
        let der = self.details.chain.first()?;
        CertificateInfo::from_der(der).ok()
    }

    /// The options that would make this certificate trusted.
    fn trust_with(&self) -> Vec<String> {
        let (Some(problem), Some(cert)) = (&self.problem, self.certificate()) else {
            return Vec::new();
        };
        let mut options = Vec::new();
        options.push(format!("--tls-fingerprint {}", cert.sha256));
        // --ca-file keeps checking the host name, so it helps only when the
        // certificate carries the name connected to.
        if problem.unknown_issuer && cert.names().iter().any(|n| name_matches(n, &self.host)) {
            options.push("--ca-file FILE".to_owned());
        }
        options
    }
}

fn mode_name(mode: TlsMode) -> &'static str {
    match mode {
        TlsMode::Implicit => "implicit",
        TlsMode::Starttls => "starttls",
        TlsMode::None => "none",
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The certificate as PEM, to save for `--ca-file`.
fn pem(der: &[u8]) -> String {
    let encoded = BASE64.encode(der);
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in encoded.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}

/// What a capability means for a user, and its values for `--json`.
fn meaning(capability: &Capability) -> (String, Map<String, Value>) {
    let mut fields = Map::new();
    let text = match capability {
        Capability::Top => {
            "TOP: the headers and first lines of a message can be read without the rest".to_owned()
        }
        Capability::User => "USER: login with USER and PASS is offered".to_owned(),
        Capability::Sasl(mechanisms) => {
            fields.insert("mechanisms".to_owned(), json!(mechanisms));
            let plus = mechanisms.iter().any(|m| m.ends_with("-PLUS"));
            format!(
                "SASL: login with {}{}",
                if mechanisms.is_empty() {
                    "no mechanism listed".to_owned()
                } else {
                    mechanisms.join(", ")
                },
                if plus {
                    " (-PLUS: bound to this TLS connection, so a man in the middle cannot \
                     relay the login)"
                } else {
                    ""
                }
            )
        }
        Capability::RespCodes => {
            "RESP-CODES: error replies may carry a code in brackets ([IN-USE], \
             [LOGIN-DELAY], ...)"
                .to_owned()
        }
        Capability::AuthRespCode => {
            "AUTH-RESP-CODE: a refused login says [AUTH] when the credentials are wrong, \
             [SYS/...] when the server has trouble"
                .to_owned()
        }
        Capability::LoginDelay { seconds, per_user } => {
            fields.insert("seconds".to_owned(), json!(seconds));
            fields.insert("per_user".to_owned(), json!(per_user));
            format!(
                "LOGIN-DELAY: at least {} between two logins{}",
                duration(*seconds),
                if *per_user {
                    " (USER: it may differ for each user; the value after login is the one \
                     that applies)"
                } else {
                    ""
                }
            )
        }
        Capability::Pipelining => {
            "PIPELINING: several commands may be sent without waiting for each reply \
             (pop3 fetches faster)"
                .to_owned()
        }
        Capability::Expire { days, per_user } => {
            fields.insert("days".to_owned(), json!(days));
            fields.insert("never".to_owned(), json!(days.is_none()));
            fields.insert("per_user".to_owned(), json!(per_user));
            let rule = match days {
                None => "the server never deletes messages by itself".to_owned(),
                Some(0) => "messages may not be left on the server: the server deletes \
                            those retrieved when the session ends"
                    .to_owned(),
                Some(1) => {
                    "the server may delete a message 1 day after it was retrieved".to_owned()
                }
                Some(n) => {
                    format!("the server may delete a message {n} days after it was retrieved")
                }
            };
            format!(
                "EXPIRE: {rule}{}",
                if *per_user {
                    " (USER: it may differ for each user; the value after login is the one \
                     that applies)"
                } else {
                    ""
                }
            )
        }
        Capability::Uidl => {
            "UIDL: messages have unique ids, so pop3 fetch can tell new messages from old"
                .to_owned()
        }
        Capability::Implementation(text) => {
            fields.insert("text".to_owned(), json!(text.to_string()));
            format!("IMPLEMENTATION: the server software is {text}")
        }
        Capability::Stls => "STLS: the connection can be switched to TLS".to_owned(),
        Capability::Utf8 { user } => {
            fields.insert("user".to_owned(), json!(user));
            format!(
                "UTF8: the server speaks UTF-8 after the UTF8 command{}",
                if *user {
                    " (USER: user names and passwords may be UTF-8)"
                } else {
                    ""
                }
            )
        }
        Capability::Lang => "LANG: the language of the server's replies can be chosen".to_owned(),
        Capability::Other { name, args } if name == "CAPA" && args.is_empty() => {
            "CAPA: the server lists its capabilities (this list)".to_owned()
        }
        Capability::Other { name, args } => {
            fields.insert("args".to_owned(), json!(args));
            format!("{name}: not a capability pop3 knows")
        }
        other => format!("{other}: not a capability pop3 knows"),
    };
    (text, fields)
}

/// Whether pop3 knows what the capability means.
fn is_known(capability: &Capability) -> bool {
    match capability {
        Capability::Other { name, args } => name == "CAPA" && args.is_empty(),
        _ => true,
    }
}

/// Seconds in words: `900` is `15 minutes (900 s)`.
fn duration(seconds: u64) -> String {
    match seconds {
        1 => "1 second".to_owned(),
        s if s >= 120 && s % 3600 == 0 => format!("{} hours ({s} s)", s / 3600),
        s if s >= 120 && s % 60 == 0 => format!("{} minutes ({s} s)", s / 60),
        s => format!("{s} seconds"),
    }
}

/// The `CAPA` name of a capability (its first word).
fn capability_name(line: &str) -> &str {
    line.split(' ').next().unwrap_or(line)
}

fn capabilities_json(caps: Option<&Capabilities>) -> Value {
    let Some(caps) = caps else {
        return Value::Null;
    };
    let list: Vec<Value> = caps
        .list
        .iter()
        .map(|c| {
            let line = c.to_string();
            let (meaning, fields) = meaning(c);
            let mut object = Map::new();
            object.insert("name".to_owned(), json!(capability_name(&line)));
            object.insert("line".to_owned(), json!(line));
            object.insert("meaning".to_owned(), json!(meaning));
            object.insert("known".to_owned(), json!(is_known(c)));
            object.extend(fields);
            Value::Object(object)
        })
        .collect();
    Value::Array(list)
}

fn certificate_json(cert: &CertificateInfo, der: &[u8]) -> Value {
    json!({
        "subject": cert.subject,
        "issuer": cert.issuer,
        "names": cert.names(),
        "common_names": cert.common_names,
        "dns_names": cert.dns_names,
        "ip_addresses": cert.ip_addresses.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "not_before": cert.not_before_text(),
        "not_after": cert.not_after_text(),
        "valid_now": cert.is_valid_at(now()),
        "serial": cert.serial,
        "self_signed": cert.self_signed,
        "is_ca": cert.is_ca,
        "sha256": cert.sha256.to_string(),
        "pem": pem(der),
    })
}

impl Report {
    fn json(&self) -> Value {
        let implementation = self
            .capabilities
            .as_ref()
            .and_then(Capabilities::implementation)
            .map(ToString::to_string);
        let tls = self.tls.as_ref().map(|tls| {
            let chain: Vec<Value> = tls
                .details
                .chain
                .iter()
                .filter_map(|der| {
                    CertificateInfo::from_der(der)
                        .ok()
                        .map(|c| certificate_json(&c, der))
                })
                .collect();
            json!({
                "trusted": tls.problem.is_none(),
                "trusted_by": match (&tls.problem, tls.pinned) {
                    (Some(_), _) => Value::Null,
                    (None, true) => json!("fingerprint"),
                    (None, false) => json!("roots"),
                },
                "problem": tls.problem.as_ref().map(|p| p.advice.clone()),
                "version": tls.details.version,
                "cipher": tls.details.cipher,
                "certificate": chain.first().cloned().unwrap_or(Value::Null),
                "chain": chain,
                "trust_with": tls.trust_with(),
            })
        });
        json!({
            "server": self.endpoint,
            "tls_mode": mode_name(self.mode),
            "greeting": self.greeting,
            "apop": self.apop,
            "implementation": implementation,
            "capabilities": capabilities_json(self.capabilities.as_ref()),
            "capabilities_before_tls": capabilities_json(self.before_tls.as_ref()),
            "capabilities_note": self.capabilities_note,
            "tls": tls,
        })
    }

    fn text(&self) -> String {
        let mut out = String::new();
        let mut line = |text: String| {
            out.push_str(&text);
            out.push('\n');
        };
        line(format!(
            "Server: {} ({})",
            self.endpoint,
            match self.mode {
                TlsMode::Implicit => "implicit TLS",
                TlsMode::Starttls => "STLS",
                TlsMode::None => "no TLS",
            }
        ));
        let untrusted = self.tls.as_ref().is_some_and(|t| t.problem.is_some());
        match &self.greeting {
            Some(greeting) => {
                let plaintext = self.mode == TlsMode::Starttls && (untrusted || self.tls.is_none());
                line(format!(
                    "Greeting{}: {greeting}",
                    if plaintext {
                        " (before TLS, not authenticated)"
                    } else {
                        ""
                    }
                ));
                if self.apop == Some(true) {
                    line("  (it carries a timestamp: APOP login is possible)".to_owned());
                }
            }
            None => line(
                "Greeting: not read (nothing is read over a TLS connection that is not trusted)"
                    .to_owned(),
            ),
        }
        if let Some(tls) = &self.tls {
            for text in tls.text() {
                line(text);
            }
        } else if self.mode == TlsMode::None {
            line("TLS: none (the connection is not encrypted)".to_owned());
        } else {
            line("TLS: not started".to_owned());
        }
        let implementation = self
            .capabilities
            .as_ref()
            .and_then(Capabilities::implementation)
            .map(ToString::to_string);
        match implementation {
            Some(implementation) => line(format!("Implementation: {implementation}")),
            None if self.capabilities.is_some() => {
                line("Implementation: not announced (no IMPLEMENTATION capability)".to_owned());
            }
            None => {}
        }
        match &self.capabilities {
            Some(caps) => {
                line(
                    if untrusted || (self.mode == TlsMode::Starttls && self.tls.is_none()) {
                        "Capabilities (before TLS, not authenticated):".to_owned()
                    } else {
                        "Capabilities:".to_owned()
                    },
                );
                for capability in &caps.list {
                    let (meaning, _) = meaning(capability);
                    line(format!("  {capability}"));
                    line(format!("      {meaning}"));
                }
            }
            None => line(format!(
                "Capabilities: unknown ({})",
                self.capabilities_note.unwrap_or("not asked")
            )),
        }
        out
    }
}

impl TlsReport {
    fn text(&self) -> Vec<String> {
        let mut lines = Vec::new();
        match (&self.details.version, &self.details.cipher) {
            (Some(version), Some(cipher)) => {
                lines.push(format!("TLS: {version}, cipher suite {cipher}"));
            }
            _ => lines.push(
                "TLS: version and cipher suite unknown (the handshake stopped at the \
                 certificate)"
                    .to_owned(),
            ),
        }
        match &self.problem {
            None if self.pinned => lines.push(
                "Certificate: trusted (its fingerprint is pinned with --tls-fingerprint; \
                 names and dates are not checked)"
                    .to_owned(),
            ),
            None => lines.push("Certificate: trusted".to_owned()),
            Some(problem) => lines.push(format!("Certificate: NOT trusted: {}", problem.advice)),
        }
        let Some(cert) = self.certificate() else {
            lines.push("  (no certificate could be read)".to_owned());
            return lines;
        };
        lines.push(format!("  Subject: {}", cert.subject));
        lines.push(format!("  Issuer: {}", cert.issuer));
        let names = cert.names();
        lines.push(format!(
            "  Names: {}",
            if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            }
        ));
        lines.push(format!(
            "  Valid: from {} to {}{}",
            cert.not_before_text(),
            cert.not_after_text(),
            if cert.is_valid_at(now()) {
                ""
            } else {
                " (NOT valid now)"
            }
        ));
        lines.push(format!("  SHA-256 fingerprint: {}", cert.sha256));
        if cert.self_signed {
            lines.push("  Self-signed".to_owned());
        }
        for (i, der) in self.details.chain.iter().enumerate().skip(1) {
            if let Ok(other) = CertificateInfo::from_der(der) {
                lines.push(format!(
                    "  Chain {i}: {} (issued by {})",
                    other.subject, other.issuer
                ));
            }
        }
        let options = self.trust_with();
        if !options.is_empty() {
            lines.push(
                "To trust this certificate, check its fingerprint with the server's \
                 administrator, then add:"
                    .to_owned(),
            );
            for option in &options {
                if option.starts_with("--ca-file") {
                    lines.push(format!("  {option}   (FILE holding the certificate below)"));
                } else {
                    lines.push(format!("  {option}"));
                }
            }
            if options.iter().any(|o| o.starts_with("--ca-file")) {
                if let Some(der) = self.details.chain.first() {
                    lines.extend(pem(der).lines().map(str::to_owned));
                }
            }
        }
        lines
    }
}

/// Whether a certificate name (`mail.example`, `*.example`, an IP address)
/// covers `host`, as the host-name check would see it: case does not
/// matter, and a wildcard stands for one leftmost label.
fn name_matches(name: &str, host: &str) -> bool {
    let host = host.trim_end_matches('.');
    let name = name.trim_end_matches('.');
    if name.eq_ignore_ascii_case(host) {
        return true;
    }
    match (name.strip_prefix("*."), host.split_once('.')) {
        (Some(parent), Some((label, rest))) => {
            !label.is_empty() && parent.eq_ignore_ascii_case(rest)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(900), "15 minutes (900 s)");
        assert_eq!(duration(7200), "2 hours (7200 s)");
        assert_eq!(duration(90), "90 seconds");
        assert_eq!(duration(1), "1 second");
    }

    #[test]
    fn expire_values_are_told_apart() {
        let never = meaning(&Capability::Expire {
            days: None,
            per_user: false,
        });
        assert!(never.0.contains("never deletes"), "{}", never.0);
        assert_eq!(never.1["never"], true);
        let zero = meaning(&Capability::Expire {
            days: Some(0),
            per_user: true,
        });
        assert!(zero.0.contains("may not be left"), "{}", zero.0);
        assert!(zero.0.contains("USER"), "{}", zero.0);
        assert_eq!(zero.1["days"], 0);
        assert_eq!(zero.1["never"], false);
    }

    #[test]
    fn wildcards_cover_one_label() {
        assert!(name_matches("localhost", "LOCALHOST"));
        assert!(name_matches("*.example.org", "pop.example.org"));
        assert!(!name_matches("*.example.org", "a.pop.example.org"));
        assert!(!name_matches("*.example.org", "example.org"));
        assert!(!name_matches("localhost", "127.0.0.1"));
        assert!(name_matches("127.0.0.1", "127.0.0.1"));
    }

    #[test]
    fn pem_lines_are_64_characters() {
        let text = pem(&[0u8; 100]);
        let body: Vec<&str> = text.lines().skip(1).collect();
        assert_eq!(body[0].len(), 64);
        assert!(text.starts_with("-----BEGIN CERTIFICATE-----\n"));
        assert!(text.ends_with("-----END CERTIFICATE-----\n"));
    }
}
