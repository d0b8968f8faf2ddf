// The Node.js driver against the real Dovecot the test command starts:
// every TLS mode, messages byte for byte as stored, pipelining, streaming
// with back-pressure, many sessions at once, and the trust options.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import * as tls from "node:tls";
import { Writable } from "node:stream";
import { connect, ServerError, TlsError } from "../index.js";
import { startDovecot, equalBytes } from "./helpers.js";

let dovecot;

before(async () => {
  dovecot = await startDovecot("--sample", "--messages", "4", "--size", "70000");
});

after(async () => {
  await dovecot?.stop();
});

function open(mode, extra = {}) {
  return connect({
    host: dovecot.host,
    port: dovecot.port(mode),
    tls: mode,
    ca: dovecot.ca,
    timeout: 20_000,
    allowPlaintextCredentials: mode === "none",
    ...extra,
  });
}

async function gather(chunks) {
  const parts = [];
  for await (const chunk of chunks) parts.push(chunk);
  return new Uint8Array(Buffer.concat(parts));
}

for (const mode of ["implicit", "starttls", "none"]) {
  test(`${mode}: every message byte for byte as stored, with stat, list, uidl and top`, async () => {
    const session = await open(mode);
    assert.equal(session.isEncrypted, mode !== "none");
    const login = await session.login(dovecot.user, dovecot.password);
    assert.ok(login.mechanism, "the core reports the mechanism it chose");
    const stat = await session.stat();
    assert.equal(stat.count, dovecot.messages.length);
    assert.equal(stat.size, dovecot.messages.reduce((n, m) => n + m.length, 0));
    const listing = await session.list();
    assert.deepEqual(listing.map((e) => e.size), dovecot.messages.map((m) => m.length));
    assert.deepEqual(await session.list(2), { msg: 2, size: dovecot.messages[1].length });
    const uids = await session.uidl();
    assert.equal(new Set(uids.map((e) => e.uid)).size, dovecot.messages.length);
    for (let i = 0; i < dovecot.messages.length; i++) {
      const body = await gather(session.retr(i + 1));
      assert.ok(equalBytes(body, dovecot.messages[i]), `message ${i + 1} differs`);
    }
    const top = await session.top(1, 0);
    const text = Buffer.from(top).toString("latin1");
    assert.ok(Buffer.from(dovecot.messages[0]).toString("latin1").startsWith(text));
    await assert.rejects(session.list(999), ServerError);
    assert.equal((await session.stat()).count, dovecot.messages.length, "the session goes on after -ERR");
    await session.quit();
    assert.ok(session.closed);
  });
}

test("retrMany pipelines every RETR and gives each message whole, in order", async () => {
  const session = await open("implicit");
  await session.login(dovecot.user, dovecot.password);
  const numbers = dovecot.messages.map((_, i) => i + 1);
  const seen = [];
  for await (const { msg, data, error } of session.retrMany([...numbers, 999])) {
    if (msg === 999) {
      assert.ok(error instanceof ServerError, "a refused message is reported, not thrown");
      continue;
    }
    assert.ok(equalBytes(data, dovecot.messages[msg - 1]), `message ${msg} differs`);
    seen.push(msg);
  }
  assert.deepEqual(seen, numbers);
  assert.ok(session.isPipelining, "Dovecot offers PIPELINING and the core uses it");
  assert.equal((await session.stat()).count, dovecot.messages.length, "the session goes on");
  await session.quit();
});

test("retrTo honours a slow writable's back-pressure and writes the exact bytes", async () => {
  const session = await open("starttls");
  await session.login(dovecot.user, dovecot.password);
  const largest = dovecot.messages.reduce((best, m, i) => (m.length > dovecot.messages[best].length ? i : best), 0);
  const parts = [];
  let waits = 0;
  const slow = new Writable({
    highWaterMark: 1024,
    write(chunk, _encoding, done) {
      parts.push(Buffer.from(chunk));
      waits++;
      setImmediate(done);
    },
  });
  const written = await session.retrTo(largest + 1, slow);
  assert.equal(written, dovecot.messages[largest].length);
  assert.ok(equalBytes(new Uint8Array(Buffer.concat(parts)), dovecot.messages[largest]));
  assert.ok(waits > 0);
  await session.quit();
});

test("leaving a retr loop early drops the rest and the session goes on", async () => {
  const session = await open("implicit", { readSize: 4096 });
  await session.login(dovecot.user, dovecot.password);
  const largest = dovecot.messages.findIndex((m) => m.length >= 70000);
  for await (const chunk of session.retr(largest + 1)) {
    assert.ok(chunk.length > 0);
    break;
  }
  const again = await gather(session.retr(1));
  assert.ok(equalBytes(again, dovecot.messages[0]));
  await session.noop();
  await session.quit();
});

test("100 concurrent sessions in one process", async () => {
  const sessions = Array.from({ length: 100 }, async (_, i) => {
    const session = await open(["implicit", "starttls", "none"][i % 3]);
    await session.login(dovecot.user, dovecot.password);
    const msg = (i % dovecot.messages.length) + 1;
    const body = await gather(session.retr(msg));
    assert.ok(equalBytes(body, dovecot.messages[msg - 1]));
    await session.quit();
  });
  await Promise.all(sessions);
});

test("calls made together run one after another, each with its own reply", async () => {
  const session = await open("implicit");
  await session.login(dovecot.user, dovecot.password);
  const [stat, listing, first, uids] = await Promise.all([
    session.stat(),
    session.list(),
    gather(session.retr(1)),
    session.uidl(),
  ]);
  assert.equal(stat.count, dovecot.messages.length);
  assert.equal(listing.length, dovecot.messages.length);
  assert.ok(equalBytes(first, dovecot.messages[0]));
  assert.equal(uids.length, dovecot.messages.length);
  await session.quit();
  await assert.rejects(session.stat(), (error) => error.code === "ERR_POP3_CONNECTION");
});

test("dele then rset leaves the maildrop as it was; Symbol.asyncDispose quits", async () => {
  const session = await open("implicit");
  await session.login(dovecot.user, dovecot.password);
  await session.dele(1);
  assert.equal((await session.stat()).count, dovecot.messages.length - 1);
  await session.rset();
  assert.equal((await session.stat()).count, dovecot.messages.length);
  await session[Symbol.asyncDispose]();
  assert.ok(session.closed);
});

test("the certificate is verified by default: no CA given, the test CA is not trusted", async () => {
  await assert.rejects(
    connect({ host: dovecot.host, port: dovecot.tls_port, tls: "implicit", timeout: 20_000 }),
    (error) => error instanceof TlsError && error.code === "ERR_POP3_TLS" && error.cause?.code !== undefined,
  );
  await assert.rejects(
    connect({ host: dovecot.host, port: dovecot.plain_port, tls: "starttls", timeout: 20_000 }),
    TlsError,
  );
});

test("a SHA-256 pin trusts exactly that certificate; another pin is refused", async () => {
  const fingerprint = await new Promise((resolve, reject) => {
    const socket = tls.connect({ host: dovecot.host, port: dovecot.tls_port, rejectUnauthorized: false }, () => {
      resolve(socket.getPeerCertificate().fingerprint256);
      socket.destroy();
    });
    socket.once("error", reject);
  });
  const session = await connect({
    host: dovecot.host,
    port: dovecot.tls_port,
    tls: "implicit",
    pinSha256: fingerprint,
    timeout: 20_000,
  });
  await session.login(dovecot.user, dovecot.password);
  await session.quit();
  await assert.rejects(
    connect({ host: dovecot.host, port: dovecot.plain_port, tls: "starttls", pinSha256: "00".repeat(32), timeout: 20_000 }),
    (error) => error instanceof TlsError && error.cause?.code === "ERR_POP3_FINGERPRINT_MISMATCH",
  );
});

test("a wrong password is a ServerError the core calls an authentication refusal, not temporary", async () => {
  const session = await open("implicit");
  await assert.rejects(
    session.login(dovecot.user, `${dovecot.password}-wrong`),
    (error) =>
      error instanceof ServerError &&
      error.authenticationRefused === true &&
      error.temporary === false,
  );
  session.close();
});
