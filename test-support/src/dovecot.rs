//! A real Dovecot POP3 server on loopback, for integration tests.
//!
//! [`Dovecot::start`] writes a self-contained configuration into a fresh
//! temporary directory and runs `/usr/sbin/dovecot -F -c <conf>` (Debian
//! package `dovecot-pop3d`, Dovecot 2.3.x) as a child process with two
//! listeners on 127.0.0.1:
//!
//! * [`Dovecot::plain_addr`] — plain POP3 that offers `STLS`;
//! * [`Dovecot::tls_addr`] — POP3S (implicit TLS).
//!
//! The server certificate comes from a fresh [`TestPki`] and is valid for
//! `localhost` and `127.0.0.1`; clients trust [`Dovecot::ca_pem`] /
//! [`Dovecot::ca_der`]. [`Dovecot::start_with_cert`] presents a certificate
//! of the caller's instead (a self-signed one, an expired one, ...). Most tests should use [`Dovecot::shared`] (one server
//! per test binary, started on first use) and create their own user with
//! [`Dovecot::add_user`] and a name from [`unique_user`], so that tests can run
//! in parallel.
//!
//! # Behaviour of this configuration (verified by `tests/dovecot.rs`)
//!
//! * Greeting: `+OK Dovecot (Debian) ready. <pid.n.time.rand@host>` — the
//!   `<...@...>` APOP timestamp is present because the `apop` mechanism is
//!   enabled.
//! * `CAPA`: `CAPA TOP UIDL RESP-CODES PIPELINING AUTH-RESP-CODE STLS USER`
//!   and `SASL PLAIN LOGIN CRAM-MD5 SCRAM-SHA-1 SCRAM-SHA-256` (APOP is not a
//!   SASL mechanism, so it is not listed there, but the `APOP` command works).
//!   After `STLS` / on the POP3S port `STLS` is not advertised.
//! * RFC 2449 response codes: a failed login answers
//!   `-ERR [AUTH] Authentication failed.`; internal errors carry
//!   `[SYS/TEMP]`. `[IN-USE]` is only sent with
//!   [`DovecotOptions::lock_session`] (Dovecot's `pop3_lock_session = yes`):
//!   by default Dovecot happily runs two sessions on one maildrop. With the
//!   lock, a second login first waits for the lock (hard-coded 10 s dotlock
//!   timeout; ~12 s in practice) and then answers
//!   `-ERR [IN-USE] Mailbox is locked by another POP3 session.` — or
//!   succeeds if the first session ended meanwhile. Client timeouts in such
//!   tests must exceed that.
//! * Dovecot closes the connection after too many bad commands: after the
//!   4th `-ERR` for an unknown command before login, after ~20 in a row once
//!   logged in (2.3.19; hard-coded, as is the 10 min idle timeout).
//! * Failed authentications are answered after ~0.5 s
//!   (`auth_failure_delay = 0`; Dovecot flushes its failure queue on a 500 ms
//!   timer, the stock 2 s delay plus anvil's auth penalty would make tests
//!   much slower).
//! * `RETR`/`TOP` are byte-exact for messages stored with CRLF line endings
//!   that end in CRLF: [`Mailbox::add_message`] stores the bytes verbatim and
//!   Dovecot's POP3 output (after dot-unstuffing) equals the file. `LIST`
//!   sizes equal the file sizes. Dovecot converts bare LF to CRLF on output
//!   (and counts each LF as two octets in `LIST`/`STAT`) and appends a CRLF
//!   if the message does not end with one, so store CRLF messages ending in
//!   CRLF when byte equality matters. No headers are added or removed. `pop3_no_flag_updates = yes` keeps
//!   Dovecot from renaming files when messages are read.
//! * `UIDL` values are `%08Xu%08Xv` (UID and UIDVALIDITY in hex, 16 chars).
//! * `DELE` + `QUIT` unlinks the files (before the `+OK` of `QUIT`
//!   arrives); `DELE` without `QUIT` (connection dropped) keeps them.
//!
//! # Root and non-root
//!
//! As root, Dovecot runs its login/auth processes as Debian's `dovenull` /
//! `dovecot` users and chroots the login processes as usual. Dovecot refuses
//! to access mail as UID 0, so the mail processes run as `nobody:nogroup`
//! and [`Mailbox`] chowns the Maildir and every message file to that user.
//! As an ordinary user, `default_login_user`, `default_internal_user` and
//! `default_internal_group` are set to the current user/group and the chroots
//! of `pop3-login` and `anvil` are disabled (chroot needs root); mail is
//! accessed as the current user, who must have a passwd entry (`id -un`).
//! The temporary directory lives in [`std::env::temp_dir`]; as root its
//! parent must be traversable by `nobody` (true for `/tmp`).
//!
//! # Lifetime
//!
//! Dovecot is started through a tiny `sh` wrapper whose stdin is a pipe held
//! by this process. When the [`Dovecot`] is dropped, or when the test process
//! exits in any way (a `static` is never dropped), the pipe closes and the
//! wrapper stops Dovecot and deletes the temporary directory. Set
//! `POP3_TEST_KEEP_DOVECOT=1` to keep the directory (configuration, logs,
//! Maildirs) for debugging; its path is printed to stderr.

use std::fmt::Write as _;
use std::fs;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rustls_pki_types::{CertificateDer, ServerName};

use crate::pki::{CertKey, TestPki};

/// The Dovecot master binary of Debian's `dovecot-core`.
pub const DOVECOT_BIN: &str = "/usr/sbin/dovecot";
/// The POP3 binary of Debian's `dovecot-pop3d`.
pub const POP3_BIN: &str = "/usr/lib/dovecot/pop3";
/// The Debian package that provides the POP3 server.
pub const PACKAGE: &str = "dovecot-pop3d";

/// How long [`Dovecot::start`] waits for both listeners to greet.
const START_TIMEOUT: Duration = Duration::from_secs(15);

fn installed() -> bool {
    Path::new(DOVECOT_BIN).exists() && Path::new(POP3_BIN).exists()
}

/// Output of a command as trimmed UTF-8.
fn command_output(cmd: &str, args: &[&str]) -> io::Result<String> {
    let out = Command::new(cmd).args(args).stdin(Stdio::null()).output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "`{cmd} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn id_number(args: &[&str]) -> io::Result<u32> {
    let s = command_output("id", args)?;
    s.parse()
        .map_err(|_| io::Error::other(format!("`id {}` printed {s:?}", args.join(" "))))
}

fn is_root() -> bool {
    id_number(&["-u"]).map(|u| u == 0).unwrap_or(false)
}

fn apt_get(args: &[&str]) -> io::Result<String> {
    let out = Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(io::Error::other(format!(
            "`apt-get {}` failed ({}):\n{text}",
            args.join(" "),
            out.status
        )))
    }
}

/// Makes sure Dovecot's POP3 server is installed.
///
/// Does nothing if [`DOVECOT_BIN`] and [`POP3_BIN`] exist. Otherwise, when
/// running as root, runs `apt-get install -y dovecot-pop3d` (with
/// `DEBIAN_FRONTEND=noninteractive`; if that fails, `apt-get update` and one
/// retry). As an ordinary user it returns an error asking to install
/// `dovecot-pop3d` (or to run `scripts/install-test-deps.sh`).
pub fn ensure_installed() -> io::Result<()> {
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(PoisonError::into_inner);
    if installed() {
        return Ok(());
    }
    if !is_root() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "Dovecot POP3 server not found ({DOVECOT_BIN}, {POP3_BIN}); install it with \
                 `sudo apt-get install {PACKAGE}` or run scripts/install-test-deps.sh as root"
            ),
        ));
    }
    eprintln!("test-support: {DOVECOT_BIN} missing, installing {PACKAGE} with apt-get");
    let install = [
        "install",
        "-y",
        "--no-install-recommends",
        "-o",
        "DPkg::Lock::Timeout=300",
        PACKAGE,
    ];
    if let Err(first) = apt_get(&install) {
        eprintln!("test-support: {first}\ntest-support: running apt-get update and retrying");
        apt_get(&["update"])?;
        apt_get(&install)?;
    }
    if installed() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "apt-get installed {PACKAGE} but {DOVECOT_BIN} or {POP3_BIN} is still missing"
        )))
    }
}

/// Options for [`Dovecot::start_with`].
#[derive(Debug, Clone, Default)]
pub struct DovecotOptions {
    /// Dovecot's `pop3_lock_session`: a second concurrent session for the
    /// same user is refused with `-ERR [IN-USE] ...` (after ~10-12 s of
    /// waiting for the lock). Off by default (and in
    /// [`Dovecot::shared`]) because a test that drops a connection and
    /// reconnects at once would race with the old session's lock.
    pub lock_session: bool,
}

/// Process-wide counter for unique names and message sequence numbers.
static COUNTER: AtomicU64 = AtomicU64::new(0);

fn next_counter() -> u64 {
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

/// A user name that is unique within this test run: `<prefix>-<pid>-<n>`.
/// Characters of `prefix` outside `[A-Za-z0-9._-]` are replaced with `_`.
pub fn unique_user(prefix: &str) -> String {
    let prefix: String = prefix
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{prefix}-{}-{}", std::process::id(), next_counter())
}

/// Who runs what, depending on whether we are root.
#[derive(Debug, Clone)]
struct Identity {
    /// uid/gid of the mail processes (owner of Maildirs).
    mail_uid: u32,
    mail_gid: u32,
    /// Non-root: the user/group names Dovecot runs everything as.
    unprivileged: Option<(String, String)>,
}

impl Identity {
    fn detect() -> io::Result<Identity> {
        let uid = id_number(&["-u"])?;
        if uid == 0 {
            let mail_uid = id_number(&["-u", "nobody"]).unwrap_or(65534);
            let mail_gid = id_number(&["-g", "nobody"]).unwrap_or(65534);
            Ok(Identity {
                mail_uid,
                mail_gid,
                unprivileged: None,
            })
        } else {
            Ok(Identity {
                mail_uid: uid,
                mail_gid: id_number(&["-g"])?,
                unprivileged: Some((
                    command_output("id", &["-un"])?,
                    command_output("id", &["-gn"])?,
                )),
            })
        }
    }

    /// Owner to chown mail files to (only needed as root).
    fn chown_to(&self) -> Option<(u32, u32)> {
        self.unprivileged
            .is_none()
            .then_some((self.mail_uid, self.mail_gid))
    }
}

fn make_temp_dir() -> io::Result<PathBuf> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!(
        "pop3-dovecot-{}-{}-{nanos:x}",
        std::process::id(),
        next_counter()
    ));
    fs::create_dir(&dir)?;
    set_mode(&dir, 0o755)?;
    Ok(dir)
}

fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

fn mkdir(path: &Path, owner: Option<(u32, u32)>) -> io::Result<()> {
    fs::create_dir_all(path)?;
    set_mode(path, 0o755)?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))?;
    }
    Ok(())
}

fn free_port() -> io::Result<(TcpListener, u16)> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    let port = l.local_addr()?.port();
    Ok((l, port))
}

fn dovecot_version() -> io::Result<String> {
    command_output(DOVECOT_BIN, &["--version"])
}

struct ConfigParams<'a> {
    dir: &'a Path,
    plain_port: u16,
    tls_port: u16,
    identity: &'a Identity,
    options: &'a DovecotOptions,
}

fn render_config(p: &ConfigParams<'_>) -> String {
    let dir = p.dir.display();
    let mut c = String::new();
    let _ = write!(
        c,
        r#"# Generated by test-support (dovecot module). Self-contained: includes nothing.
# Written for Dovecot 2.3.x (Debian 12 ships 2.3.19).
protocols = pop3
listen = 127.0.0.1
base_dir = {dir}/run
state_dir = {dir}/state
log_path = {dir}/dovecot.log
info_log_path = {dir}/dovecot.log
auth_verbose = yes

ssl = yes
ssl_cert = <{dir}/ssl/server.pem
ssl_key = <{dir}/ssl/server-key.pem
# USER/PASS and AUTH PLAIN are allowed without TLS.
disable_plaintext_auth = no

# "apop" makes the greeting carry an APOP timestamp <...@host>. CRAM-MD5,
# SCRAM and APOP need the plaintext ({{PLAIN}}) passwords of the passdb.
auth_mechanisms = plain login cram-md5 scram-sha-1 scram-sha-256 apop
# Keep user names verbatim (the default %Lu would lowercase them).
auth_username_format = %u
# Fail fast: Dovecot still answers a failed login only on its 500 ms timer.
auth_failure_delay = 0
# One passwd-file per user: Dovecot stats a passwd-file at most once per
# second, so users appended to a shared file within the same second would be
# invisible. A new file is always read on first lookup.
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {dir}/passwd.d/%u
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={dir}/home/%u
}}
first_valid_uid = 1

mail_location = maildir:~/Maildir
mail_fsync = never

protocol pop3 {{
  pop3_uidl_format = %08Xu%08Xv
  # Reading messages must not rename files (flags in the file name).
  pop3_no_flag_updates = yes
  pop3_lock_session = {lock}
  mail_max_userip_connections = 200
}}
"#,
        uid = p.identity.mail_uid,
        gid = p.identity.mail_gid,
        lock = if p.options.lock_session { "yes" } else { "no" },
    );
    let no_chroot = if p.identity.unprivileged.is_some() {
        "  chroot =\n"
    } else {
        ""
    };
    let _ = write!(
        c,
        r#"
service pop3-login {{
{no_chroot}  inet_listener pop3 {{
    port = {plain}
  }}
  inet_listener pop3s {{
    port = {tls}
    ssl = yes
  }}
}}
"#,
        plain = p.plain_port,
        tls = p.tls_port,
    );
    if let Some((user, group)) = &p.identity.unprivileged {
        let _ = write!(
            c,
            r#"
# Not root: run every service as ourselves, no chroots.
default_login_user = {user}
default_internal_user = {user}
default_internal_group = {group}
service anvil {{
  chroot =
}}
"#
        );
    }
    c
}

/// The wrapper: runs Dovecot in the background and stops it (and removes the
/// directory) when its stdin reaches EOF; exits when Dovecot exits.
const WRAPPER: &str = r#"
conf=$1; dir=$2; keep=$3
exec 3<&0 0</dev/null
"$4" -F -c "$conf" 3<&- >>"$dir/dovecot.stderr" 2>&1 &
p=$!
{ read -r _ <&3; : >"$dir/.stop"; kill -TERM "$p" 2>/dev/null; } &
w=$!
exec 3<&-
wait "$p"; rc=$?
kill "$w" 2>/dev/null
if [ -e "$dir/.stop" ] && [ "$keep" != 1 ]; then
  for i in 1 2 3 4 5 6 7 8 9 10; do
    rm -rf -- "$dir" 2>/dev/null
    [ -e "$dir" ] || break
    sleep 0.2
  done
fi
exit $rc
"#;

/// A running Dovecot instance; see the [module docs](self).
#[derive(Debug)]
pub struct Dovecot {
    dir: PathBuf,
    plain: SocketAddr,
    tls: SocketAddr,
    pki: TestPki,
    server_cert: CertKey,
    identity: Identity,
    version: String,
    startup: Duration,
    keep: bool,
    wrapper: Mutex<Option<(Child, ChildStdin)>>,
}

enum StartError {
    /// A chosen port was taken before Dovecot could bind it: retry.
    PortInUse(io::Error),
    Other(io::Error),
}

impl Dovecot {
    /// Starts a new server with default [`DovecotOptions`]. Installs Dovecot
    /// first if needed (see [`ensure_installed`]). Takes roughly 0.1–1 s.
    pub fn start() -> io::Result<Dovecot> {
        Dovecot::start_with(DovecotOptions::default())
    }

    /// Starts a new server with the given options.
    pub fn start_with(options: DovecotOptions) -> io::Result<Dovecot> {
        Dovecot::start_presenting(options, None)
    }

    /// Starts a new server that presents `cert` (with its key, no chain) on
    /// both listeners instead of the [`TestPki::server`] certificate. The
    /// certificate may be anything Dovecot loads: expired, for another name,
    /// self-signed; the readiness check does not verify it.
    pub fn start_with_cert(options: DovecotOptions, cert: &CertKey) -> io::Result<Dovecot> {
        Dovecot::start_presenting(options, Some(cert))
    }

    fn start_presenting(options: DovecotOptions, cert: Option<&CertKey>) -> io::Result<Dovecot> {
        ensure_installed()?;
        let version = dovecot_version()?;
        let identity = Identity::detect()?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match Dovecot::try_start(&options, cert, &identity, &version) {
                Ok(d) => return Ok(d),
                Err(StartError::PortInUse(_)) if attempt < 3 => continue,
                Err(StartError::PortInUse(e)) | Err(StartError::Other(e)) => return Err(e),
            }
        }
    }

    /// The server shared by all tests of this test binary, started on first
    /// use. Panics (in every caller) if it cannot be started.
    pub fn shared() -> &'static Dovecot {
        static SHARED: OnceLock<Result<Dovecot, String>> = OnceLock::new();
        match SHARED.get_or_init(|| Dovecot::start().map_err(|e| e.to_string())) {
            Ok(d) => d,
            Err(e) => panic!("could not start the shared Dovecot server: {e}"),
        }
    }

    fn try_start(
        options: &DovecotOptions,
        cert: Option<&CertKey>,
        identity: &Identity,
        version: &str,
    ) -> Result<Dovecot, StartError> {
        let started = Instant::now();
        let keep = std::env::var_os("POP3_TEST_KEEP_DOVECOT").is_some_and(|v| v == "1");
        let dir = make_temp_dir().map_err(StartError::Other)?;
        let fail = |e: io::Error| {
            if !keep {
                let _ = fs::remove_dir_all(&dir);
            }
            StartError::Other(e)
        };
        let dir_str = dir.to_string_lossy();
        if dir_str.contains(|c: char| c.is_whitespace() || c == '"' || c == '\\') {
            return Err(fail(io::Error::other(format!(
                "temporary directory {dir_str:?} contains characters Dovecot's config cannot take"
            ))));
        }

        let pki = TestPki::new();
        let server_cert = cert.unwrap_or(&pki.server).clone();
        let setup = || -> io::Result<(u16, u16)> {
            for sub in ["run", "state", "ssl", "passwd.d", "home"] {
                mkdir(&dir.join(sub), None)?;
            }
            server_cert.write_pem_files(&dir.join("ssl"), "server")?;
            fs::write(dir.join("ssl/ca.pem"), &pki.ca_pem)?;
            // Hold both listeners while picking so the ports differ.
            let (l1, plain_port) = free_port()?;
            let (l2, tls_port) = free_port()?;
            drop((l1, l2));
            let conf = render_config(&ConfigParams {
                dir: &dir,
                plain_port,
                tls_port,
                identity,
                options,
            });
            fs::write(dir.join("dovecot.conf"), conf)?;
            Ok((plain_port, tls_port))
        };
        let (plain_port, tls_port) = setup().map_err(fail)?;

        let mut child = Command::new("sh")
            .arg("-c")
            .arg(WRAPPER)
            .arg("dovecot-wrapper")
            .arg(dir.join("dovecot.conf"))
            .arg(&dir)
            .arg(if keep { "1" } else { "0" })
            .arg(DOVECOT_BIN)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(fail)?;
        let stdin = child.stdin.take().expect("piped stdin");

        let mut dovecot = Dovecot {
            dir: dir.clone(),
            plain: SocketAddr::from(([127, 0, 0, 1], plain_port)),
            tls: SocketAddr::from(([127, 0, 0, 1], tls_port)),
            pki,
            server_cert,
            identity: identity.clone(),
            version: version.to_string(),
            startup: Duration::ZERO,
            keep,
            wrapper: Mutex::new(Some((child, stdin))),
        };
        match dovecot.wait_ready(started + START_TIMEOUT) {
            Ok(()) => {
                if keep {
                    eprintln!("test-support: Dovecot directory kept: {}", dir.display());
                }
                dovecot.startup = started.elapsed();
                Ok(dovecot)
            }
            Err(e) => {
                let log = dovecot.log();
                let port_in_use = log.contains("Address already in use");
                let err = io::Error::new(
                    e.kind(),
                    format!(
                        "Dovecot {version} did not start in {}: {e}\n--- log ({}) ---\n{log}",
                        dir.display(),
                        dir.join("dovecot.log").display()
                    ),
                );
                drop(dovecot); // stops it and (unless kept) removes the dir
                Err(if port_in_use {
                    StartError::PortInUse(err)
                } else {
                    StartError::Other(err)
                })
            }
        }
    }

    fn wrapper_exited(&self) -> Option<String> {
        let mut guard = self.wrapper.lock().unwrap_or_else(PoisonError::into_inner);
        match guard.as_mut().map(|(child, _)| child.try_wait()) {
            Some(Ok(Some(status))) => Some(format!("dovecot exited ({status})")),
            Some(Err(e)) => Some(format!("waiting for dovecot: {e}")),
            Some(Ok(None)) => None,
            None => Some("dovecot was stopped".into()),
        }
    }

    fn wait_ready(&self, deadline: Instant) -> io::Result<()> {
        for tls in [false, true] {
            loop {
                if let Some(why) = self.wrapper_exited() {
                    return Err(io::Error::other(why));
                }
                let last_err = match self.probe(tls) {
                    Ok(()) => break,
                    Err(e) => e.to_string(),
                };
                if Instant::now() >= deadline {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "no +OK greeting on the {} port within {START_TIMEOUT:?} (last error: {last_err})",
                            if tls { "POP3S" } else { "plain POP3" }
                        ),
                    ));
                }
                thread::sleep(Duration::from_millis(25));
            }
        }
        Ok(())
    }

    /// Connects once and checks for a `+OK` greeting.
    fn probe(&self, tls: bool) -> io::Result<()> {
        let addr = if tls { self.tls } else { self.plain };
        let tcp = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
        tcp.set_read_timeout(Some(Duration::from_secs(3)))?;
        tcp.set_write_timeout(Some(Duration::from_secs(3)))?;
        let line = if tls {
            let name = ServerName::try_from("localhost").expect("valid name");
            // A certificate of the caller's may be meant to fail verification:
            // readiness only needs the greeting.
            let config = if self.server_cert.cert_der == self.pki.server.cert_der {
                self.pki.rustls_client_config()
            } else {
                probe_config_accepting_any_certificate()
            };
            let conn = rustls::ClientConnection::new(config, name).map_err(io::Error::other)?;
            let mut s = rustls::StreamOwned::new(conn, tcp);
            let line = read_line(&mut s)?;
            let _ = s.write_all(b"QUIT\r\n");
            line
        } else {
            let mut s = tcp;
            let line = read_line(&mut s)?;
            let _ = s.write_all(b"QUIT\r\n");
            line
        };
        if line.starts_with(b"+OK") {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "unexpected greeting {:?}",
                String::from_utf8_lossy(&line)
            )))
        }
    }

    /// Address of the plain POP3 listener (offers `STLS`).
    pub fn plain_addr(&self) -> SocketAddr {
        self.plain
    }

    /// Address of the POP3S (implicit TLS) listener.
    pub fn tls_addr(&self) -> SocketAddr {
        self.tls
    }

    /// PEM of the CA that signed the server certificate.
    pub fn ca_pem(&self) -> &str {
        &self.pki.ca_pem
    }

    /// DER of the CA that signed the server certificate.
    pub fn ca_der(&self) -> &CertificateDer<'static> {
        &self.pki.ca_der
    }

    /// The PKI whose [`TestPki::server`] certificate Dovecot presents.
    pub fn pki(&self) -> &TestPki {
        &self.pki
    }

    /// The certificate (and key) the server presents: [`TestPki::server`] of
    /// [`Dovecot::pki`], or the one given to [`Dovecot::start_with_cert`].
    pub fn server_cert(&self) -> &CertKey {
        &self.server_cert
    }

    /// A rustls client configuration that trusts [`Dovecot::ca_der`].
    pub fn rustls_client_config(&self) -> Arc<rustls::ClientConfig> {
        self.pki.rustls_client_config()
    }

    /// Dovecot's log so far (`dovecot.log`, plus anything the master wrote to
    /// stderr).
    pub fn log(&self) -> String {
        let mut log = fs::read_to_string(self.dir.join("dovecot.log")).unwrap_or_default();
        let stderr = fs::read_to_string(self.dir.join("dovecot.stderr")).unwrap_or_default();
        if !stderr.trim().is_empty() {
            log.push_str("--- stderr ---\n");
            log.push_str(&stderr);
        }
        log
    }

    /// The temporary directory (config `dovecot.conf`, logs, `home/<user>`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Output of `dovecot --version`, e.g. `2.3.19.1 (9b53102964)`.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// How long [`Dovecot::start`] took until both listeners greeted.
    pub fn startup_time(&self) -> Duration {
        self.startup
    }

    /// Creates a user with a `{PLAIN}` password and an empty Maildir.
    ///
    /// `name` must be 1–64 characters from `[A-Za-z0-9._@-]` (Dovecot's
    /// default `auth_username_chars`), not start with `.`, and not exist yet;
    /// the password must not contain `:`, CR or LF. Names are case-sensitive.
    /// The user can log in immediately. Panics on invalid input or I/O errors.
    pub fn add_user(&self, name: &str, password: &str) -> Mailbox {
        assert!(
            !name.is_empty()
                && name.len() <= 64
                && !name.starts_with('.')
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@')),
            "invalid Dovecot test user name {name:?}"
        );
        assert!(
            !password.contains([':', '\r', '\n']),
            "password for {name:?} must not contain ':', CR or LF"
        );
        let passwd = self.dir.join("passwd.d").join(name);
        assert!(
            !passwd.exists(),
            "Dovecot test user {name:?} already exists"
        );
        let owner = self.identity.chown_to();
        let home = self.dir.join("home").join(name);
        let maildir = home.join("Maildir");
        let result = (|| -> io::Result<()> {
            mkdir(&home, owner)?;
            for sub in ["", "cur", "new", "tmp"] {
                mkdir(&maildir.join(sub), owner)?;
            }
            // Write + rename so Dovecot never reads a partial file.
            let tmp = self.dir.join("passwd.d").join(format!(".{name}.tmp"));
            fs::write(&tmp, format!("{name}:{{PLAIN}}{password}::::::\n"))?;
            set_mode(&tmp, 0o644)?;
            fs::rename(&tmp, &passwd)
        })();
        if let Err(e) = result {
            panic!("could not create Dovecot test user {name:?}: {e}");
        }
        Mailbox {
            user: name.to_string(),
            password: password.to_string(),
            maildir,
            owner,
        }
    }

    /// Stops the server now (also done on drop).
    fn shutdown(&self) {
        let taken = self
            .wrapper
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some((mut child, stdin)) = taken else {
            return;
        };
        drop(stdin); // EOF: the wrapper stops Dovecot and removes the dir
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
                Ok(None) => {
                    // Dovecot did not stop: kill it hard.
                    if let Ok(pid) = fs::read_to_string(self.dir.join("run/master.pid")) {
                        let _ = Command::new("kill")
                            .args(["-KILL", pid.trim()])
                            .stderr(Stdio::null())
                            .status();
                    }
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
            }
        }
        if !self.keep && self.dir.exists() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A client configuration for the readiness probe that accepts whatever
/// certificate the server presents (handshake signatures are still checked).
fn probe_config_accepting_any_certificate() -> Arc<rustls::ClientConfig> {
    #[derive(Debug)]
    struct AnyCertificate(rustls::crypto::WebPkiSupportedAlgorithms);
    impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
        fn verify_server_cert(
            &self,
            _end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            _ocsp_response: &[u8],
            _now: rustls_pki_types::UnixTime,
        ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
        }
        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.0.supported_schemes()
        }
    }
    let provider = pop3_transport::crypto_provider();
    let verifier = Arc::new(AnyCertificate(provider.signature_verification_algorithms));
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("the crypto provider supports the default protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Arc::new(config)
}

fn read_line(r: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while !line.ends_with(b"\n") {
        if r.read(&mut b)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "connection closed after {:?}",
                    String::from_utf8_lossy(&line)
                ),
            ));
        }
        line.push(b[0]);
        if line.len() > 4096 {
            return Err(io::Error::other("greeting line too long"));
        }
    }
    Ok(line)
}

/// Base for message file timestamps (seconds), fixed per process.
fn base_secs() -> u64 {
    static BASE: OnceLock<u64> = OnceLock::new();
    *BASE.get_or_init(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(1_700_000_000)
    })
}

/// The leading decimal number of a Maildir file name (Dovecot sorts new
/// files by exactly this number).
fn leading_number(name: &str) -> u64 {
    let digits: String = name.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().unwrap_or(u64::MAX)
}

/// A test user's Maildir; created by [`Dovecot::add_user`].
#[derive(Debug)]
pub struct Mailbox {
    user: String,
    password: String,
    maildir: PathBuf,
    owner: Option<(u32, u32)>,
}

impl Mailbox {
    /// The user name to log in with.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The (plaintext) password.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// Path of `~/Maildir`.
    pub fn maildir(&self) -> &Path {
        &self.maildir
    }

    /// Stores a message verbatim in `Maildir/cur` and returns its path.
    ///
    /// File names are `<secs>.M0P<pid>Q<n>.testhost:2,S` where `<secs>`
    /// strictly increases with every message added in this process. Dovecot
    /// assigns UIDs to new files sorted by that leading number, so message
    /// numbers (and UIDs) follow insertion order, also across sessions.
    /// The file is written to `tmp/` and renamed into `cur/` (it is not in
    /// `new/`, so Dovecot has no reason to rename it). Store CRLF messages
    /// ending in CRLF for byte-exact `RETR` (see the [module docs](self)).
    pub fn add_message(&self, bytes: &[u8]) -> PathBuf {
        let n = next_counter();
        let name = format!(
            "{}.M0P{}Q{n}.testhost:2,S",
            base_secs() + n,
            std::process::id()
        );
        let tmp = self.maildir.join("tmp").join(&name);
        let dest = self.maildir.join("cur").join(&name);
        let result = (|| -> io::Result<()> {
            fs::write(&tmp, bytes)?;
            set_mode(&tmp, 0o644)?;
            if let Some((uid, gid)) = self.owner {
                std::os::unix::fs::chown(&tmp, Some(uid), Some(gid))?;
            }
            fs::rename(&tmp, &dest)
        })();
        if let Err(e) = result {
            panic!("could not add a message for {}: {e}", self.user);
        }
        dest
    }

    /// The message files currently in `cur/` and `new/`, in message-number
    /// order (as Dovecot numbers them for messages added with
    /// [`Mailbox::add_message`]).
    pub fn message_files(&self) -> Vec<PathBuf> {
        let mut files: Vec<(u64, String, PathBuf)> = Vec::new();
        for sub in ["cur", "new"] {
            let Ok(entries) = fs::read_dir(self.maildir.join(sub)) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if !path.is_file() {
                    continue;
                }
                let name = entry.file_name().to_string_lossy().into_owned();
                files.push((leading_number(&name), name, path));
            }
        }
        files.sort();
        files.into_iter().map(|(_, _, p)| p).collect()
    }

    /// Number of message files currently in the Maildir.
    pub fn count(&self) -> usize {
        self.message_files().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_user_is_unique_and_sanitized() {
        let a = unique_user("retr test/1");
        let b = unique_user("retr test/1");
        assert_ne!(a, b);
        assert!(a.starts_with("retr_test_1-"), "{a}");
    }

    #[test]
    fn config_mentions_the_essentials() {
        let identity = Identity {
            mail_uid: 1000,
            mail_gid: 1000,
            unprivileged: Some(("me".into(), "us".into())),
        };
        let c = render_config(&ConfigParams {
            dir: Path::new("/tmp/x"),
            plain_port: 1110,
            tls_port: 1995,
            identity: &identity,
            options: &DovecotOptions { lock_session: true },
        });
        for needle in [
            "protocols = pop3",
            "port = 1110",
            "port = 1995",
            "ssl = yes",
            "default_login_user = me",
            "default_internal_group = us",
            "pop3_lock_session = yes",
            "args = scheme=PLAIN username_format=%u /tmp/x/passwd.d/%u",
            "args = uid=1000 gid=1000 home=/tmp/x/home/%u",
        ] {
            assert!(c.contains(needle), "missing {needle:?} in\n{c}");
        }
        assert!(!c.contains("!include"));
    }

    #[test]
    fn leading_number_parses_maildir_names() {
        assert_eq!(
            leading_number("1700000001.M0P1Q1.testhost:2,S"),
            1_700_000_001
        );
        assert_eq!(leading_number("x"), u64::MAX);
    }
}
