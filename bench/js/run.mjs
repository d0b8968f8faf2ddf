// The JavaScript package next to node-pop3 (from the npm registry), in one
// run on one machine, against a real Dovecot (test-support's local-dovecot):
//
//   1. 1000 × 10 KiB through bench/latency_proxy.py (10 ms each way): the
//      whole session, connect to QUIT; pop3's retrMany against node-pop3's
//      RETR one at a time;
//   2. the same without the proxy (throughput);
//   3. one 64 MiB message: time and peak RSS of a process that does only
//      that (pop3's retrTo into a discarding writable, node-pop3's RETR).
//
//   cd bench/js && npm install && POP3_LOCAL_DOVECOT=... node run.mjs
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { Writable } from "node:stream";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, "../..");

async function child(command, args) {
  const proc = spawn(command, args, { stdio: ["pipe", "pipe", "inherit"] });
  const line = await new Promise((resolve, reject) => {
    createInterface({ input: proc.stdout }).once("line", resolve);
    proc.once("exit", (code) => reject(new Error(`${command} exited (${code})`)));
  });
  return { info: JSON.parse(line), stop: () => proc.stdin.end() };
}

const sink = () => new Writable({ write: (_chunk, _enc, done) => done() });

async function ours({ host, port, user, password }, count) {
  const { connect } = await import("pop3");
  const start = performance.now();
  const session = await connect({ host, port, tls: "none", allowPlaintextCredentials: true });
  await session.login(user, password, { method: "user" });
  let bytes = 0;
  const all = Array.from({ length: count }, (_, i) => i + 1);
  for await (const { data, error } of session.retrMany(all)) {
    if (error) throw error;
    bytes += data.length;
  }
  await session.quit();
  return { seconds: (performance.now() - start) / 1000, bytes };
}

async function theirs({ host, port, user, password }, count) {
  const { default: Pop3Command } = await import("node-pop3");
  const start = performance.now();
  const pop3 = new Pop3Command({ host, port, user, password });
  let bytes = 0;
  for (let i = 1; i <= count; i++) bytes += (await pop3.RETR(i)).length;
  await pop3.QUIT();
  return { seconds: (performance.now() - start) / 1000, bytes };
}

// One 64 MiB message in a process of its own, for its peak RSS.
if (process.argv[2] === "--big") {
  const [, , , which, host, port, user, password, msg] = process.argv;
  const start = performance.now();
  let bytes;
  if (which === "pop3") {
    const { connect } = await import("pop3");
    const session = await connect({ host, port: Number(port), tls: "none", allowPlaintextCredentials: true });
    await session.login(user, password, { method: "user" });
    bytes = await session.retrTo(Number(msg), sink());
    await session.quit();
  } else {
    const { default: Pop3Command } = await import("node-pop3");
    const pop3 = new Pop3Command({ host, port: Number(port), user, password });
    bytes = (await pop3.RETR(Number(msg))).length;
    await pop3.QUIT();
  }
  const seconds = (performance.now() - start) / 1000;
  console.log(JSON.stringify({ seconds, bytes, maxRssMiB: process.resourceUsage().maxRSS / 1024 }));
  process.exit(0);
}

const dovecotBin =
  process.env.POP3_LOCAL_DOVECOT ?? path.join(process.env.CARGO_TARGET_DIR ?? path.join(repo, "target"), "debug", "local-dovecot");
const small = await child(dovecotBin, ["--messages", "1000", "--size", "10240"]);
const proxy = await child("python3", [path.join(repo, "bench/latency_proxy.py"), "--upstream", `${small.info.host}:${small.info.plain_port}`, "--delay-ms", "10"]);
const direct = { host: small.info.host, port: small.info.plain_port, user: small.info.user, password: small.info.password };
const delayed = { ...direct, host: proxy.info.host, port: proxy.info.port };

const rows = [];
const median = async (fn, runs) => {
  const results = [];
  for (let i = 0; i < runs; i++) results.push(await fn());
  results.sort((a, b) => a.seconds - b.seconds);
  return results[Math.floor(runs / 2)];
};
// The same number of runs for both: a median of three against a single run
// would favour whichever side had the lucky draw.
const RUNS = 3;
const latencyOurs = await median(() => ours(delayed, 1000), RUNS);
const latencyTheirs = await median(() => theirs(delayed, 1000), RUNS);
rows.push(["1000 × 10 KiB, 20 ms round trip (whole session)", "node-pop3, RETR one by one", latencyTheirs.seconds, 1]);
rows.push(["1000 × 10 KiB, 20 ms round trip (whole session)", "pop3 retrMany", latencyOurs.seconds, latencyTheirs.seconds / latencyOurs.seconds]);
const directOurs = await median(() => ours(direct, 1000), RUNS);
const directTheirs = await median(() => theirs(direct, 1000), RUNS);
rows.push(["1000 × 10 KiB, loopback (whole session)", "node-pop3, RETR one by one", directTheirs.seconds, 1]);
rows.push(["1000 × 10 KiB, loopback (whole session)", "pop3 retrMany", directOurs.seconds, directTheirs.seconds / directOurs.seconds]);
proxy.stop();
small.stop();

const big = await child(dovecotBin, ["--big-message", String(64 * 1024 * 1024)]);
const bigRuns = {};
for (const which of ["node-pop3", "pop3"]) {
  const proc = spawn(process.execPath, [fileURLToPath(import.meta.url), "--big", which, big.info.host, String(big.info.plain_port), big.info.user, big.info.password, String(big.info.messages)], { stdio: ["ignore", "pipe", "inherit"] });
  const line = await new Promise((resolve) => createInterface({ input: proc.stdout }).once("line", resolve));
  bigRuns[which] = JSON.parse(line);
}
big.stop();

const mib = (r) => (r.bytes / 1024 / 1024 / r.seconds).toFixed(1);
console.log("| workload | client | seconds | speed-up | MiB/s | peak RSS |");
console.log("|---|---|---|---|---|---|");
for (const [workload, client, seconds, speedup] of rows) {
  console.log(`| ${workload} | ${client} | ${seconds.toFixed(3)} | ${speedup === 1 ? "1.0×" : `**${speedup.toFixed(1)}×**`} | ${(10 * 1000 / 1024 / seconds).toFixed(1)} | |`);
}
for (const which of ["node-pop3", "pop3"]) {
  const r = bigRuns[which];
  console.log(`| one 64 MiB message (own process) | ${which === "pop3" ? "pop3 retrTo" : "node-pop3 RETR"} | ${r.seconds.toFixed(3)} | | ${mib(r)} | ${r.maxRssMiB.toFixed(1)} MiB |`);
}
