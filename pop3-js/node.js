// The Node.js driver: a pump between node:net / node:tls sockets and the
// sans-IO core. It moves bytes, runs TLS when the core says so, keeps time
// and turns events into return values; it parses no reply and makes no
// protocol decision.

import * as net from "node:net";
import * as tls from "node:tls";
import { readFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { Client } from "./sans-io.js";
import {
  CancelledError,
  ConnectionError,
  Pop3Error,
  ProtocolError,
  ReplyError,
  ServerError,
  TimeoutError,
  TlsError,
  UsageError,
} from "./errors.js";

const asyncDispose = Symbol.asyncDispose ?? Symbol.for("nodejs.asyncDispose");

/** "AB:CD:..." or "abcd..." → "ABCD...". */
function normaliseFingerprint(text) {
  const hex = String(text).replace(/^sha256\//i, "").replace(/[:\s]/g, "").toUpperCase();
  if (!/^[0-9A-F]{64}$/.test(hex)) {
    throw new UsageError(`not a SHA-256 fingerprint: ${text}`);
  }
  return hex;
}

/**
 * The TLS options of one connection. Verification is always on: with `ca`
 * (PEM text or Buffer, or an array) or `caFile`, the server must chain to
 * those certificates or be one of them (an exact self-signed certificate),
 * and match the host name; with `pinSha256`, its certificate's SHA-256
 * fingerprint must be one of the pins, and nothing else counts (the host
 * name and dates are not checked, as in the Rust transports).
 */
function tlsOptions({ host, servername, ca, caFile, pinSha256 }) {
  // `host` as well as the socket: Node checks the certificate's names
  // against it when no servername is given (an IP address has no SNI).
  const options = { host, servername: servername ?? (net.isIP(host) ? undefined : host) };
  const roots = [];
  if (ca !== undefined) roots.push(...(Array.isArray(ca) ? ca : [ca]));
  if (caFile !== undefined) roots.push(readFileSync(caFile));
  if (roots.length > 0) options.ca = roots;
  const pins = pinSha256 === undefined ? [] : (Array.isArray(pinSha256) ? pinSha256 : [pinSha256]).map(normaliseFingerprint);
  if (pins.length > 0) {
    // The pin replaces the chain check: OpenSSL's verdict is ignored and
    // the fingerprint decides, before a single byte goes over the connection.
    options.rejectUnauthorized = false;
    options.checkServerIdentity = () => undefined;
  } else {
    options.rejectUnauthorized = true;
  }
  return { options, pins };
}

function checkPin(socket, pins) {
  if (pins.length === 0) return;
  const certificate = socket.getPeerCertificate();
  const seen = certificate?.fingerprint256 ? normaliseFingerprint(certificate.fingerprint256) : "";
  if (!pins.includes(seen)) {
    const error = new Error(`the server's certificate (SHA-256 ${seen || "none"}) is not the pinned one`);
    error.code = "ERR_POP3_FINGERPRINT_MISMATCH";
    throw error;
  }
}

/** Waits for a TLS socket's handshake; rejects with Node's error. */
function handshake(socket, pins, timeout) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      const error = new Error("TLS handshake timed out");
      error.code = "ETIMEDOUT";
      reject(error);
    }, timeout);
    const onError = (error) => {
      cleanup();
      reject(error);
    };
    const onSecure = () => {
      cleanup();
      try {
        checkPin(socket, pins);
        resolve();
      } catch (error) {
        reject(error);
      }
    };
    const cleanup = () => {
      clearTimeout(timer);
      socket.off("error", onError);
      socket.off("secureConnect", onSecure);
    };
    socket.once("error", onError);
    socket.once("secureConnect", onSecure);
  });
}

function tcpConnect(host, port, timeout) {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new TimeoutError(`connecting to ${host}:${port} timed out`));
    }, timeout);
    socket.once("connect", () => {
      clearTimeout(timer);
      socket.off("error", onError);
      resolve(socket);
    });
    const onError = (error) => {
      clearTimeout(timer);
      reject(new ConnectionError(`cannot connect to ${host}:${port}: ${error.message}`, { cause: error }));
    };
    socket.once("error", onError);
  });
}

function tlsFailure(error) {
  if (error instanceof Pop3Error) return error;
  return new TlsError(`TLS failed: ${error.message}`, { cause: error });
}

/**
 * Opens a POP3 session: connects, reads the greeting and, with `tls:
 * "starttls"`, upgrades with STLS (never falling back to plaintext).
 */
export async function connect({
  host = "localhost",
  port,
  tls: mode = "implicit",
  ca,
  caFile,
  pinSha256,
  servername,
  timeout = 30_000,
  allowPlaintextCredentials = false,
  onTrace,
  pipelineWindow,
  readSize,
} = {}) {
  if (!["implicit", "starttls", "none"].includes(mode)) {
    throw new UsageError(`tls must be "implicit", "starttls" or "none", not ${JSON.stringify(mode)}`);
  }
  port ??= mode === "implicit" ? 995 : 110;
  const trust = tlsOptions({ host, servername, ca, caFile, pinSha256 });
  let socket = await tcpConnect(host, port, timeout);
  if (mode === "implicit") {
    let secure;
    try {
      // Inside the try: tls.connect throws at once on options it refuses.
      secure = tls.connect({ socket, ...trust.options });
      await handshake(secure, trust.pins, timeout);
    } catch (error) {
      secure?.destroy();
      socket.destroy();
      throw tlsFailure(error);
    }
    socket = secure;
  }
  const client = new Client({
    encrypted: mode === "implicit",
    allowPlaintextCredentials,
    trace: typeof onTrace === "function",
    pipelineWindow,
    readSize,
  });
  const session = new Session(socket, client, { trust, timeout, onTrace });
  try {
    await session._greeting();
    if (mode === "starttls") await session.startTls();
  } catch (error) {
    session.close();
    throw error;
  }
  return session;
}

/** One POP3 session over a Node.js socket. Commands run one after another. */
export class Session {
  #socket;
  #client;
  #trust;
  #timeout;
  #onTrace;
  #inbox = [];
  #inboxBytes = 0;
  #eof = false;
  #socketError = null;
  #wake = null;
  #paused = false;
  #fatal = null;
  #closed = false;
  #queue = Promise.resolve();
  #listeners = null;
  /** A retr or retrMany loop holds the session and its consumer has control. */
  #insideLoop = false;
  /** The core's input bound (fixed by its configuration). */
  #bound;

  /** @internal Use `connect()`. */
  constructor(socket, client, { trust, timeout, onTrace }) {
    this.#client = client;
    this.#bound = client.inputBound;
    this.#trust = trust;
    this.#timeout = timeout;
    this.#onTrace = onTrace;
    this.#attach(socket);
  }

  #attach(socket) {
    this.#socket = socket;
    const onData = (chunk) => {
      this.#inbox.push(chunk);
      this.#inboxBytes += chunk.length;
      // Back-pressure: past what the core may hold, stop reading; TCP's
      // window then holds the server back.
      if (!this.#paused && this.#held() >= this.#bound) {
        this.#paused = true;
        socket.pause();
      }
      this.#notify();
    };
    const onEnd = () => {
      this.#eof = true;
      this.#notify();
    };
    const onError = (error) => {
      this.#socketError ??= error;
      this.#notify();
    };
    const onClose = () => {
      this.#eof = true;
      this.#notify();
    };
    socket.on("data", onData);
    socket.on("end", onEnd);
    socket.on("error", onError);
    socket.on("close", onClose);
    this.#listeners = { onData, onEnd, onError, onClose };
  }

  #detach() {
    const socket = this.#socket;
    const l = this.#listeners;
    socket.off("data", l.onData);
    socket.off("end", l.onEnd);
    socket.off("error", l.onError);
    socket.off("close", l.onClose);
  }

  #held() {
    return this.#inboxBytes + (this.#closed ? 0 : this.#client.bufferedInput);
  }

  #notify() {
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }

  /** The next chunk from the server, or null at its end. */
  async #read() {
    while (this.#inbox.length === 0) {
      this.#ensureOpen();
      if (this.#socketError) {
        throw new ConnectionError(`connection failed: ${this.#socketError.message}`, { cause: this.#socketError });
      }
      if (this.#eof) return null;
      // The core asks for input only below its bound, so whatever paused
      // the socket is gone: one chunk (64 KiB on loopback, a 16 KiB TLS
      // record) can alone exceed a small bound, and then no later check
      // would find room while the inbox is empty and nothing arrives.
      if (this.#paused) {
        this.#paused = false;
        this.#socket.resume();
      }
      let timer;
      const timedOut = await new Promise((resolve) => {
        this.#wake = () => resolve(false);
        timer = setTimeout(() => resolve(true), this.#timeout);
      });
      clearTimeout(timer);
      if (timedOut) {
        this.#wake = null;
        this.#fail(new TimeoutError(`the server sent nothing for ${this.#timeout} ms`));
        throw this.#fatal;
      }
    }
    const chunk = this.#inbox.shift();
    this.#inboxBytes -= chunk.length;
    return chunk;
  }

  #resumeIfRoom() {
    if (this.#paused && this.#held() < this.#bound) {
      this.#paused = false;
      this.#socket.resume();
    }
  }

  async #flush() {
    const data = this.#client.dataToSend();
    if (data.length === 0) return;
    const socket = this.#socket;
    if (socket.destroyed) throw new ConnectionError("the connection is closed");
    if (!socket.write(data)) {
      // Whichever comes first; the other listeners are removed. A server
      // that stops reading is bounded by the timeout like a silent one.
      const abandon = new AbortController();
      let timer;
      try {
        await Promise.race([
          once(socket, "drain", { signal: abandon.signal }),
          once(socket, "close", { signal: abandon.signal }).then(() => {
            throw new ConnectionError("the connection closed while writing");
          }),
          new Promise((_, reject) => {
            timer = setTimeout(
              () => reject(new TimeoutError(`the server took nothing for ${this.#timeout} ms`)),
              this.#timeout,
            );
          }),
        ]);
      } catch (error) {
        // once() rejects with the socket's own error, which has no POP3 code.
        this.#fail(
          error instanceof Pop3Error
            ? error
            : new ConnectionError(`writing failed: ${error.message}`, { cause: error }),
        );
        throw this.#fatal;
      } finally {
        clearTimeout(timer);
        abandon.abort();
      }
    }
  }

  #fail(error) {
    this.#fatal ??= error;
    this.#teardown();
  }

  #teardown() {
    if (this.#closed) return;
    this.#closed = true;
    this.#socket.destroy();
    this.#client.free();
    // A call waiting for input learns of it now, not at the timeout.
    this.#notify();
  }

  /**
   * Throws if the session ended: checked after every wait, since `close()`
   * (a caller's deadline timer, say) may free the core meanwhile.
   */
  #ensureOpen() {
    if (this.#fatal) throw this.#fatal;
    if (this.#closed) throw new ConnectionError("the session was closed");
  }

  /** The next event that is not an instruction to the driver. */
  async #next() {
    this.#ensureOpen();
    const client = this.#client;
    for (;;) {
      const event = client.nextEvent();
      switch (event.kind) {
        case "needInput": {
          await this.#flush();
          this.#ensureOpen();
          const chunk = await this.#read();
          this.#ensureOpen();
          if (chunk === null) client.receiveEof();
          else client.receiveData(chunk);
          this.#resumeIfRoom();
          continue;
        }
        case "startTls":
          await this.#flush();
          this.#ensureOpen();
          await this.#upgrade();
          this.#ensureOpen();
          continue;
        case "trace":
          this.#onTrace?.(event.direction, event.line);
          continue;
        case "protocolError":
          this.#fail(new ProtocolError(event.message));
          throw this.#fatal;
        case "closed":
          this.#teardown();
          return event;
        default:
          return event;
      }
    }
  }

  async #upgrade() {
    const client = this.#client;
    // Bytes that came with or after the +OK to STLS go to the core, which
    // refuses them: a man in the middle may have injected them.
    if (this.#inbox.length > 0) {
      for (const chunk of this.#inbox.splice(0)) client.receiveData(chunk);
      this.#inboxBytes = 0;
      return;
    }
    const plain = this.#socket;
    this.#detach();
    plain.pause();
    let secure;
    try {
      // Inside the try: tls.connect throws at once on options it refuses,
      // and the core must still hear that the upgrade failed.
      secure = tls.connect({ socket: plain, ...this.#trust.options });
      await handshake(secure, this.#trust.pins, this.#timeout);
    } catch (error) {
      secure?.destroy();
      this.#socket = plain;
      this.#ensureOpen();
      // The core ends the session (the upgrade fails, what waited is
      // cancelled); the handshake's own error is what the caller sees.
      client.tlsFailed();
      this.#fail(tlsFailure(error));
      throw this.#fatal;
    }
    if (this.#closed) {
      secure.destroy();
      this.#ensureOpen();
    }
    this.#paused = false;
    this.#attach(secure);
    client.tlsEstablished();
    const certificate = secure.getPeerCertificate()?.raw;
    if (certificate) client.bindPendingLogins(certificate);
  }

  /** The next event of `handle`; events of abandoned commands are dropped. */
  async #wait(handle) {
    for (;;) {
      const event = await this.#next();
      if (event.kind === "closed") throw new ConnectionError("the server closed the connection");
      if (event.handle === handle) return event;
    }
  }

  /** Waits for the command's completion; throws for -ERR and failures. */
  async #complete(handle) {
    for (;;) {
      const event = await this.#wait(handle);
      throwFor(event);
      if (event.kind !== "bodyStart" && event.kind !== "body") return event;
    }
  }

  /**
   * A call made from inside an open retr loop would wait for the loop, which
   * waits for that call: refused at once rather than left to hang.
   */
  #refuseInsideLoop() {
    if (this.#insideLoop) {
      throw new UsageError("leave the retr loop first: the session is busy with the message being read");
    }
  }

  /** Yields `value` to the loop's consumer, marking the session as held by it. */
  async *#handOver(value) {
    this.#insideLoop = true;
    try {
      yield value;
    } finally {
      this.#insideLoop = false;
    }
  }

  /** Runs `fn` when the commands before it are done. */
  #exclusive(fn) {
    this.#refuseInsideLoop();
    const run = this.#queue.then(fn);
    this.#queue = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  /** A lock held across an iterator's life. */
  async #acquire() {
    this.#refuseInsideLoop();
    let release;
    const held = new Promise((resolve) => (release = resolve));
    const previous = this.#queue;
    this.#queue = previous.then(() => held);
    await previous;
    return release;
  }

  #submit(fn) {
    this.#ensureOpen();
    return fn(this.#client);
  }

  /** @internal */
  async _greeting() {
    for (;;) {
      const event = await this.#next();
      if (event.kind === "greeting") return event;
      if (event.kind === "closed") throw new ConnectionError("the server closed the connection before its greeting");
    }
  }

  async #simple(fn) {
    return this.#exclusive(async () => this.#complete(this.#submit(fn)));
  }

  /** The server's capabilities, as last read (`{NAME: [arguments]}`), or null. */
  get capabilities() {
    return this.#closed ? null : this.#client.capabilities;
  }
  get isEncrypted() {
    return !this.#closed && this.#client.isEncrypted;
  }
  get isPipelining() {
    return !this.#closed && this.#client.isPipelining;
  }
  get loginMechanism() {
    return this.#closed ? null : this.#client.loginMechanism;
  }
  get closed() {
    return this.#closed;
  }

  /** Upgrades with STLS (done by `connect` with `tls: "starttls"`). */
  async startTls() {
    return this.#exclusive(async () => {
      try {
        await this.#complete(this.#submit((c) => c.startTls()));
      } catch (error) {
        if (error instanceof ServerError || error instanceof CancelledError) {
          this.#fail(new TlsError(`the server refused STLS: ${error.message}`, { cause: error }));
          throw this.#fatal;
        }
        throw error;
      }
    });
  }

  /** Logs in; `method` "auto" chooses the strongest mechanism the server offers. */
  async login(user, secret, { method = "auto" } = {}) {
    const event = await this.#simple((c) => c.login(user, secret, {
        method,
        // Read when the login's turn comes: an upgrade queued before it
        // (startTls() not awaited) has replaced the socket by then, and its
        // certificate is what SCRAM -PLUS binds to.
        tlsCertificate: this.#socket.getPeerCertificate?.()?.raw,
        // From node:crypto: Node 18, the declared minimum, has no
        // globalThis.crypto unless started with --experimental-global-webcrypto.
        scramNonce: randomBytes(18).toString("hex"),
      }));
    return { mechanism: this.#client.loginMechanism, text: event.text };
  }

  /** `{count, size}` of the maildrop. */
  async stat() {
    const { count, size } = await this.#simple((c) => c.stat());
    return { count, size };
  }

  /** `[{msg, size}]`, or `{msg, size}` for one message. */
  async list(msg) {
    const event = await this.#simple((c) => c.list(msg));
    return msg === undefined ? event.entries : event.entries[0];
  }

  /** `[{msg, uid}]`, or `{msg, uid}` for one message. */
  async uidl(msg) {
    const event = await this.#simple((c) => c.uidl(msg));
    return msg === undefined ? event.entries : event.entries[0];
  }

  /** The headers and the first `lines` lines of the body, whole. */
  async top(msg, lines) {
    return this.#exclusive(async () => collect(this.#body(this.#submit((c) => c.top(msg, lines)))));
  }

  /**
   * The message as an async iterator of `Uint8Array` chunks, dot-unstuffed,
   * exactly as stored. Nothing more is read from the server until the
   * consumer asks for the next chunk; leaving the loop early drops the rest.
   */
  async *retr(msg) {
    const release = await this.#acquire();
    try {
      for await (const chunk of this.#body(this.#submit((c) => c.retr(msg)))) yield* this.#handOver(chunk);
    } finally {
      release();
    }
  }

  async *#body(handle) {
    let done = false;
    try {
      for (;;) {
        const event = await this.#wait(handle);
        throwFor(event);
        if (event.kind === "body") yield event.data;
        else if (event.kind === "bodyEnd") {
          done = true;
          return;
        }
      }
    } finally {
      if (!done && !this.#closed) this.#client.discard(handle);
    }
  }

  /** Writes the message to a Node.js writable stream, honouring its back-pressure. Returns the octets written. */
  async retrTo(msg, writable) {
    let total = 0;
    for await (const chunk of this.retr(msg)) {
      total += chunk.length;
      if (!writable.write(chunk)) await drained(writable);
    }
    return total;
  }

  /**
   * Retrieves many messages, pipelined when the server allows (all commands
   * in one round trip): yields `{msg, data}` per message in order, or
   * `{msg, error}` for one the server refused. Each message is held whole
   * once, then handed over.
   */
  async *retrMany(msgs) {
    const release = await this.#acquire();
    let handles = [];
    let next = 0;
    try {
      handles = this.#submit((c) => c.retrMany(msgs));
      for (; next < handles.length; next++) {
        const msg = msgs[next];
        try {
          const data = await collect(this.#body(handles[next]));
          yield* this.#handOver({ msg, data });
        } catch (error) {
          if (error instanceof ServerError || error instanceof ReplyError) yield* this.#handOver({ msg, error });
          else throw error;
        }
      }
    } finally {
      if (!this.#closed) for (const h of handles.slice(next + 1)) this.#client.discard(h);
      release();
    }
  }

  /** Marks a message deleted (at QUIT). */
  async dele(msg) {
    await this.#simple((c) => c.dele(msg));
  }

  /** Unmarks every deleted message. */
  async rset() {
    await this.#simple((c) => c.rset());
  }

  async noop() {
    await this.#simple((c) => c.noop());
  }

  /** Ends the session: deletions take effect, then the connection closes. */
  async quit() {
    if (this.#closed) return;
    await this.#exclusive(async () => {
      const handle = this.#submit((c) => c.quit());
      await this.#complete(handle);
      // The core closes after the reply to QUIT.
      while (!this.#closed) await this.#next();
    });
  }

  /** Closes the connection at once, without QUIT (deletions are not made). */
  close() {
    this.#teardown();
  }

  /** `await using session = await connect(...)`: QUIT if open, else nothing. */
  async [asyncDispose]() {
    if (this.#closed || this.#fatal) {
      this.close();
      return;
    }
    try {
      await this.quit();
    } catch {
      this.close();
    }
  }
}

function throwFor(event) {
  switch (event.kind) {
    case "err":
      throw new ServerError(event.text, {
        responseCode: event.code,
        tokenRefusal: event.tokenRefusal,
        authenticationRefused: event.authenticationRefused,
        temporary: event.temporary,
      });
    case "failed":
      throw new ReplyError(event.error);
    case "cancelled":
      if (event.sessionEnded) throw new ConnectionError(event.reason);
      throw new CancelledError(event.reason);
  }
}

/**
 * Waits for a writable's "drain"; rejects on its "error" (which `once`
 * turns into a rejection) or when it closes without one, which would
 * otherwise never drain.
 */
async function drained(writable) {
  const closed = () =>
    new Pop3Error("the writable closed before the message was written", { code: "ERR_STREAM_PREMATURE_CLOSE" });
  if (writable.destroyed || writable.closed) throw closed();
  const abandon = new AbortController();
  try {
    await Promise.race([
      once(writable, "drain", { signal: abandon.signal }),
      once(writable, "close", { signal: abandon.signal }).then(() => {
        throw closed();
      }),
    ]);
  } finally {
    abandon.abort();
  }
}

async function collect(chunks) {
  const parts = [];
  let length = 0;
  for await (const chunk of chunks) {
    parts.push(chunk);
    length += chunk.length;
  }
  if (parts.length === 1) return parts[0];
  const whole = new Uint8Array(length);
  let at = 0;
  for (const part of parts) {
    whole.set(part, at);
    at += part.length;
  }
  return whole;
}
