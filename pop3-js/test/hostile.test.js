// Scripted hostile servers against the Node.js driver: STLS injection,
// refused STLS, wrong certificates, a disconnect in the middle of a
// message, over-long lines, floods, silence.

import { test, after } from "node:test";
import assert from "node:assert/strict";
import {
  Client,
  connect,
  ConnectionError,
  Pop3Error,
  ProtocolError,
  ReplyError,
  TimeoutError,
  TlsError,
  Session,
  UsageError,
} from "../index.js";
import { EventEmitter } from "node:events";
import { scripted, serve, wrongCertificate } from "./helpers.js";

const CAPA_STLS = "+OK\r\nSTLS\r\nUSER\r\n.\r\n";
const CAPA_NO_STLS = "+OK\r\nUSER\r\nTOP\r\n.\r\n";
const LOGIN = { USER: "+OK\r\n", PASS: "+OK logged in\r\n", CAPA: "-ERR no\r\n", QUIT: "+OK bye\r\n" };

const servers = [];
after(async () => {
  for (const server of servers) await server.close();
});

async function start(script, options) {
  const server = await scripted(script, options);
  servers.push(server);
  return server;
}

function plain(server, extra = {}) {
  return connect({ host: server.host, port: server.port, tls: "none", allowPlaintextCredentials: true, timeout: 10_000, ...extra });
}

async function loggedIn(server, extra) {
  const session = await plain(server, extra);
  await session.login("u", "p", { method: "user" });
  return session;
}

test("STLS injection: a reply sent with the +OK to STLS, before TLS, ends the session", async () => {
  const log = [];
  const server = await start(
    serve(
      {
        CAPA: CAPA_STLS,
        STLS: async (peer) => {
          await peer.send("+OK begin TLS\r\n+OK 1 2\r\n");
          await peer.line();
          return null;
        },
      },
      { log },
    ),
  );
  await assert.rejects(
    connect({ host: server.host, port: server.port, tls: "starttls", timeout: 10_000 }),
    (error) => error instanceof ProtocolError && /injection/.test(error.message),
  );
  assert.deepEqual(log, ["CAPA", "STLS"], "nothing is sent after the injected bytes");
});

test("refused STLS: -ERR to STLS, or STLS not offered, fails with TlsError and never falls back", async () => {
  for (const replies of [{ CAPA: CAPA_STLS, STLS: "-ERR not now\r\n" }, { CAPA: CAPA_NO_STLS }]) {
    const log = [];
    const server = await start(serve(replies, { log }));
    await assert.rejects(
      connect({ host: server.host, port: server.port, tls: "starttls", timeout: 10_000 }),
      (error) => error instanceof TlsError && error.code === "ERR_POP3_TLS",
    );
    assert.ok(!log.some((line) => /^(USER|PASS|AUTH)/i.test(line)), `no credentials: ${log}`);
  }
});

test("wrong certificate: implicit TLS and STLS refuse a certificate for another name", async () => {
  const wrong = wrongCertificate();
  const implicit = await start(serve(LOGIN), { tlsIdentity: wrong });
  await assert.rejects(
    connect({ host: implicit.host, port: implicit.port, tls: "implicit", timeout: 10_000 }),
    (error) => error instanceof TlsError && typeof error.cause?.code === "string",
  );
  // Trusted as a CA but not for this name: the name check still applies.
  await assert.rejects(
    connect({ host: implicit.host, port: implicit.port, tls: "implicit", ca: wrong.cert, timeout: 10_000 }),
    (error) => error instanceof TlsError && error.cause?.code === "ERR_TLS_CERT_ALTNAME_INVALID",
  );
  const log = [];
  const upgrading = await start(
    serve(
      {
        CAPA: CAPA_STLS,
        STLS: async (peer) => {
          await peer.send("+OK begin TLS\r\n");
          await peer.startTls(wrong);
          return null;
        },
      },
      { log },
    ),
  );
  await assert.rejects(
    connect({ host: upgrading.host, port: upgrading.port, tls: "starttls", timeout: 10_000 }),
    TlsError,
  );
  assert.deepEqual(log, ["CAPA", "STLS"]);
});

test("disconnect in the middle of a message: the retr loop throws, nothing is passed off as complete", async () => {
  const server = await start(
    serve({
      ...LOGIN,
      RETR: async (peer) => {
        await peer.send("+OK 100000 octets\r\n" + "x".repeat(5000) + "\r\npart");
        return null;
      },
    }),
  );
  const session = await loggedIn(server);
  let received = 0;
  await assert.rejects(
    (async () => {
      for await (const chunk of session.retr(1)) received += chunk.length;
    })(),
    (error) => error instanceof Pop3Error && (error instanceof ProtocolError || error instanceof ConnectionError),
  );
  assert.ok(received < 100000);
  await assert.rejects(session.noop(), Pop3Error, "the session is over");
});

test("an over-long status line is refused without holding it", async () => {
  const server = await start(
    serve({
      ...LOGIN,
      STAT: async (peer) => {
        // 4 MiB without a line end.
        const block = "+OK " + "9".repeat(64 * 1024);
        for (let i = 0; i < 64; i++) await peer.send(block);
        await peer.send("\r\n");
        return "+OK\r\n";
      },
    }),
  );
  const session = await loggedIn(server);
  await assert.rejects(session.stat(), (error) => error instanceof ReplyError || error instanceof ProtocolError);
  session.close();
});

test("a listing flood is cut at the core's limit, read to its end, and the session goes on", async () => {
  const lines = 200_000;
  const server = await start(
    serve({
      ...LOGIN,
      NOOP: "+OK\r\n",
      UIDL: async (peer) => {
        await peer.send("+OK\r\n");
        let batch = "";
        for (let i = 1; i <= lines; i++) {
          batch += `${i} uid-${i}\r\n`;
          if (batch.length > 60_000) {
            await peer.send(batch);
            batch = "";
          }
        }
        return batch + ".\r\n";
      },
    }),
  );
  const session = await loggedIn(server);
  await assert.rejects(session.uidl(), ReplyError);
  await session.noop();
  await session.quit();
});

test("a server that goes silent times out", async () => {
  const server = await start(serve({ ...LOGIN, STAT: async () => new Promise((resolve) => setTimeout(() => resolve(null), 3000)) }));
  const session = await loggedIn(server, { timeout: 300 });
  await assert.rejects(session.stat(), (error) => error instanceof TimeoutError && error.code === "ERR_POP3_TIMEOUT");
});

test("a -ERR greeting or an early hang-up is an error, not a session", async () => {
  const refusing = await start(async (peer) => {
    await peer.send("-ERR go away\r\n");
  });
  await assert.rejects(plain(refusing), Pop3Error);
  const silent = await start(async () => {});
  await assert.rejects(plain(silent), Pop3Error);
});

test("a slow consumer holds the server back: a 64 MiB message is not read ahead of the loop", async () => {
  let flushed = 0;
  let stalled;
  const server = await start(
    serve({
      ...LOGIN,
      RETR: async (peer) => {
        await peer.send("+OK\r\n");
        const line = Buffer.from("x".repeat(1022) + "\r\n");
        const block = Buffer.concat(Array.from({ length: 64 }, () => line));
        // Counted when the kernel took them: what the client let through.
        for (let i = 0; i < 1024; i++) {
          await peer.send(block);
          flushed += block.length;
        }
        return ".\r\n";
      },
    }),
  );
  const session = await loggedIn(server, { timeout: 20_000 });
  let received = 0;
  for await (const chunk of session.retr(1)) {
    received += chunk.length;
    if (stalled === undefined) {
      // The consumer stops for a while: the server must stall too.
      await new Promise((resolve) => setTimeout(resolve, 1000));
      stalled = flushed;
    }
  }
  assert.equal(received, 64 * 1024 * 1024);
  assert.ok(stalled < 16 * 1024 * 1024, `${stalled} octets left the server while the loop waited`);
  await session.quit();
});

test("an exact self-signed certificate given as `ca` is trusted, for its own name only", async () => {
  const { execFileSync } = await import("node:child_process");
  const { mkdtempSync, readFileSync, rmSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const path = await import("node:path");
  const dir = mkdtempSync(path.join(tmpdir(), "pop3-js-"));
  execFileSync(
    "openssl",
    ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-keyout", path.join(dir, "k"), "-out", path.join(dir, "c"),
      "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
    { stdio: "ignore" },
  );
  const identity = { key: readFileSync(path.join(dir, "k")), cert: readFileSync(path.join(dir, "c")) };
  rmSync(dir, { recursive: true });
  const server = await start(serve(LOGIN), { tlsIdentity: identity });
  const session = await connect({ host: server.host, port: server.port, tls: "implicit", ca: identity.cert, timeout: 10_000 });
  assert.ok(session.isEncrypted);
  await session.login("u", "p", { method: "user" });
  await session.quit();
  await assert.rejects(
    connect({ host: server.host, port: server.port, tls: "implicit", ca: identity.cert, servername: "other.example", timeout: 10_000 }),
    TlsError,
  );
});

test("the wire trace comes from the core with the secret redacted", async () => {
  const server = await start(serve(LOGIN));
  const lines = [];
  const session = await plain(server, { onTrace: (direction, line) => lines.push(`${direction} ${line}`) });
  await session.login("u", "hunter2-secret", { method: "user" });
  await session.quit();
  assert.ok(lines.includes("sent USER u"), lines.join("\n"));
  assert.ok(lines.some((line) => line.startsWith("sent PASS") && line.includes("redacted")), lines.join("\n"));
  assert.ok(!lines.some((line) => line.includes("hunter2")), "the secret never reaches the trace");
});

test("a small readSize whose bound one socket chunk exceeds still reads a 1 MiB message through", async () => {
  const line = Buffer.from("y".repeat(1022) + "\r\n");
  const body = Buffer.concat(Array.from({ length: 1024 }, () => line));
  const server = await start(
    serve({
      ...LOGIN,
      RETR: async (peer) => {
        // One write: loopback hands it over in chunks far above the bound.
        await peer.send(Buffer.concat([Buffer.from("+OK\r\n"), body]));
        return ".\r\n";
      },
    }),
  );
  const session = await loggedIn(server, { readSize: 4096, timeout: 5_000 });
  let received = 0;
  for await (const chunk of session.retr(1)) received += chunk.length;
  assert.equal(received, body.length);
  await session.quit();
});

test("close() from a deadline timer during a call ends the call with ConnectionError", async () => {
  const server = await start(
    serve({
      ...LOGIN,
      // Part of a message, then silence; STAT is never answered.
      RETR: async (peer) => {
        await peer.send("+OK\r\nfirst line\r\n");
        await peer.line();
        return null;
      },
      STAT: async (peer) => {
        await peer.line();
        return null;
      },
    }),
  );
  const closedByTimer = (error) => error instanceof ConnectionError && error.code === "ERR_POP3_CONNECTION";

  const retrieving = await loggedIn(server);
  setTimeout(() => retrieving.close(), 200);
  await assert.rejects(async () => {
    for await (const chunk of retrieving.retr(1)) assert.ok(chunk.length > 0);
  }, closedByTimer);
  assert.equal(retrieving.closed, true);

  const counting = await loggedIn(server);
  setTimeout(() => counting.close(), 200);
  await assert.rejects(counting.stat(), closedByTimer);
  await assert.rejects(counting.noop(), closedByTimer, "and so does every later call");
});

test("a freed sans-IO client refuses every call with a coded error", () => {
  const client = new Client();
  client.free();
  assert.throws(() => client.receiveData(new Uint8Array([43])), (error) => error.code === "ERR_POP3_USAGE");
  assert.throws(() => client.receiveEof(), (error) => error.code === "ERR_POP3_USAGE");
  assert.throws(() => client.nextEvent(), (error) => error.code === "ERR_POP3_USAGE");
  client.free();
});

test("a call made inside an open retr or retrMany loop is refused at once, not left to hang", { timeout: 10_000 }, async () => {
  const server = await start(
    serve({
      ...LOGIN,
      RETR: "+OK\r\nbody line\r\n.\r\n",
      STAT: "+OK 2 22\r\n",
      NOOP: "+OK\r\n",
    }),
  );
  const session = await loggedIn(server, { timeout: 3_000 });
  const insideLoop = (error) => error instanceof UsageError && /retr loop/.test(error.message);
  for await (const chunk of session.retr(1)) {
    assert.ok(chunk.length > 0);
    await assert.rejects(session.stat(), insideLoop);
    await assert.rejects(async () => {
      for await (const _ of session.retr(2)) assert.fail("a nested retr ran");
    }, insideLoop);
  }
  for await (const { data } of session.retrMany([1, 2])) {
    assert.ok(data.length > 0);
    await assert.rejects(session.noop(), insideLoop);
  }
  assert.deepEqual(await session.stat(), { count: 2, size: 22 }, "after the loop the session goes on");
  await session.quit();
});

test("a login queued behind a startTls() not awaited binds to the upgraded connection (SCRAM -PLUS)", async () => {
  const { X509Certificate } = await import("node:crypto");
  const identity = wrongCertificate();
  const mechanisms = [];
  const server = await start(async (peer) => {
    await peer.send("+OK ready\r\n");
    for (;;) {
      const line = await peer.line();
      if (!line) return;
      const verb = line.split(" ")[0].toUpperCase();
      if (verb === "CAPA") {
        await peer.send("+OK\r\nSTLS\r\nSASL SCRAM-SHA-256 SCRAM-SHA-256-PLUS\r\n.\r\n");
      } else if (verb === "STLS") {
        await peer.send("+OK begin TLS\r\n");
        await peer.startTls(identity);
      } else if (verb === "AUTH") {
        mechanisms.push(line.split(" ")[1]);
        return;
      } else {
        await peer.send("-ERR no\r\n");
      }
    }
  });
  const session = await connect({
    host: server.host,
    port: server.port,
    tls: "none",
    pinSha256: new X509Certificate(identity.cert).fingerprint256,
    timeout: 10_000,
  });
  const upgrade = session.startTls();
  const login = session.login("u", "p");
  await upgrade;
  await assert.rejects(login, Pop3Error, "the scripted server hangs up after AUTH");
  assert.deepEqual(mechanisms, ["SCRAM-SHA-256-PLUS"]);
  session.close();
});

test("TLS options that tls.connect refuses at once fail as TlsError, leak nothing and leave no call waiting", { timeout: 10_000 }, async () => {
  const unusable = { ca: {} };
  let hungUp;
  const hangUp = new Promise((resolve) => (hungUp = resolve));
  const implicit = await start(async (peer) => {
    await peer.line();
    hungUp();
  });
  await assert.rejects(
    connect({ host: implicit.host, port: implicit.port, tls: "implicit", timeout: 5_000, ...unusable }),
    (error) => error instanceof TlsError && error.code === "ERR_POP3_TLS",
  );
  await hangUp;

  const upgrading = await start(serve({ CAPA: CAPA_STLS, STLS: "+OK begin TLS\r\n" }));
  const session = await plain(upgrading, unusable);
  const upgrade = session.startTls();
  const after = session.stat();
  await assert.rejects(upgrade, (error) => error instanceof TlsError && error.code === "ERR_POP3_TLS");
  await assert.rejects(after, Pop3Error);
  assert.ok(session.closed);
});

/** A socket whose writes never drain: the server takes nothing. */
class StuckSocket extends EventEmitter {
  destroyed = false;
  write() {
    return false;
  }
  pause() {}
  resume() {}
  destroy() {
    if (this.destroyed) return;
    this.destroyed = true;
    queueMicrotask(() => this.emit("close"));
  }
}

async function stuckSession(timeout) {
  const socket = new StuckSocket();
  const session = new Session(socket, new Client({ allowPlaintextCredentials: true }), { trust: null, timeout });
  const greeting = session._greeting();
  socket.emit("data", new TextEncoder().encode("+OK hi\r\n"));
  await greeting;
  return { socket, session };
}

test("a write waiting for drain fails with a coded error: the socket's error as cause, or the timeout", { timeout: 10_000 }, async () => {
  const failing = await stuckSession(5_000);
  const login = failing.session.login("u", "p", { method: "user" });
  const reset = Object.assign(new Error("read ECONNRESET"), { code: "ECONNRESET" });
  setTimeout(() => failing.socket.emit("error", reset), 50);
  await assert.rejects(login, (error) => error instanceof ConnectionError && error.cause === reset);
  assert.ok(failing.session.closed);

  const stalled = await stuckSession(300);
  await assert.rejects(stalled.session.login("u", "p", { method: "user" }), TimeoutError);
  assert.ok(stalled.session.closed);
});

test("retrTo fails, rather than waits forever, when the writable closes without an error", { timeout: 10_000 }, async () => {
  const { Writable } = await import("node:stream");
  const server = await start(
    serve({
      ...LOGIN,
      RETR: async (peer) => {
        await peer.send("+OK\r\n" + "z".repeat(1000) + "\r\n");
        await peer.send("z".repeat(1000) + "\r\n.\r\n");
        return "";
      },
      NOOP: "+OK\r\n",
    }),
  );
  const session = await loggedIn(server, { timeout: 5_000 });
  // Takes nothing; closes (emitting "close", never "error") once full.
  const sink = new Writable({ highWaterMark: 16, write() {} });
  sink.once("close", () => {});
  const writing = session.retrTo(1, sink);
  setTimeout(() => sink.destroy(), 100);
  await assert.rejects(writing, (error) => error instanceof Pop3Error && error.code === "ERR_STREAM_PREMATURE_CLOSE");
  await session.noop();
  await session.quit();
});
