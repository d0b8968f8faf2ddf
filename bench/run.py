#!/usr/bin/env python3
"""Benchmarks the POP3 transports against a real Dovecot on loopback.

    python3 bench/run.py                 # full run (a few minutes)
    python3 bench/run.py --quick         # small sizes, one repeat (~1 minute)
    python3 bench/run.py --only latency  # one phase: throughput, latency, memory

Phases (each starts its own `local-dovecot`, see test-support/src/bin):

* throughput: 2000 x 50 KiB messages, each client retrieves all of them, over
  plain TCP and implicit TLS; wall time, client CPU (user+sys), peak RSS.
  Clients: the `pop3-bench` binary (bench/src/main.rs) with `--runtime
  blocking`, `tokio` and `smol` (reported as pop3-blocking, pop3-tokio,
  pop3-smol), Python's poplib (bench/poplib_fetch.py), and one curl process
  with the URL glob pop3://host:port/[1-N] (curl reuses the connection).
* latency: 1000 x 10 KiB through bench/latency_proxy.py (10 ms each way);
  measured time against the round-trip bound, and the speed-up over poplib.
* memory: one 1 GiB message written to a file with `retr_to`; peak RSS.
* fetch: the `pop3` command (`pop3 fetch --maildir`) next to Debian's mpop
  (`delivery maildir`), both keeping the messages on the server, each run
  into a new Maildir with no state: 1000 x 2 KB over implicit TLS locally
  and through bench/latency_proxy.py (10 ms each way, where pop3 also runs
  with AUTH PLAIN), 2000 x 50 KiB over implicit TLS locally, and 1000 x 2 KB
  into an mbox (`--mbox`, `delivery mbox`); wall time, client CPU, peak RSS, and syncs
  per message (fsync, fdatasync, syncfs and sync_file_range calls counted
  by `strace -f -c` in one more, untimed run). Not run by default: `--only
  fetch`. mpop and strace are installed with apt-get when missing (as root).

Medians of --repeats runs are reported (each column separately). Results go
to stdout as Markdown, and to --out-md / --out-json. Standard library only;
needs cargo (unless --no-build), curl and Dovecot (installed by test-support
when missing and running as root).
"""

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
PASSWORD_ENV = "POP3_BENCH_PASSWORD"
MiB = 1024 * 1024

# Client name in the report -> `pop3-bench --runtime` value.
RUST_CLIENTS = {
    "pop3-blocking": "blocking",
    "pop3-tokio": "tokio",
    "pop3-smol": "smol",
}
BENCH_EXE = os.path.join(TARGET, "release", "pop3-bench")
POP3_EXE = os.path.join(TARGET, "release", "pop3")
SYNC_CALLS = "fsync,fdatasync,syncfs,sync_file_range"


def log(*args):
    print(*args, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# processes


class Measured:
    """One finished child process: wall time, rusage, output."""

    def __init__(self, argv, wall, rusage, status, stdout, stderr):
        self.argv = argv
        self.wall = wall
        self.cpu = rusage.ru_utime + rusage.ru_stime
        self.user = rusage.ru_utime
        self.sys = rusage.ru_stime
        self.maxrss_kib = rusage.ru_maxrss  # KiB on Linux
        self.status = status
        self.stdout = stdout
        self.stderr = stderr

    @property
    def ok(self):
        return self.status == 0

    def json(self):
        for line in reversed(self.stdout.splitlines()):
            line = line.strip()
            if line.startswith("{"):
                return json.loads(line)
        return {}


GNU_TIME = "/usr/bin/time"


def run_measured(argv, env=None, timeout=600, stdout_to_null=False):
    """Runs argv as a child and returns a Measured.

    CPU time comes from os.wait4. Peak RSS comes from GNU time (`%M`) when
    /usr/bin/time exists: a child forked by Python inherits the harness's
    RSS into its ru_maxrss (Linux keeps the pre-exec high-water mark), so
    wait4's figure would be the harness's size, not the client's. GNU time
    is a ~1 MiB process, so what it reports is the client's own peak.
    """
    out = tempfile.TemporaryFile()
    err = tempfile.TemporaryFile()
    rss_file = None
    if os.path.exists(GNU_TIME):
        fd, rss_file = tempfile.mkstemp(prefix="pop3-bench-rss-")
        os.close(fd)
        argv_run = [GNU_TIME, "-f", "%M", "-o", rss_file, *argv]
    else:
        argv_run = list(argv)
    started = time.perf_counter()
    proc = subprocess.Popen(
        argv_run,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL if stdout_to_null else out,
        stderr=err,
        env=env,
        start_new_session=True,
    )

    def kill():
        try:
            os.killpg(proc.pid, 9)
        except OSError:
            pass

    killer = threading.Timer(timeout, kill)
    killer.start()
    try:
        _, status, rusage = os.wait4(proc.pid, 0)
    finally:
        killer.cancel()
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    out.seek(0)
    err.seek(0)
    m = Measured(
        argv,
        wall,
        rusage,
        proc.returncode,
        out.read().decode(errors="replace"),
        err.read().decode(errors="replace"),
    )
    if rss_file:
        with open(rss_file) as f:
            numbers = re.findall(r"^(\d+)$", f.read(), re.M)
        os.remove(rss_file)
        m.maxrss_kib = int(numbers[-1]) if numbers else float("nan")
    return m


class Background:
    """A helper process that prints one JSON line and runs until stdin closes."""

    def __init__(self, argv, what):
        self.what = what
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            raise SystemExit(f"{what} did not start (exit {self.proc.returncode})")
        self.info = json.loads(line)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def local_dovecot(extra, ca_out):
    argv = [os.path.join(TARGET, "release", "local-dovecot"), "--ca-out", ca_out] + extra
    started = time.perf_counter()
    bg = Background(argv, "local-dovecot")
    log(f"  local-dovecot {' '.join(extra)}: ready in {time.perf_counter() - started:.1f} s")
    return bg


def latency_proxy(upstream_port, delay_ms):
    argv = [
        sys.executable,
        os.path.join(BENCH, "latency_proxy.py"),
        "--upstream",
        f"127.0.0.1:{upstream_port}",
        "--delay-ms",
        str(delay_ms),
    ]
    return Background(argv, "latency proxy")


# ---------------------------------------------------------------------------
# clients


def client_env(server):
    env = dict(os.environ)
    env[PASSWORD_ENV] = server["password"]
    return env


def rust_argv(client, server, port, tls, extra=()):
    return [
        BENCH_EXE,
        "--runtime", RUST_CLIENTS[client],
        "--host", server["host"],
        "--port", str(port),
        "--tls", tls,
        "--ca", server["ca"],
        "--user", server["user"],
        "--password-env", PASSWORD_ENV,
        *extra,
    ]


def poplib_argv(server, port, tls, extra=()):
    return [
        sys.executable,
        os.path.join(BENCH, "poplib_fetch.py"),
        "--host", server["host"],
        "--port", str(port),
        "--tls", tls,
        "--ca", server["ca"],
        "--user", server["user"],
        "--password-env", PASSWORD_ENV,
        *extra,
    ]


def curl_argv(server, port, tls, path, stderr_sizes=True):
    """One curl process; `path` is a message number or a URL glob like [1-N]."""
    scheme = "pop3s" if tls == "implicit" else "pop3"
    argv = [
        "curl",
        "--silent",
        "--show-error",
        "--fail",
        "--user", f"{server['user']}:{server['password']}",
        f"{scheme}://{server['host']}:{port}/{path}",
    ]
    if tls == "implicit":
        argv += ["--ssl-reqd", "--cacert", server["ca"]]
    if stderr_sizes:
        argv += ["--write-out", "%{stderr}%{size_download}\\n"]
    return argv


def run_client(name, server, tls, count, extra=(), timeout=600):
    """Runs one client over the whole mailbox; returns a result dict."""
    port = server["tls_port"] if tls == "implicit" else server["plain_port"]
    env = client_env(server)
    if name in RUST_CLIENTS:
        m = run_measured(rust_argv(name, server, port, tls, extra), env, timeout)
        reported = m.json()
    elif name == "poplib":
        m = run_measured(poplib_argv(server, port, tls, extra), env, timeout)
        reported = m.json()
    elif name == "curl":
        m = run_measured(
            curl_argv(server, port, tls, f"[1-{count}]"), env, timeout, stdout_to_null=True
        )
        # curl's size_download is wrong for POP3 (it misses the part of a
        # body that arrives with the +OK line): count the transfers here, and
        # check the bytes once with check_curl_bytes.
        done = re.findall(r"^(\d+)$", m.stderr, re.M)
        reported = {"messages": len(done), "bytes": CURL_BYTES.get((port, tls))}
    else:
        raise ValueError(name)
    if not m.ok:
        raise RuntimeError(f"{name} ({tls}) failed, exit {m.status}:\n{m.stderr.strip()[-2000:]}")
    return {
        "client": name,
        "tls": tls,
        "wall": m.wall,
        "cpu": m.cpu,
        "user": m.user,
        "sys": m.sys,
        "maxrss_mib": m.maxrss_kib / 1024,
        "messages": reported.get("messages"),
        "bytes": reported.get("bytes"),
        "seconds": reported.get("seconds"),
    }


CURL_BYTES = {}


def check_curl_bytes(server, count, tmp):
    """One untimed curl run per mode into a file, to count the bytes."""
    for tls in ("none", "implicit"):
        port = server["tls_port"] if tls == "implicit" else server["plain_port"]
        path = os.path.join(tmp, "curl.out")
        argv = curl_argv(server, port, tls, f"[1-{count}]", stderr_sizes=False)
        with open(path, "wb") as out:
            r = subprocess.run(argv, stdout=out, stderr=subprocess.PIPE, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"curl ({tls}) failed: {r.stderr.strip()}")
        CURL_BYTES[(port, tls)] = os.path.getsize(path)
        os.remove(path)


def medians(runs):
    out = dict(runs[0])
    for key in ("wall", "cpu", "user", "sys", "maxrss_mib", "seconds"):
        values = [r[key] for r in runs if r.get(key) is not None]
        out[key] = statistics.median(values) if values else None
    out["runs"] = len(runs)
    out["walls"] = [round(r["wall"], 4) for r in runs]
    return out


# ---------------------------------------------------------------------------
# build and environment


def build(clients, no_build, fetch_phase=False):
    """Builds local-dovecot and pop3-bench (the one binary for all three
    transports), and the `pop3` command for the fetch phase; returns the
    Rust clients that built."""
    env = dict(os.environ, CARGO_TARGET_DIR=TARGET)
    rust = [c for c in clients if c in RUST_CLIENTS]
    targets = [("test-support", ["--bin", "local-dovecot"])]
    if fetch_phase:
        targets.append(("pop3-cli", ["--bin", "pop3"]))
    if rust:
        targets.append(("pop3-bench", []))
    for package, what in targets:
        if not no_build:
            log(f"building {' '.join([package, *what])} (release)")
            r = subprocess.run(
                ["cargo", "build", "--release", "--quiet", "-p", package, *what],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
            )
            if r.returncode != 0:
                if package in ("test-support", "pop3-cli"):
                    raise SystemExit(f"{package} does not build:\n{r.stderr}")
                log(f"  {package} does not build; skipping {', '.join(rust)}:\n"
                    f"{r.stderr.strip()[-1500:]}")
                return []
        if package == "test-support":
            if not os.path.exists(os.path.join(TARGET, "release", "local-dovecot")):
                raise SystemExit("local-dovecot is not built (drop --no-build)")
    return rust if rust and os.path.exists(BENCH_EXE) else []


def command_text(argv):
    try:
        return subprocess.run(argv, capture_output=True, text=True).stdout.strip()
    except OSError:
        return "n/a"


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def cpu_snapshot():
    """{pid: (comm, ppid, cpu ticks)} of every process, from /proc/*/stat."""
    procs = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        procs[int(pid)] = (comm, int(fields[1]), int(fields[11]) + int(fields[12]))
    return procs


def others_cpu(before, after):
    """CPU seconds used between two snapshots by processes that are not this
    harness or its descendants (other people's builds, tests, fuzzers), and
    the busiest of them."""
    me = os.getpid()

    def ours(pid):
        seen = set()
        while pid and pid not in seen:
            if pid == me:
                return True
            seen.add(pid)
            pid = after.get(pid, before.get(pid, ("", 0, 0)))[1]
        return False

    tick = os.sysconf("SC_CLK_TCK")
    used = {}
    for pid, (comm, _, ticks) in after.items():
        if ours(pid):
            continue
        delta = ticks - before[pid][2] if pid in before else ticks
        if delta > 0:
            used[comm] = used.get(comm, 0) + delta / tick
    total = sum(used.values())
    top = sorted(used.items(), key=lambda kv: -kv[1])[:3]
    return round(total, 1), [f"{c} {t:.1f}s" for c, t in top if t >= 0.5]


def machine():
    info = {"nproc": os.cpu_count(), "kernel": platform.release()}
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"^model name\s*:\s*(.*)$", f.read(), re.M)
            info["cpu"] = m.group(1) if m else "unknown"
    except OSError:
        info["cpu"] = "unknown"
    with open("/proc/meminfo") as f:
        m = re.search(r"^MemTotal:\s*(\d+) kB", f.read(), re.M)
        info["memory_gib"] = round(int(m.group(1)) / 1024 / 1024, 1) if m else None
    info["rustc"] = command_text(["rustc", "--version"])
    info["dovecot"] = command_text(["/usr/sbin/dovecot", "--version"])
    info["python"] = platform.python_version()
    info["curl"] = command_text(["curl", "--version"]).splitlines()[0] if shutil.which("curl") else "n/a"
    return info


# ---------------------------------------------------------------------------
# phases


def phase_throughput(args, clients, tmp):
    log(f"throughput: {args.messages} x {args.size} bytes, {args.repeats} repeats")
    rows = []
    with local_dovecot(
        ["--messages", str(args.messages), "--size", str(args.size)], os.path.join(tmp, "ca.pem")
    ) as dovecot:
        server = dovecot.info
        # Warm-up: Dovecot builds its index on the first session.
        warm = next((c for c in clients if c in RUST_CLIENTS), "poplib")
        run_client(warm, server, "none", args.messages)
        if "curl" in clients:
            check_curl_bytes(server, args.messages, tmp)
        runs = {}
        for rep in range(args.repeats):
            for tls in ("none", "implicit"):
                for client in clients:
                    r = run_client(client, server, tls, args.messages)
                    runs.setdefault((client, tls), []).append(r)
                    log(
                        f"  [{rep + 1}/{args.repeats}] {client:14} {tls:8} "
                        f"wall {r['wall']:.3f} s cpu {r['cpu']:.3f} s rss {r['maxrss_mib']:.1f} MiB "
                        f"{r['messages']} msgs {r['bytes']} B"
                    )
        expected = args.messages
        for (client, tls), rs in runs.items():
            m = medians(rs)
            m["complete"] = m["messages"] == expected
            rows.append(m)
    return rows


def phase_latency(args, clients, tmp):
    rtt = 2 * args.delay_ms / 1000.0
    count = args.latency_messages
    log(f"latency: {count} x {args.latency_size} bytes through a {args.delay_ms} ms/way proxy")
    rust = [c for c in clients if c in RUST_CLIENTS]
    result = {"rtt_s": rtt, "messages": count, "size": args.latency_size, "rows": []}
    with local_dovecot(
        ["--messages", str(count), "--size", str(args.latency_size)],
        os.path.join(tmp, "ca-latency.pem"),
    ) as dovecot:
        server = dovecot.info
        if rust:
            run_client(rust[0], server, "none", count)  # warm-up

        # Bandwidth: proxy-less throughput of each client on this mailbox.
        bandwidth = {}
        for client in rust:
            rs = [run_client(client, server, "none", count) for _ in range(args.repeats)]
            m = medians(rs)
            bandwidth[client] = m["bytes"] / m["seconds"]
            log(f"  {client:14} without proxy: {m['seconds']:.4f} s, {bandwidth[client] / MiB:.0f} MiB/s")
        result["bandwidth"] = bandwidth

        with latency_proxy(server["plain_port"], args.delay_ms) as proxy:
            via = dict(server, plain_port=proxy.info["port"])
            result["measured_rtt_s"] = measure_rtt(via)
            log(f"  round trip through the proxy (NOOP): {result['measured_rtt_s'] * 1000:.1f} ms")

            # poplib: one command per round trip. Fixed cost (login, LIST,
            # QUIT) from --limit 0, per-message cost from --limit N.
            pop_n = min(args.poplib_latency_messages, count)
            pop_fixed = medians(
                [run_client("poplib", via, "none", 0, ["--limit", "0"]) for _ in range(args.repeats)]
            )
            pop_n_run = medians(
                [
                    run_client("poplib", via, "none", pop_n, ["--limit", str(pop_n)])
                    for _ in range(args.repeats)
                ]
            )
            per_msg = (pop_n_run["wall"] - pop_fixed["wall"]) / pop_n if pop_n else 0
            pop_est = pop_fixed["wall"] + per_msg * count
            result["poplib"] = {
                "measured_messages": pop_n,
                "wall_measured": pop_n_run["wall"],
                "wall_fixed": pop_fixed["wall"],
                "per_message": per_msg,
                "wall_for_all": pop_est,
                "extrapolated": pop_n != count,
            }
            log(
                f"  poplib: {pop_n} msgs {pop_n_run['wall']:.3f} s, fixed {pop_fixed['wall']:.3f} s "
                f"-> {count} msgs {'~' if pop_n != count else ''}{pop_est:.2f} s"
            )

            # Round trips as counted by the brief: connect, greeting, CAPA,
            # USER, PASS, CAPA, LIST, + 2 (the pipelined RETRs and QUIT).
            bound_rtts = 1 + 1 + 1 + 2 + 1 + 1 + 2
            # What pop3-bench actually waits for: greeting (half a round
            # trip: the proxy accepts locally), USER, PASS, CAPA, LIST, the
            # RETR batch, QUIT.
            tight_rtts = 0.5 + 2 + 1 + 1 + 1 + 1
            result["bound_rtts"] = bound_rtts
            result["tight_rtts"] = tight_rtts
            for client in rust:
                for window in args.windows:
                    extra = ["--limit", str(count)]
                    if window != "default":
                        extra += ["--window", str(window)]
                    rs = [run_client(client, via, "none", count, extra) for _ in range(args.repeats)]
                    m = medians(rs)
                    transfer = m["bytes"] / bandwidth[client]
                    bound = bound_rtts * rtt + transfer
                    tight = tight_rtts * rtt + transfer
                    row = {
                        "client": client,
                        "window": window,
                        "messages": m["messages"],
                        "bytes": m["bytes"],
                        "wall": m["wall"],
                        "seconds": m["seconds"],
                        "walls": m["walls"],
                        "transfer": transfer,
                        "bound": bound,
                        "tight_bound": tight,
                        "ratio": m["wall"] / bound,
                        "ratio_tight": m["wall"] / tight,
                        "speedup_vs_poplib": pop_est / m["wall"],
                    }
                    result["rows"].append(row)
                    log(
                        f"  {client:14} window {window:>7}: {m['wall']:.3f} s, bound {bound:.3f} s, "
                        f"ratio {row['ratio']:.2f}, x{row['speedup_vs_poplib']:.0f} vs poplib"
                    )
    return result


def measure_rtt(server):
    """Median time of a NOOP round trip through the proxy (poplib, 5 tries)."""
    import poplib

    pop = poplib.POP3(server["host"], server["plain_port"])
    try:
        pop.user(server["user"])
        pop.pass_(server["password"])
        samples = []
        for _ in range(5):
            t = time.perf_counter()
            pop.noop()
            samples.append(time.perf_counter() - t)
        pop.quit()
    finally:
        pop.close()
    return statistics.median(samples)


def phase_memory(args, clients, tmp):
    size = args.big_size
    log(f"memory: one message of {size} bytes, retr_to a file")
    rows = []
    out_path = os.path.join(tmp, "big.eml")
    started = time.perf_counter()
    with local_dovecot(
        ["--big-message", str(size)], os.path.join(tmp, "ca-memory.pem")
    ) as dovecot:
        log(f"  wrote the message in {time.perf_counter() - started:.1f} s")
        server = dovecot.info
        rust = [c for c in clients if c in RUST_CLIENTS]
        for client in rust + (["curl"] if "curl" in clients else []):
            for tls in ("none", "implicit"):
                port = server["tls_port"] if tls == "implicit" else server["plain_port"]
                if client == "curl":
                    argv = curl_argv(server, port, tls, "1", stderr_sizes=False)
                    argv += ["--output", out_path]
                    m = run_measured(argv, client_env(server))
                    reported = {}
                else:
                    argv = rust_argv(
                        client, server, port, tls, ["--retr-to-file", out_path, "--msg", "1"]
                    )
                    m = run_measured(argv, client_env(server))
                    reported = m.json()
                if not m.ok:
                    raise RuntimeError(f"{client} ({tls}) failed:\n{m.stderr.strip()[-2000:]}")
                written = os.path.getsize(out_path)
                os.remove(out_path)
                row = {
                    "client": client,
                    "tls": tls,
                    "bytes": written,
                    "reported_bytes": reported.get("bytes"),
                    "wall": m.wall,
                    "cpu": m.cpu,
                    "maxrss_mib": m.maxrss_kib / 1024,
                    "complete": written == size,
                }
                rows.append(row)
                log(
                    f"  {client:14} {tls:8} {written} B in {m.wall:.2f} s, "
                    f"peak RSS {row['maxrss_mib']:.1f} MiB"
                )
    return rows


def ensure_tool(command, package):
    """Installs `package` with apt-get when `command` is missing (as root)."""
    if shutil.which(command):
        return True
    if os.geteuid() == 0 and shutil.which("apt-get"):
        log(f"installing {package} (apt-get)")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "install", "-y", "-q", package], env=env,
                       stdout=subprocess.DEVNULL)
    return shutil.which(command) is not None


def new_mbox(tmp, name):
    """A path for a new mbox file named `name` under tmp."""
    return os.path.join(tmp, name + ".mbox")


def stored_messages(path, mbox):
    """Messages in the Maildir `path` (its new/), or in the mbox file."""
    if not mbox:
        return len(os.listdir(os.path.join(path, "new")))
    with open(path, "rb") as f:
        return sum(1 for line in f if line.startswith(b"From "))


def new_maildir(tmp, name):
    """A new, empty Maildir named `name` under tmp (never reused: see
    phase_fetch on why nothing is deleted between runs)."""
    path = os.path.join(tmp, name)
    for sub in ("tmp", "new", "cur"):
        os.makedirs(os.path.join(path, sub))
    return path


PLAIN_LOGIN = "pop3 (auth plain)"


def slug(client):
    return re.sub(r"[^a-z0-9]+", "-", client).strip("-")


def fetch_argv(client, server, port, maildir, tmp, mbox=False):
    """The command line of one fetch of the whole mailbox into `maildir`
    (with `mbox`, into the mbox file `maildir`), keeping the messages on the
    server and starting with no state."""
    if client.startswith("pop3"):
        # "pop3 (auth plain)": AUTH PLAIN, one round trip, where the
        # default against Dovecot is SCRAM-SHA-256 (three).
        auth = ["--auth", "plain"] if client == PLAIN_LOGIN else []
        return [
            POP3_EXE,
            f"pop3s://{server['user']}@{server['host']}:{port}",
            "--password-env", PASSWORD_ENV,
            "--ca-file", server["ca"],
            "--config", os.devnull,
            *auth,
            "fetch", "--keep", "--mbox" if mbox else "--maildir", maildir,
        ]
    # mpop: an account file of its own (mode 0600: it holds the password),
    # and a UIDL file next to the Maildir so that every run starts afresh.
    conf = os.path.join(tmp, "mpoprc")
    with open(os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        f.write(
            "account bench\n"
            f"host {server['host']}\nport {port}\n"
            "tls on\ntls_starttls off\n"
            f"tls_trust_file {server['ca']}\n"
            f"user {server['user']}\npasswordeval echo \"${PASSWORD_ENV}\"\n"
            f"delivery {'mbox' if mbox else 'maildir'} {maildir}\n"
            f"uidls_file {maildir}.mpop-uidls\n"
            "keep on\nonly_new on\n"
        )
    try:
        os.remove(maildir + ".mpop-uidls")
    except FileNotFoundError:
        pass
    return ["mpop", "--file", conf, "--quiet", "bench"]


def count_syncs(argv, env):
    """Sync system calls of one run, from `strace -f -c`."""
    fd, out = tempfile.mkstemp(prefix="pop3-bench-strace-")
    os.close(fd)
    r = subprocess.run(
        ["strace", "-f", "-c", "-o", out, "-e", f"trace={SYNC_CALLS}", *argv],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    with open(out) as f:
        text = f.read()
    os.remove(out)
    if r.returncode != 0:
        raise RuntimeError(f"{argv[0]} under strace failed: {r.stderr.strip()[-1000:]}")
    calls = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[-1] in SYNC_CALLS.split(","):
            calls[parts[-1]] = int(parts[3])
    return calls


def phase_fetch(args, clients, tmp):
    """pop3 fetch next to mpop, into Maildirs.

    Every run writes into a Maildir of its own, and none is deleted until
    the harness ends: on ext4 without a journal (common on virtual
    machines) the inode allocator skips inodes freed in the last 5-35 s,
    one by one, so a fetch right after deleting the previous run's
    thousands of files spends most of its system time in that search,
    whichever client it is. Nobody deletes a Maildir just before fetching.
    """
    have_mpop = ensure_tool("mpop", "mpop")
    have_strace = ensure_tool("strace", "strace")
    fetchers = ["pop3"] + (["mpop"] if have_mpop else [])
    if not have_mpop:
        log("fetch: mpop is not installed; measuring pop3 alone")
    scenarios = [
        ("local", args.fetch_small_messages, args.fetch_small_size, None),
        ("proxy", args.fetch_small_messages, args.fetch_small_size, args.delay_ms),
        ("local", args.fetch_big_messages, args.fetch_big_size, None),
        ("local, mbox", args.fetch_small_messages, args.fetch_small_size, None),
    ]
    rows = []
    for where, count, size, delay in scenarios:
        log(f"fetch: {count} x {size} bytes, {where}"
            + (f" ({delay} ms each way)" if delay else ""))
        with local_dovecot(
            ["--messages", str(count), "--size", str(size)],
            os.path.join(tmp, f"ca-fetch-{count}-{size}.pem"),
        ) as dovecot:
            server = dovecot.info
            env = client_env(server)
            proxy = latency_proxy(server["tls_port"], delay) if delay else None
            try:
                port = proxy.info["port"] if proxy else server["tls_port"]
                # Warm-up: Dovecot builds its index on the first session.
                maildir = new_maildir(tmp, f"warm-{count}-{size}-{slug(where)}")
                run_measured(fetch_argv("pop3", server, server["tls_port"], maildir, tmp), env)
                mbox = where.endswith("mbox")
                new_dest = new_mbox if mbox else new_maildir
                for client in fetchers[:1] + ([PLAIN_LOGIN] if delay else []) + fetchers[1:]:
                    runs = []
                    for rep in range(args.repeats):
                        maildir = new_dest(tmp, f"{slug(client)}-{rep}-{count}-{size}-{slug(where)}")
                        argv = fetch_argv(client, server, port, maildir, tmp, mbox)
                        m = run_measured(argv, env)
                        stored = stored_messages(maildir, mbox)
                        if not m.ok or stored != count:
                            raise RuntimeError(
                                f"{client} failed (exit {m.status}, {stored} stored):\n"
                                f"{m.stderr.strip()[-2000:]}"
                            )
                        runs.append({"wall": m.wall, "cpu": m.cpu, "maxrss_mib": m.maxrss_kib / 1024})
                        log(f"  [{rep + 1}/{args.repeats}] {client:5} wall {m.wall:.3f} s "
                            f"cpu {m.cpu:.3f} s rss {m.maxrss_kib / 1024:.1f} MiB")
                    syncs = None
                    if have_strace:
                        maildir = new_dest(tmp, f"{slug(client)}-strace-{count}-{size}-{slug(where)}")
                        calls = count_syncs(fetch_argv(client, server, port, maildir, tmp, mbox), env)
                        syncs = sum(calls.values())
                        log(f"  {client:5} syncs: {calls}")
                    row = {
                        "client": client,
                        "where": where,
                        "delay_ms": delay,
                        "messages": count,
                        "size": size,
                        "wall": statistics.median(r["wall"] for r in runs),
                        "walls": [round(r["wall"], 4) for r in runs],
                        "cpu": statistics.median(r["cpu"] for r in runs),
                        "maxrss_mib": statistics.median(r["maxrss_mib"] for r in runs),
                        "syncs": syncs,
                        "syncs_per_message": syncs / count if syncs is not None else None,
                    }
                    if delay:
                        row["rtt_s"] = 2 * delay / 1000
                        row["bound_s"] = 7 * row["rtt_s"]
                    rows.append(row)
            finally:
                if proxy:
                    proxy.stop()
    return rows


# ---------------------------------------------------------------------------
# report


def fmt(x, digits=3):
    return "n/a" if x is None else f"{x:.{digits}f}"


def markdown(report):
    lines = []
    a = report["args"]
    mach = report["machine"]
    lines.append(f"Run: {report['started']} ({report['duration_s']:.0f} s), `{report['command']}`")
    lines.append("")
    lines.append(
        f"Machine: {mach['nproc']} CPUs ({mach['cpu']}), {mach['memory_gib']} GiB RAM, "
        f"Linux {mach['kernel']}; {mach['rustc']}; Dovecot {mach['dovecot']}; "
        f"Python {mach['python']}; {mach['curl']}"
    )
    lines.append(
        f"Load average (1/5/15 min) before: {report['load_before']}, after: {report['load_after']}. "
        "Other processes (not this harness, its clients or its Dovecot) during each phase:"
    )
    lines.append("")
    for phase, pl in report.get("phase_load", {}).items():
        lines.append(
            f"- {phase} ({pl['seconds']:.0f} s): load {pl['before']} -> {pl['after']}; others used "
            f"{pl['others_cpu_s']} CPU s = {pl['others_share'] * 100:.0f}% of the machine"
            + (f" (busiest: {', '.join(pl['others_top'])})" if pl["others_top"] else "")
        )
    if report.get("skipped_clients"):
        lines.append(f"Not measured (did not build): {', '.join(report['skipped_clients'])}")
    lines.append("")

    if "throughput" in report:
        t = report["throughput"]
        lines.append(
            f"### Throughput: {a['messages']} x {a['size']} bytes "
            f"(median of {a['repeats']}; wall = process start to exit)"
        )
        lines.append("")
        lines.append(
            "| client | TLS | wall s | MiB/s | CPU s (user+sys) | peak RSS MiB | messages | bytes |"
        )
        lines.append("|---|---|---:|---:|---:|---:|---:|---:|")
        order = {c: i for i, c in enumerate(report["clients"])}
        for r in sorted(t, key=lambda r: (r["tls"] != "none", order.get(r["client"], 99))):
            mibs = r["bytes"] / MiB / r["wall"] if r["bytes"] else None
            lines.append(
                f"| {r['client']} | {'implicit' if r['tls'] == 'implicit' else 'plain'} | "
                f"{fmt(r['wall'])} | {fmt(mibs, 0)} | {fmt(r['cpu'])} | {fmt(r['maxrss_mib'], 1)} | "
                f"{r['messages']} | {r['bytes']} |"
            )
        lines.append("")

    if "latency" in report:
        l = report["latency"]
        p = l["poplib"]
        lines.append(
            f"### Latency: {l['messages']} x {l['size']} bytes through a proxy adding "
            f"{a['delay_ms']} ms each way (median of {a['repeats']})"
        )
        lines.append("")
        lines.append(
            f"Round trip through the proxy, measured with NOOP: {l['measured_rtt_s'] * 1000:.1f} ms "
            f"(RTT used below: {l['rtt_s'] * 1000:.0f} ms). Bound = {l['bound_rtts']} x RTT + bytes / "
            f"bandwidth; tight bound = {l['tight_rtts']} x RTT + bytes / bandwidth (the round trips "
            f"pop3-bench really waits for). Bandwidth = the client's own proxy-less throughput: "
            + ", ".join(f"{c} {b / MiB:.0f} MiB/s" for c, b in l["bandwidth"].items())
            + "."
        )
        lines.append("")
        lines.append(
            f"poplib: {p['measured_messages']} messages took {p['wall_measured']:.2f} s "
            f"(fixed part, `--limit 0`: {p['wall_fixed']:.2f} s, so {p['per_message'] * 1000:.1f} ms per message)"
            + (
                f"; extrapolated linearly to {l['messages']} messages: {p['wall_for_all']:.1f} s."
                if p["extrapolated"]
                else "."
            )
        )
        lines.append("")
        lines.append(
            "| client | pipeline window | wall s | bound s | measured / bound | tight bound s | "
            "measured / tight | speed-up vs poplib |"
        )
        lines.append("|---|---:|---:|---:|---:|---:|---:|---:|")
        for r in l["rows"]:
            window = "default (1024, 8 KiB)" if r["window"] == "default" else r["window"]
            lines.append(
                f"| {r['client']} | {window} | {fmt(r['wall'])} | {fmt(r['bound'])} | "
                f"{fmt(r['ratio'], 2)} | {fmt(r['tight_bound'])} | {fmt(r['ratio_tight'], 2)} | "
                f"{r['speedup_vs_poplib']:.0f}x |"
            )
        lines.append("")

    if "fetch" in report:
        lines.append(
            f"### pop3 fetch and mpop into a Maildir or an mbox (implicit TLS, median of "
            f"{a['repeats']}; each run a new Maildir or mbox, no state, messages kept on the server)"
        )
        lines.append("")
        lines.append(
            "| messages | where | client | wall s | wall / mpop | CPU s | peak RSS MiB | "
            "syncs | syncs per message |"
        )
        lines.append("|---|---|---|---:|---:|---:|---:|---:|---:|")
        rows = report["fetch"]
        for r in rows:
            mpop = next(
                (x for x in rows if x["client"] == "mpop" and x["where"] == r["where"]
                 and x["messages"] == r["messages"] and x["size"] == r["size"]),
                None,
            )
            where = r["where"] if not r.get("delay_ms") else (
                f"proxy {2 * r['delay_ms']:.0f} ms RTT (bound 7 RTT = {r['bound_s']:.2f} s, "
                f"measured {r['wall'] / r['bound_s']:.1f}x)"
            )
            lines.append(
                f"| {r['messages']} x {r['size']} B | {where} | {r['client']} | {fmt(r['wall'])} | "
                f"{fmt(r['wall'] / mpop['wall'], 2) if mpop else 'n/a'} | {fmt(r['cpu'])} | "
                f"{fmt(r['maxrss_mib'], 1)} | {r['syncs'] if r['syncs'] is not None else 'n/a'} | "
                f"{fmt(r['syncs_per_message'], 3)} |"
            )
        lines.append("")

    if "memory" in report:
        lines.append(f"### Memory: one {a['big_size']}-byte message, `retr_to` a file")
        lines.append("")
        lines.append("| client | TLS | bytes written | wall s | MiB/s | CPU s | peak RSS MiB |")
        lines.append("|---|---|---:|---:|---:|---:|---:|")
        for r in report["memory"]:
            lines.append(
                f"| {r['client']} | {'implicit' if r['tls'] == 'implicit' else 'plain'} | "
                f"{r['bytes']} | {fmt(r['wall'], 2)} | {fmt(r['bytes'] / MiB / r['wall'], 0)} | "
                f"{fmt(r['cpu'], 2)} | {fmt(r['maxrss_mib'], 1)} |"
            )
        lines.append("")
    return "\n".join(lines)


def parse_size(text):
    m = re.fullmatch(r"(\d+)\s*([KMG]i?B?)?", text.strip(), re.I)
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text}")
    n = int(m.group(1))
    unit = (m.group(2) or "").upper()[:1]
    return n * {"": 1, "K": 1024, "M": MiB, "G": 1024 * MiB}[unit]


def main():
    p = argparse.ArgumentParser(
        description="POP3 transport benchmarks against a local Dovecot",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--only", choices=["throughput", "latency", "memory", "fetch"],
                   action="append", help="run only these phases (repeatable)")
    p.add_argument("--clients", default="pop3-blocking,pop3-tokio,pop3-smol,poplib,curl",
                   help="comma-separated clients")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--messages", type=int, default=2000, help="throughput: message count")
    p.add_argument("--size", type=parse_size, default=50 * 1024, help="throughput: message size")
    p.add_argument("--latency-messages", type=int, default=1000)
    p.add_argument("--latency-size", type=parse_size, default=10 * 1024)
    p.add_argument("--delay-ms", type=float, default=10.0, help="proxy delay each way")
    p.add_argument("--poplib-latency-messages", type=int, default=1000,
                   help="poplib messages through the proxy (extrapolated linearly to "
                   "--latency-messages if fewer)")
    p.add_argument("--windows", default="default,256,1000",
                   help="pipeline windows to try through the proxy ('default' = the crate's)")
    p.add_argument("--fetch-small-messages", type=int, default=1000)
    p.add_argument("--fetch-small-size", type=parse_size, default=2048)
    p.add_argument("--fetch-big-messages", type=int, default=2000)
    p.add_argument("--fetch-big-size", type=parse_size, default=50 * 1024)
    p.add_argument("--big-size", type=parse_size, default=1024 * MiB, help="memory: message size")
    p.add_argument("--quick", action="store_true",
                   help="small run: 200 x 50 KiB, 200 x 10 KiB, 64 MiB, 1 repeat")
    p.add_argument("--no-build", action="store_true", help="use the binaries built before")
    p.add_argument("--out-md", default=os.path.join(BENCH, "last-run.md"))
    p.add_argument("--out-json", default=os.path.join(BENCH, "last-run.json"))
    args = p.parse_args()
    if args.quick:
        args.messages, args.latency_messages, args.repeats = 200, 200, 1
        args.poplib_latency_messages = min(args.poplib_latency_messages, 50)
        args.windows = "default,1000"
        args.big_size = 64 * MiB
        args.fetch_small_messages, args.fetch_big_messages = 200, 200
    args.windows = [w.strip() for w in args.windows.split(",") if w.strip()]
    phases = args.only or ["throughput", "latency", "memory"]
    wanted = [c.strip() for c in args.clients.split(",") if c.strip()]
    for c in wanted:
        if c not in RUST_CLIENTS and c not in ("poplib", "curl"):
            raise SystemExit(f"unknown client {c}")

    started = time.time()
    report = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(started)),
        "command": "python3 bench/run.py " + " ".join(sys.argv[1:]),
        "args": {k: v for k, v in vars(args).items()},
        "machine": machine(),
        "load_before": loadavg(),
    }
    built = build(wanted, args.no_build, fetch_phase="fetch" in phases)
    clients = [c for c in wanted if c not in RUST_CLIENTS or c in built]
    if "curl" in clients and not shutil.which("curl"):
        log("curl not found; skipping it")
        clients.remove("curl")
    report["clients"] = clients
    report["skipped_clients"] = [c for c in wanted if c not in clients]
    log(f"clients: {', '.join(clients)}; load average {report['load_before']}")

    with tempfile.TemporaryDirectory(prefix="pop3-bench-") as tmp:
        report["phase_load"] = {}
        for phase, run in (
            ("throughput", phase_throughput),
            ("latency", phase_latency),
            ("memory", phase_memory),
            ("fetch", phase_fetch),
        ):
            if phase not in phases:
                continue
            if phase == "latency" and not any(c in RUST_CLIENTS for c in clients):
                log("latency: no Rust client built; skipped")
                continue
            before, snapshot = loadavg(), cpu_snapshot()
            t = time.time()
            report[phase] = run(args, clients, tmp)
            others, top = others_cpu(snapshot, cpu_snapshot())
            seconds = time.time() - t
            report["phase_load"][phase] = {
                "before": before,
                "after": loadavg(),
                "seconds": round(seconds, 1),
                "others_cpu_s": others,
                "others_share": round(others / (seconds * (os.cpu_count() or 1)), 3),
                "others_top": top,
            }

    report["load_after"] = loadavg()
    report["duration_s"] = time.time() - started
    md = markdown(report)
    print(md)
    if args.out_md:
        with open(args.out_md, "w") as f:
            f.write(md + "\n")
    if args.out_json:
        with open(args.out_json, "w") as f:
            json.dump(report, f, indent=1)
    log(f"done in {report['duration_s']:.0f} s; wrote {args.out_md} and {args.out_json}")


if __name__ == "__main__":
    main()
