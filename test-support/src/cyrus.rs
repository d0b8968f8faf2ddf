//! A real Cyrus POP3 server on loopback, for integration tests: the second
//! real server next to [`crate::dovecot`].
//!
//! # What runs, from where
//!
//! Cyrus IMAP 3.6 of Debian 12 (packages `cyrus-common` and `cyrus-pop3d`,
//! 3.6.1): its `master` process starts `pop3d` for two listeners on
//! 127.0.0.1 and `lmtpd` on a Unix socket:
//!
//! * [`Cyrus::plain_addr`] — plain POP3 that offers `STLS`;
//! * [`Cyrus::tls_addr`] — POP3S (implicit TLS, `pop3d -s`);
//! * LMTP, through which [`CyrusMailbox::add_message`] delivers messages.
//!
//! The package `cyrus-pop3d` conflicts with `dovecot-pop3d` (both provide
//! `pop3-server`), and Dovecot must stay installed, so Cyrus is not installed:
//! `scripts/install-cyrus.sh` fetches the two packages with `apt-get download`
//! and unpacks them with `dpkg -x` into a private prefix
//! ([`DEFAULT_PREFIX`], or `$POP3_CYRUS_PREFIX`). The binaries run from there
//! with `LD_LIBRARY_PATH` set to the unpacked `libcyrus*.so`; the SASL
//! plugins (`libsasl2-modules`, `-db`) and `saslpasswd2` (`sasl2-bin`) are
//! ordinary packages that do not conflict, installed by the script with apt.
//! [`ensure_installed`] runs the script when the prefix is missing and we are
//! root.
//!
//! Everything else lives in a fresh temporary directory: `imapd.conf` and
//! `cyrus.conf` (passed as `master -C ... -M ...`, and `-C` to every
//! service), the configuration directory, the mail partition, sockets, the
//! sasldb of users, the TLS certificate of a fresh [`TestPki`] (valid for
//! `localhost` and `127.0.0.1`).
//!
//! # Root, users, log
//!
//! Cyrus' services refuse to run as root ("must run as the Cyrus user") and
//! there is no `cyrus` user (its package is not installed), so `cyrus_user`
//! is `nobody` (group `nogroup`) when the tests run as root, and the
//! directory is theirs; as an ordinary user, Cyrus runs as that user. No user
//! is created on the system.
//!
//! Users are SASL users in an auxprop sasldb (`saslpasswd2 -f`, realm
//! `localhost` = `servername`), so Cyrus offers every mechanism that needs
//! the plaintext secret: `sasl_mech_list` is PLAIN, SCRAM-SHA-1,
//! SCRAM-SHA-256 and their -PLUS variants; USER/PASS works too. The INBOX is
//! created on first login (`autocreate_quota: 0`) or first delivery
//! (`autocreate_post: 1`).
//!
//! Cyrus logs only to syslog (`/dev/log`). As root, `master` runs in a
//! private mount namespace (`unshare -m`) whose `/dev` is a small tmpfs with
//! `null`, `zero`, `random`, `urandom`, ... bound from the real one and `log`
//! a symbolic link to a datagram socket in the temporary directory, which a
//! thread of this process reads: [`Cyrus::log`]. Nothing changes outside the
//! namespace. Without root (or without `unshare`), the log stays empty.
//!
//! # Behaviour of this configuration (verified by [`crate::cyrus_scenarios`])
//!
//! * Greeting: `+OK localhost Cyrus POP3 3.6.1-Debian-3.6.1-4+deb12u5 server
//!   ready <...@localhost>` (an APOP timestamp, although APOP is off).
//! * `CAPA` lists `SASL`, `STLS` (plain port, before TLS), `EXPIRE NEVER`,
//!   `LOGIN-DELAY 0`, `TOP`, `UIDL`, `PIPELINING`, `RESP-CODES`,
//!   `AUTH-RESP-CODE`, `USER`, `IMPLEMENTATION Cyrus POP3 3.6.1-...`.
//!   Before TLS: `SASL PLAIN SCRAM-SHA-1 SCRAM-SHA-256 SCRAM-SHA-256`; after
//!   `STLS` and on the POP3S port: `SASL PLAIN SCRAM-SHA-1-PLUS SCRAM-SHA-1
//!   SCRAM-SHA-256-PLUS SCRAM-SHA-256 SCRAM-SHA-256-PLUS SCRAM-SHA-256`
//!   (sic: SCRAM-SHA-256 is listed twice, the -PLUS one too), no `STLS`.
//! * Channel binding: Cyrus 3.6 gives SASL the `tls-unique` binding only, on
//!   TLS 1.2 and (not defined there, but OpenSSL hands out the Finished
//!   message) TLS 1.3. A SCRAM-*-PLUS exchange with `tls-exporter` or
//!   `tls-server-end-point` is answered with a server-first message and then,
//!   after client-final, `-ERR [AUTH] authenticating: bad protocol / cancel`.
//!   Plain SCRAM with the GS2 flag `n` succeeds everywhere; with the flag
//!   `y` it fails over TLS (`-ERR [AUTH] authenticating: authentication
//!   failure`: the server supports binding there, RFC 5802) and succeeds
//!   without TLS (no -PLUS offered there).
//! * Failed logins are answered at once (`failedloginpause: 0`; Cyrus'
//!   default waits 3 s).
//! * Delivery adds headers: `Return-Path: <>`, `Received: from localhost
//!   ([unix socket]) ...`, `X-Cyrus-Session-Id: ...`, `X-Sieve: CMU Sieve
//!   3.0`, and `Message-ID:` / `Date:` when the message has none.
//!   [`CyrusMailbox::add_message`] returns the message as stored, which is
//!   what `RETR` returns byte for byte and what `LIST` counts.
//! * `UIDL` values are `<uidvalidity>.<uid>` (Cyrus' `uidl_format: cyrus`).
//!
//! # Lifetime
//!
//! As with Dovecot, `master` runs under a small `sh` wrapper whose stdin is a
//! pipe held by this process: when the [`Cyrus`] is dropped, or the test
//! process ends in any way, the wrapper stops `master` (SIGTERM, which stops
//! its services) and deletes the directory. `POP3_TEST_KEEP_CYRUS=1` keeps
//! the directory; its path is printed to stderr. Every wait has a deadline:
//! start-up ([`START_TIMEOUT`]), helper programs (`saslpasswd2`, `mbpath`),
//! LMTP and the readiness probes.

use std::fmt::Write as _;
use std::fs::{self, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rustls_pki_types::{CertificateDer, ServerName};

use crate::pki::TestPki;

/// Where `scripts/install-cyrus.sh` unpacks Cyrus unless
/// `$POP3_CYRUS_PREFIX` says otherwise.
pub const DEFAULT_PREFIX: &str = "/var/cache/pop3-tests/cyrus";

/// How long [`Cyrus::start`] waits for its listeners to answer.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);

/// How long a helper program (`saslpasswd2`, `mbpath`) may run.
const HELPER_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the install script may run (apt downloads).
const INSTALL_TIMEOUT: Duration = Duration::from_secs(900);

/// Read and write limit of the LMTP client.
const LMTP_TIMEOUT: Duration = Duration::from_secs(20);

/// The prefix Cyrus is unpacked in.
pub fn prefix() -> PathBuf {
    std::env::var_os("POP3_CYRUS_PREFIX")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_PREFIX))
}

fn bin_dir() -> PathBuf {
    prefix().join("root/usr/lib/cyrus/bin")
}

fn lib_dir() -> PathBuf {
    prefix().join("root/usr/lib/x86_64-linux-gnu")
}

fn installed() -> bool {
    let bin = bin_dir();
    ["master", "pop3d", "lmtpd", "mbpath", "ctl_cyrusdb"]
        .iter()
        .all(|b| bin.join(b).exists())
        && lib_dir().join("libcyrus.so.0").exists()
        && saslpasswd2().is_some()
}

fn saslpasswd2() -> Option<PathBuf> {
    ["/usr/sbin/saslpasswd2", "/usr/bin/saslpasswd2"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// The install script of this repository.
fn install_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/install-cyrus.sh")
}

/// Runs `command` to completion or kills it after `timeout`; `input` goes to
/// its stdin. Output is collected by threads so a full pipe never blocks it.
fn run_with_timeout(mut command: Command, input: &[u8], timeout: Duration) -> io::Result<Output> {
    let what = format!("{command:?}");
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("{what}: {e}")))?;
    let collect = |pipe: Option<Box<dyn Read + Send>>| {
        thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut buf);
            }
            buf
        })
    };
    let stdout = collect(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = collect(child.stderr.take().map(|p| Box::new(p) as _));
    if let Some(mut stdin) = child.stdin.take() {
        // A program that exits without reading its input is not an error here.
        let _ = stdin.write_all(input);
    }
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{what} did not finish within {timeout:?}"),
            ));
        }
        thread::sleep(Duration::from_millis(10));
    };
    let output = Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    };
    if output.status.success() {
        Ok(output)
    } else {
        Err(io::Error::other(format!(
            "{what} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout).trim(),
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}

fn command_output(cmd: &str, args: &[&str]) -> io::Result<String> {
    let mut command = Command::new(cmd);
    command.args(args);
    let out = run_with_timeout(command, b"", HELPER_TIMEOUT)?;
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

/// Makes sure Cyrus is unpacked in [`prefix`].
///
/// Does nothing when it is. Otherwise, as root, runs
/// `scripts/install-cyrus.sh` (at most 15 minutes); as an ordinary user,
/// returns an error that says to run it.
pub fn ensure_installed() -> io::Result<()> {
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(PoisonError::into_inner);
    if installed() {
        return Ok(());
    }
    let script = install_script();
    if !is_root() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "Cyrus is not unpacked in {}; run {} as root",
                prefix().display(),
                script.display()
            ),
        ));
    }
    eprintln!("test-support: Cyrus missing, running {}", script.display());
    let mut command = Command::new("sh");
    command
        .arg(&script)
        .env("DEBIAN_FRONTEND", "noninteractive");
    run_with_timeout(command, b"", INSTALL_TIMEOUT)?;
    if installed() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "{} ran but Cyrus is still missing in {}",
            script.display(),
            prefix().display()
        )))
    }
}

/// Whether the private `/dev` of [`NS_SETUP`] can be made here (root, and a
/// kernel and container that allow mount namespaces and tmpfs mounts): then
/// Cyrus' syslog can be captured. Tried once, in a scratch directory.
fn can_unshare() -> bool {
    static CAN: OnceLock<bool> = OnceLock::new();
    *CAN.get_or_init(|| {
        if !is_root() {
            return false;
        }
        let Ok(scratch) = make_temp_dir() else {
            return false;
        };
        let mut command = Command::new("unshare");
        command
            .args(["-m", "--propagation", "private", "sh", "-c", NS_SETUP])
            .arg("ns-setup")
            .arg(&scratch)
            .args(["test", "-L", "/dev/log"]);
        let works = run_with_timeout(command, b"", HELPER_TIMEOUT).is_ok();
        let _ = fs::remove_dir_all(&scratch);
        if !works {
            eprintln!("test-support: no mount namespace here; Cyrus' syslog is not captured");
        }
        works
    })
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn next_counter() -> u64 {
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

fn chown(path: &Path, owner: Option<(u32, u32)>) -> io::Result<()> {
    match owner {
        Some((uid, gid)) => std::os::unix::fs::chown(path, Some(uid), Some(gid)),
        None => Ok(()),
    }
}

fn make_temp_dir() -> io::Result<PathBuf> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!(
        "pop3-cyrus-{}-{}-{nanos:x}",
        std::process::id(),
        next_counter()
    ));
    fs::create_dir(&dir)?;
    set_mode(&dir, 0o755)?;
    Ok(dir)
}

fn free_port() -> io::Result<(TcpListener, u16)> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    let port = l.local_addr()?.port();
    Ok((l, port))
}

/// Who Cyrus runs as.
#[derive(Debug, Clone)]
struct Identity {
    user: String,
    group: String,
    /// uid/gid to chown Cyrus' files to (only as root).
    owner: Option<(u32, u32)>,
}

impl Identity {
    fn detect() -> io::Result<Identity> {
        if is_root() {
            let uid = id_number(&["-u", "nobody"])?;
            let gid = id_number(&["-g", "nobody"])?;
            Ok(Identity {
                user: "nobody".into(),
                group: command_output("id", &["-gn", "nobody"])?,
                owner: Some((uid, gid)),
            })
        } else {
            Ok(Identity {
                user: command_output("id", &["-un"])?,
                group: command_output("id", &["-gn"])?,
                owner: None,
            })
        }
    }
}

fn render_imapd_conf(dir: &Path, identity: &Identity) -> String {
    let d = dir.display();
    let mut c = String::new();
    let _ = write!(
        c,
        r#"# Generated by test-support (cyrus module) for Cyrus IMAP 3.6.
configdirectory: {d}/config
defaultpartition: default
partition-default: {d}/spool
proc_path: {d}/run/proc
mboxname_lockpath: {d}/run/lock
lmtpsocket: {d}/run/lmtp
idlesocket: {d}/run/idle
notifysocket: {d}/run/notify
servername: localhost
cyrus_user: {user}
cyrus_group: {group}
syslog_prefix: cyrus-test
altnamespace: no
unixhierarchysep: no
# USER/PASS and AUTH PLAIN also without TLS.
allowplaintext: yes
# Tests log in many times a second, and fail on purpose.
popminpoll: 0
failedloginpause: 0
# INBOX created on first login or first delivery.
autocreate_quota: 0
autocreate_post: 1
# The same message may be delivered twice on purpose.
duplicatesuppression: 0
sasl_pwcheck_method: auxprop
sasl_auxprop_plugin: sasldb
sasl_sasldb_path: {d}/sasldb2
sasl_mech_list: PLAIN SCRAM-SHA-1 SCRAM-SHA-1-PLUS SCRAM-SHA-256 SCRAM-SHA-256-PLUS
tls_server_cert: {d}/ssl/server.pem
tls_server_key: {d}/ssl/server-key.pem
tls_session_timeout: 0
"#,
        user = identity.user,
        group = identity.group,
    );
    c
}

fn render_cyrus_conf(dir: &Path, plain_port: u16, tls_port: u16) -> String {
    let bin = bin_dir();
    let b = bin.display();
    let conf = dir.join("imapd.conf");
    let c = conf.display();
    format!(
        r#"# Generated by test-support (cyrus module).
START {{
  recover cmd="{b}/ctl_cyrusdb -C {c} -r"
}}
SERVICES {{
  pop3 cmd="{b}/pop3d -C {c}" listen="127.0.0.1:{plain_port}" prefork=0
  pop3s cmd="{b}/pop3d -C {c} -s" listen="127.0.0.1:{tls_port}" prefork=0
  lmtpunix cmd="{b}/lmtpd -C {c}" listen="{d}/run/lmtp" prefork=0
}}
EVENTS {{
}}
"#,
        d = dir.display(),
    )
}

/// The wrapper: runs `master` in the background (in a private mount
/// namespace with our `/dev/log` when `$3` is 1), stops it when its stdin
/// reaches EOF, removes the directory, and exits when `master` exits.
const WRAPPER: &str = r#"
dir=$1; keep=$2; ns=$3; shift 3
exec 3<&0 0</dev/null
if [ "$ns" = 1 ]; then
  unshare -m --propagation private sh -c "$NS_SETUP" ns-setup "$dir" "$@" 3<&- >>"$dir/master.stderr" 2>&1 &
else
  "$@" 3<&- >>"$dir/master.stderr" 2>&1 &
fi
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

/// Runs inside the new mount namespace: a tmpfs `/dev` with the usual
/// device nodes bound from the real one, and `/dev/log` pointing at our
/// socket; then `exec`s the command (so `$!` of the wrapper is `master`).
const NS_SETUP: &str = r#"
set -e
dir=$1; shift
mkdir -p "$dir/hostdev"
mount --rbind /dev "$dir/hostdev"
mount -t tmpfs -o mode=755,size=64k cyrus-dev /dev
for n in null zero full random urandom tty; do
  if [ -e "$dir/hostdev/$n" ]; then
    : >"/dev/$n"
    mount --bind "$dir/hostdev/$n" "/dev/$n"
  fi
done
ln -s /proc/self/fd /dev/fd
ln -s "$dir/syslog.sock" /dev/log
umount -l "$dir/hostdev"
exec "$@"
"#;

/// Reads syslog datagrams from `syslog.sock` into `syslog.log` until told
/// to stop.
#[derive(Debug)]
struct SyslogReader {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl SyslogReader {
    fn start(dir: &Path) -> io::Result<SyslogReader> {
        let path = dir.join("syslog.sock");
        let socket = UnixDatagram::bind(&path)?;
        // Cyrus' services (as nobody) must be able to send to it.
        set_mode(&path, 0o666)?;
        socket.set_read_timeout(Some(Duration::from_millis(100)))?;
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("syslog.log"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = thread::Builder::new()
            .name("cyrus-syslog".into())
            .spawn(move || {
                let mut buf = vec![0u8; 65536];
                while !stopped.load(Ordering::Relaxed) {
                    match socket.recv(&mut buf) {
                        Ok(n) => {
                            let mut line = &buf[..n];
                            // Drop the "<priority>" prefix.
                            if line.starts_with(b"<") {
                                if let Some(end) = line.iter().position(|&b| b == b'>') {
                                    line = &line[end + 1..];
                                }
                            }
                            let line = line.strip_suffix(b"\n").unwrap_or(line);
                            let _ = log.write_all(line);
                            let _ = log.write_all(b"\n");
                        }
                        Err(e)
                            if matches!(
                                e.kind(),
                                io::ErrorKind::WouldBlock
                                    | io::ErrorKind::TimedOut
                                    | io::ErrorKind::Interrupted
                            ) => {}
                        Err(_) => break,
                    }
                }
            })?;
        Ok(SyslogReader {
            stop,
            thread: Some(thread),
        })
    }

    fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            // The thread checks the flag at least every 100 ms.
            let _ = thread.join();
        }
    }
}

/// A running Cyrus; see the [module docs](self).
#[derive(Debug)]
pub struct Cyrus {
    dir: PathBuf,
    plain: SocketAddr,
    tls: SocketAddr,
    pki: TestPki,
    identity: Identity,
    version: String,
    keep: bool,
    wrapper: Mutex<Option<(Child, ChildStdin)>>,
    syslog: Mutex<Option<SyslogReader>>,
    /// Serializes writes to the sasldb.
    sasldb: Mutex<()>,
}

enum StartError {
    /// A chosen port was taken before Cyrus could bind it: retry.
    PortInUse(io::Error),
    Other(io::Error),
}

impl Cyrus {
    /// Starts a new server (unpacking Cyrus first if needed, see
    /// [`ensure_installed`]). Takes about a second; fails after
    /// [`START_TIMEOUT`].
    pub fn start() -> io::Result<Cyrus> {
        ensure_installed()?;
        let identity = Identity::detect()?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match Cyrus::try_start(&identity) {
                Ok(c) => return Ok(c),
                Err(StartError::PortInUse(_)) if attempt < 3 => continue,
                Err(StartError::PortInUse(e)) | Err(StartError::Other(e)) => return Err(e),
            }
        }
    }

    /// The server shared by all tests of this test binary, started on first
    /// use. Panics (in every caller) if it cannot be started.
    pub fn shared() -> &'static Cyrus {
        static SHARED: OnceLock<Result<Cyrus, String>> = OnceLock::new();
        match SHARED.get_or_init(|| Cyrus::start().map_err(|e| e.to_string())) {
            Ok(c) => c,
            Err(e) => panic!("could not start the shared Cyrus server: {e}"),
        }
    }

    fn try_start(identity: &Identity) -> Result<Cyrus, StartError> {
        let started = Instant::now();
        let keep = std::env::var_os("POP3_TEST_KEEP_CYRUS").is_some_and(|v| v == "1");
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
                "temporary directory {dir_str:?} contains characters Cyrus' config cannot take"
            ))));
        }
        let pki = TestPki::new();
        let owner = identity.owner;
        let setup = || -> io::Result<(u16, u16)> {
            for sub in [
                "config",
                "config/db",
                "config/log",
                "config/user",
                "config/quota",
                "config/msg",
                "config/ptclient",
                "config/sieve",
                "config/socket",
                "spool",
                "run",
                "run/proc",
                "run/lock",
                "ssl",
            ] {
                let path = dir.join(sub);
                fs::create_dir_all(&path)?;
                set_mode(&path, 0o755)?;
                chown(&path, owner)?;
            }
            let (cert, key) = pki.server.write_pem_files(&dir.join("ssl"), "server")?;
            chown(&cert, owner)?;
            chown(&key, owner)?;
            let (l1, plain_port) = free_port()?;
            let (l2, tls_port) = free_port()?;
            drop((l1, l2));
            fs::write(dir.join("imapd.conf"), render_imapd_conf(&dir, identity))?;
            fs::write(
                dir.join("cyrus.conf"),
                render_cyrus_conf(&dir, plain_port, tls_port),
            )?;
            Ok((plain_port, tls_port))
        };
        let (plain_port, tls_port) = setup().map_err(fail)?;
        let namespace = can_unshare();
        let syslog = if namespace {
            Some(SyslogReader::start(&dir).map_err(fail)?)
        } else {
            None
        };

        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(WRAPPER)
            .arg("cyrus-wrapper")
            .arg(&dir)
            .arg(if keep { "1" } else { "0" })
            .arg(if namespace { "1" } else { "0" })
            .arg(bin_dir().join("master"))
            .arg("-C")
            .arg(dir.join("imapd.conf"))
            .arg("-M")
            .arg(dir.join("cyrus.conf"))
            .arg("-p")
            .arg(dir.join("master.pid"))
            .env("NS_SETUP", NS_SETUP)
            .env("LD_LIBRARY_PATH", lib_dir())
            // Its own process group: on shutdown, master signals its whole
            // group, which would otherwise include every other Cyrus of this
            // test process.
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = command.spawn().map_err(fail)?;
        let Some(stdin) = child.stdin.take() else {
            let _ = child.kill();
            return Err(fail(io::Error::other("no stdin pipe to the wrapper")));
        };

        let mut cyrus = Cyrus {
            dir: dir.clone(),
            plain: SocketAddr::from(([127, 0, 0, 1], plain_port)),
            tls: SocketAddr::from(([127, 0, 0, 1], tls_port)),
            pki,
            identity: identity.clone(),
            version: String::new(),
            keep,
            wrapper: Mutex::new(Some((child, stdin))),
            syslog: Mutex::new(syslog),
            sasldb: Mutex::new(()),
        };
        match cyrus.wait_ready(started + START_TIMEOUT) {
            Ok(version) => {
                if keep {
                    eprintln!("test-support: Cyrus directory kept: {}", dir.display());
                }
                cyrus.version = version;
                Ok(cyrus)
            }
            Err(e) => {
                let log = cyrus.log();
                let port_in_use = log.contains("in use");
                let err = io::Error::new(
                    e.kind(),
                    format!(
                        "Cyrus did not start in {}: {e}\n--- log ---\n{log}",
                        dir.display()
                    ),
                );
                drop(cyrus);
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
            Some(Ok(Some(status))) => Some(format!("master exited ({status})")),
            Some(Err(e)) => Some(format!("waiting for master: {e}")),
            Some(Ok(None)) => None,
            None => Some("master was stopped".into()),
        }
    }

    /// Waits until both POP3 listeners greet and LMTP answers; returns the
    /// version from the greeting.
    fn wait_ready(&self, deadline: Instant) -> io::Result<String> {
        let mut version = String::new();
        for what in ["plain POP3", "POP3S", "LMTP"] {
            loop {
                if let Some(why) = self.wrapper_exited() {
                    return Err(io::Error::other(why));
                }
                let result = match what {
                    "plain POP3" => self.probe(false),
                    "POP3S" => self.probe(true),
                    _ => self.probe_lmtp().map(|()| String::new()),
                };
                let last_err = match result {
                    Ok(greeting) => {
                        if let Some(v) = version_of(&greeting) {
                            version = v;
                        }
                        break;
                    }
                    Err(e) => e.to_string(),
                };
                if Instant::now() >= deadline {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "{what} not ready within {START_TIMEOUT:?} (last error: {last_err})"
                        ),
                    ));
                }
                thread::sleep(Duration::from_millis(25));
            }
        }
        Ok(version)
    }

    /// Connects once, checks for a `+OK` greeting and returns it.
    fn probe(&self, tls: bool) -> io::Result<String> {
        let addr = if tls { self.tls } else { self.plain };
        let tcp = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
        tcp.set_read_timeout(Some(Duration::from_secs(3)))?;
        tcp.set_write_timeout(Some(Duration::from_secs(3)))?;
        let line = if tls {
            let name = ServerName::try_from("localhost").map_err(io::Error::other)?;
            let conn = rustls::ClientConnection::new(self.pki.rustls_client_config(), name)
                .map_err(io::Error::other)?;
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
        let line = String::from_utf8_lossy(&line).into_owned();
        if line.starts_with("+OK") {
            Ok(line)
        } else {
            Err(io::Error::other(format!("unexpected greeting {line:?}")))
        }
    }

    fn probe_lmtp(&self) -> io::Result<()> {
        let mut lmtp = Lmtp::connect(&self.lmtp_path())?;
        lmtp.command("QUIT", 221)?;
        Ok(())
    }

    fn lmtp_path(&self) -> PathBuf {
        self.dir.join("run/lmtp")
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

    /// The PKI whose [`TestPki::server`] certificate Cyrus presents.
    pub fn pki(&self) -> &TestPki {
        &self.pki
    }

    /// A rustls client configuration that trusts [`Cyrus::ca_der`].
    pub fn rustls_client_config(&self) -> Arc<rustls::ClientConfig> {
        self.pki.rustls_client_config()
    }

    /// The version in the greeting, e.g. `3.6.1-Debian-3.6.1-4+deb12u5`.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The temporary directory (`imapd.conf`, `cyrus.conf`, `config/`,
    /// `spool/`, `sasldb2`, `syslog.log`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Cyrus' syslog so far (empty without root, see the
    /// [module docs](self)), plus anything `master` wrote to stderr.
    pub fn log(&self) -> String {
        let mut log = fs::read_to_string(self.dir.join("syslog.log")).unwrap_or_default();
        let stderr = fs::read_to_string(self.dir.join("master.stderr")).unwrap_or_default();
        if !stderr.trim().is_empty() {
            log.push_str("--- master stderr ---\n");
            log.push_str(&stderr);
        }
        log
    }

    /// Creates a SASL user with this password; its INBOX appears on first
    /// login or delivery.
    ///
    /// `name` must be 1–64 characters from `[A-Za-z0-9_-]`, not start with
    /// `-`, and not exist yet (Cyrus lowercases user names, so names that
    /// differ only in case are the same user; `.` would be a hierarchy
    /// separator). The password must not contain CR, LF or NUL. Panics on
    /// invalid input or when `saslpasswd2` fails.
    pub fn add_user(&self, name: &str, password: &str) -> CyrusMailbox {
        assert!(
            !name.is_empty()
                && name.len() <= 64
                && !name.starts_with('-')
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-')),
            "invalid Cyrus test user name {name:?}"
        );
        assert!(
            !password.contains(['\r', '\n', '\0']),
            "password for {name:?} must not contain CR, LF or NUL"
        );
        let Some(saslpasswd2) = saslpasswd2() else {
            panic!("saslpasswd2 not found (package sasl2-bin; run scripts/install-cyrus.sh)");
        };
        let sasldb = self.dir.join("sasldb2");
        let result = {
            let _guard = self.sasldb.lock().unwrap_or_else(PoisonError::into_inner);
            let mut command = Command::new(saslpasswd2);
            command
                .args(["-p", "-c", "-u", "localhost", "-f"])
                .arg(&sasldb)
                .arg(name);
            run_with_timeout(command, password.as_bytes(), HELPER_TIMEOUT)
                .and_then(|_| chown(&sasldb, self.identity.owner))
        };
        if let Err(e) = result {
            panic!("could not create Cyrus test user {name:?}: {e}");
        }
        CyrusMailbox {
            user: name.to_string(),
            password: password.to_string(),
            lmtp: self.lmtp_path(),
            conf: self.dir.join("imapd.conf"),
            deliveries: Mutex::new(()),
        }
    }

    /// Stops the server now (also done on drop).
    fn shutdown(&self) {
        let taken = self
            .wrapper
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some((mut child, stdin)) = taken {
            drop(stdin); // EOF: the wrapper stops master and removes the dir
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() < deadline => {
                        thread::sleep(Duration::from_millis(20));
                    }
                    Ok(None) => {
                        if let Ok(pid) = fs::read_to_string(self.dir.join("master.pid")) {
                            let mut kill = Command::new("kill");
                            kill.args(["-KILL", pid.trim()]);
                            let _ = run_with_timeout(kill, b"", HELPER_TIMEOUT);
                        }
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                }
            }
        }
        if let Some(mut syslog) = self
            .syslog
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            syslog.stop();
        }
        if !self.keep && self.dir.exists() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

impl Drop for Cyrus {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// `3.6.1-Debian-...` from `+OK localhost Cyrus POP3 3.6.1-Debian-... server
/// ready <...>`.
fn version_of(greeting: &str) -> Option<String> {
    let rest = greeting.split("Cyrus POP3 ").nth(1)?;
    rest.split_whitespace().next().map(str::to_string)
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
            return Err(io::Error::other("line too long"));
        }
    }
    Ok(line)
}

/// A minimal LMTP client (RFC 2033) over Cyrus' Unix socket.
struct Lmtp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Lmtp {
    fn connect(path: &Path) -> io::Result<Lmtp> {
        let stream = UnixStream::connect(path)?;
        stream.set_read_timeout(Some(LMTP_TIMEOUT))?;
        stream.set_write_timeout(Some(LMTP_TIMEOUT))?;
        let writer = stream.try_clone()?;
        let mut lmtp = Lmtp {
            reader: BufReader::new(stream),
            writer,
        };
        lmtp.expect(220)?;
        Ok(lmtp)
    }

    /// Reads a (multi-line) reply and checks its code.
    fn expect(&mut self, code: u16) -> io::Result<String> {
        let mut text = String::new();
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line)? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("LMTP closed after {text:?}"),
                ));
            }
            text.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                break;
            }
            if text.len() > 64 * 1024 {
                return Err(io::Error::other("LMTP reply too long"));
            }
        }
        if text.starts_with(&code.to_string()) {
            Ok(text)
        } else {
            Err(io::Error::other(format!(
                "LMTP: expected {code}, got {:?}",
                text.trim_end()
            )))
        }
    }

    fn command(&mut self, line: &str, code: u16) -> io::Result<String> {
        self.writer.write_all(line.as_bytes())?;
        self.writer.write_all(b"\r\n")?;
        self.expect(code)
    }

    /// Delivers `message` (CRLF lines) to `user`.
    fn deliver(&mut self, user: &str, message: &[u8]) -> io::Result<()> {
        self.command("LHLO localhost", 250)?;
        self.command("MAIL FROM:<>", 250)?;
        self.command(&format!("RCPT TO:<{user}>"), 250)?;
        self.command("DATA", 354)?;
        let mut data = Vec::with_capacity(message.len() + 16);
        for line in message.split_inclusive(|&b| b == b'\n') {
            if line.starts_with(b".") {
                data.push(b'.');
            }
            data.extend_from_slice(line);
        }
        if !data.is_empty() && !data.ends_with(b"\r\n") {
            data.extend_from_slice(b"\r\n");
        }
        data.extend_from_slice(b".\r\n");
        self.writer.write_all(&data)?;
        self.expect(250)?;
        self.command("QUIT", 221)?;
        Ok(())
    }
}

/// A test user of a [`Cyrus`]; made by [`Cyrus::add_user`].
#[derive(Debug)]
pub struct CyrusMailbox {
    user: String,
    password: String,
    lmtp: PathBuf,
    conf: PathBuf,
    /// One delivery at a time, so the newest file is the one just stored.
    deliveries: Mutex<()>,
}

impl CyrusMailbox {
    /// The user name to log in with.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The (plaintext) password.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// Delivers `message` over LMTP and returns it as Cyrus stored it: the
    /// bytes `RETR` returns (Cyrus adds `Return-Path`, `Received`,
    /// `X-Cyrus-Session-Id` and `X-Sieve` headers in front, and `Message-ID`
    /// and `Date` when missing; see the [module docs](self)). Messages get
    /// increasing message numbers in delivery order. Give CRLF line endings
    /// (LMTP) and end with CRLF; a lone `.` line is dot-stuffed here.
    /// Panics when delivery fails.
    pub fn add_message(&self, message: &[u8]) -> Vec<u8> {
        let _guard = self
            .deliveries
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let result = Lmtp::connect(&self.lmtp)
            .and_then(|mut lmtp| lmtp.deliver(&self.user, message))
            .and_then(|()| self.newest_message());
        match result {
            Ok(bytes) => bytes,
            Err(e) => panic!("could not deliver a message to {}: {e}", self.user),
        }
    }

    /// The mailbox's directory in the spool (`mbpath`).
    fn spool_dir(&self) -> io::Result<PathBuf> {
        let mut command = Command::new(bin_dir().join("mbpath"));
        command
            .arg("-C")
            .arg(&self.conf)
            .arg(format!("user.{}", self.user))
            .env("LD_LIBRARY_PATH", lib_dir());
        let out = run_with_timeout(command, b"", HELPER_TIMEOUT)?;
        let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if path.is_empty() {
            return Err(io::Error::other("mbpath printed nothing"));
        }
        Ok(PathBuf::from(path))
    }

    /// The message files (`<uid>.`) in UID order.
    fn message_files(&self) -> io::Result<Vec<(u64, PathBuf)>> {
        let mut files = Vec::new();
        for entry in fs::read_dir(self.spool_dir()?)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(uid) = name.strip_suffix('.').and_then(|n| n.parse::<u64>().ok()) {
                files.push((uid, entry.path()));
            }
        }
        files.sort();
        Ok(files)
    }

    fn newest_message(&self) -> io::Result<Vec<u8>> {
        match self.message_files()?.pop() {
            Some((_, path)) => fs::read(path),
            None => Err(io::Error::other("no message file after delivery")),
        }
    }

    /// The stored messages, in message-number order.
    pub fn messages(&self) -> Vec<Vec<u8>> {
        let result = self
            .message_files()
            .and_then(|files| files.into_iter().map(|(_, p)| fs::read(p)).collect());
        match result {
            Ok(messages) => messages,
            Err(e) => panic!("could not read the messages of {}: {e}", self.user),
        }
    }

    /// Number of stored messages (0 before the INBOX exists).
    pub fn count(&self) -> usize {
        self.message_files().map(|f| f.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_from_greeting() {
        assert_eq!(
            version_of("+OK localhost Cyrus POP3 3.6.1-Debian-3.6.1-4+deb12u5 server ready <1.2@localhost>\r\n")
                .as_deref(),
            Some("3.6.1-Debian-3.6.1-4+deb12u5")
        );
        assert_eq!(version_of("+OK Dovecot ready."), None);
    }

    #[test]
    fn configs_mention_the_essentials() {
        let identity = Identity {
            user: "nobody".into(),
            group: "nogroup".into(),
            owner: Some((65534, 65534)),
        };
        let imapd = render_imapd_conf(Path::new("/tmp/x"), &identity);
        for needle in [
            "configdirectory: /tmp/x/config",
            "cyrus_user: nobody",
            "sasl_sasldb_path: /tmp/x/sasldb2",
            "SCRAM-SHA-256-PLUS",
            "tls_server_cert: /tmp/x/ssl/server.pem",
            "autocreate_post: 1",
        ] {
            assert!(imapd.contains(needle), "missing {needle:?} in\n{imapd}");
        }
        let cyrus = render_cyrus_conf(Path::new("/tmp/x"), 1110, 1995);
        for needle in [
            "listen=\"127.0.0.1:1110\"",
            "listen=\"127.0.0.1:1995\"",
            "pop3d -C /tmp/x/imapd.conf -s\"",
            "listen=\"/tmp/x/run/lmtp\"",
        ] {
            assert!(cyrus.contains(needle), "missing {needle:?} in\n{cyrus}");
        }
    }
}
