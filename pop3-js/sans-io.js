// The sans-IO client for any JavaScript host: bytes in, events out, commands
// in, bytes out. Every decision is the WebAssembly core's (pop3-proto); this
// file only converts values. It uses no Node.js API, so it runs wherever
// WebAssembly does (Node, Bun, Deno, Cloudflare Workers, browsers).

import { initSync, Client as Core } from "./wasm/pop3_wasm.js";
import { ProtocolError, UsageError } from "./errors.js";

// Hosts other than Node import only this module: the errors it and its
// callers throw come with it.
export * from "./errors.js";

let initialised = false;

/**
 * Instantiates the WebAssembly core from its bytes or a compiled
 * `WebAssembly.Module` (once; later calls do nothing). The Node entry point
 * does it by itself; on other hosts, import the `.wasm` file and pass it here.
 */
export function init(module) {
  if (!initialised) {
    initSync({ module });
    initialised = true;
  }
}

/**
 * A SCRAM client nonce: 144 random bits from the Web Crypto API, as hex.
 * Hosts without it (Node 18 has no `globalThis.crypto` by default) pass
 * their own `scramNonce` to `login`, as the Node driver does.
 */
function scramNonce() {
  const crypto = globalThis.crypto;
  if (typeof crypto?.getRandomValues !== "function") {
    throw new UsageError("this host has no Web Crypto API (globalThis.crypto): pass login a scramNonce");
  }
  const bytes = new Uint8Array(18);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function refused(json) {
  const error = json ? JSON.parse(json) : { kind: "usage", message: "refused" };
  return error.kind === "protocol" ? new ProtocolError(error.message) : new UsageError(error.message);
}

function msgNumber(n) {
  if (!Number.isInteger(n) || n < 1 || n > 0xffffffff) {
    throw new UsageError(`message numbers are integers from 1, not ${n}`);
  }
  return n;
}

function lineCount(n) {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) {
    throw new UsageError(`TOP takes a line count from 0, not ${n}`);
  }
  return n;
}

const optional = (n) => (n === undefined || n === null ? undefined : n);

/**
 * The sans-IO POP3 client. Feed what the server sent to `receiveData`,
 * write what `dataToSend` returns, and handle `nextEvent()` until it says
 * `needInput`, `startTls` or `closed`.
 */
export class Client {
  #core;

  constructor({
    encrypted = false,
    allowPlaintextCredentials = false,
    trace = false,
    pipelineWindow,
    readSize,
    maxLineLen,
    maxListingLines,
    maxListingBytes,
    maxBodyLineLen,
  } = {}) {
    if (!initialised) {
      throw new UsageError("the WebAssembly core is not initialised: call init(module) first");
    }
    this.#core = new Core(
      encrypted,
      allowPlaintextCredentials,
      trace,
      optional(pipelineWindow),
      optional(readSize),
      optional(maxLineLen),
      optional(maxListingLines),
      optional(maxListingBytes),
      optional(maxBodyLineLen),
    );
  }

  /** The core, or a coded error once `free()` has run. */
  #live() {
    if (this.#core === undefined) throw new UsageError("this client was freed");
    return this.#core;
  }

  /** Bytes received from the server; an empty array means it closed the connection. */
  receiveData(bytes) {
    if (bytes.length === 0) this.#live().receive_eof();
    else this.#live().receive(bytes);
  }

  /** The server closed its side of the connection. */
  receiveEof() {
    this.#live().receive_eof();
  }

  /** The next event, as a plain object with a `kind` (see the type declarations). */
  nextEvent() {
    const event = JSON.parse(this.#live().next_event());
    if (event.handle !== undefined && event.handle !== null) event.handle = BigInt(event.handle);
    switch (event.kind) {
      case "body":
        event.data = this.#live().take_body();
        break;
      case "listing":
        event.entries = event.entries.map(([msg, size]) => ({ msg, size }));
        break;
      case "uidListing":
        event.entries = event.entries.map(([msg, uid]) => ({ msg, uid }));
        break;
    }
    return event;
  }

  /** The bytes to write to the server now (may be empty). */
  dataToSend() {
    return this.#live().data_to_send();
  }

  /** The TLS handshake asked for by `startTls` has completed. */
  tlsEstablished() {
    if (!this.#live().tls_established()) throw refused(this.#live().last_error());
  }

  /** The TLS handshake asked for by `startTls` failed: the session ends. */
  tlsFailed() {
    if (!this.#live().tls_failed()) throw refused(this.#live().last_error());
  }

  /** The server certificate (DER) for logins queued behind the upgrade (SCRAM -PLUS). */
  bindPendingLogins(certificate) {
    return this.#live().bind_pending_logins(certificate);
  }

  get bufferedInput() {
    return this.#live().buffered_input();
  }
  /** The most input a driver should hold before asking for events again. */
  get inputBound() {
    return this.#live().input_bound();
  }
  get state() {
    return this.#live().state();
  }
  get isEncrypted() {
    return this.#live().is_encrypted();
  }
  get isPipelining() {
    return this.#live().is_pipelining();
  }
  get isIdle() {
    return this.#live().is_idle();
  }
  get loginMechanism() {
    return this.#live().login_mechanism() ?? null;
  }
  get capabilities() {
    const json = this.#live().capabilities();
    return json === undefined ? null : JSON.parse(json);
  }
  get apopTimestamp() {
    return this.#live().apop_timestamp() ?? null;
  }

  #handle(h) {
    if (h === 0n) throw refused(this.#live().last_error());
    return h;
  }

  user(name) {
    return this.#handle(this.#live().user(name));
  }
  pass(password) {
    return this.#handle(this.#live().pass(password));
  }
  apop(user, password) {
    return this.#handle(this.#live().apop(user, password));
  }
  capa() {
    return this.#handle(this.#live().capa());
  }
  stls() {
    return this.#handle(this.#live().stls());
  }
  stat() {
    return this.#handle(this.#live().stat());
  }
  list(msg) {
    return this.#handle(this.#live().list(msg === undefined ? 0 : msgNumber(msg)));
  }
  uidl(msg) {
    return this.#handle(this.#live().uidl(msg === undefined ? 0 : msgNumber(msg)));
  }
  retr(msg) {
    return this.#handle(this.#live().retr(msgNumber(msg)));
  }
  top(msg, lines) {
    return this.#handle(this.#live().top(msgNumber(msg), lineCount(lines)));
  }
  dele(msg) {
    return this.#handle(this.#live().dele(msgNumber(msg)));
  }
  noop() {
    return this.#handle(this.#live().noop());
  }
  rset() {
    return this.#handle(this.#live().rset());
  }
  quit() {
    return this.#handle(this.#live().quit());
  }
  utf8() {
    return this.#handle(this.#live().utf8());
  }

  /**
   * The whole login as one handle. `method`: "auto" (the strongest the server
   * offers) or a mechanism name; `tlsCertificate`: the server certificate
   * (DER), which lets "auto" choose SCRAM -PLUS.
   */
  login(user, secret, { method = "auto", scramNonce: nonce, tlsCertificate } = {}) {
    return this.#handle(
      this.#live().login(user, secret, method, nonce ?? scramNonce(), tlsCertificate ?? undefined),
    );
  }

  /** RETR of each message, pipelined when the server allows: one handle per message. */
  retrMany(msgs) {
    const handles = this.#live().retr_many(Uint32Array.from(msgs, msgNumber));
    if (handles.length === 0 && msgs.length > 0) throw refused(this.#live().last_error());
    return Array.from(handles);
  }

  /** DELE of each message, pipelined like `retrMany`. */
  deleMany(msgs) {
    const handles = this.#live().dele_many(Uint32Array.from(msgs, msgNumber));
    if (handles.length === 0 && msgs.length > 0) throw refused(this.#live().last_error());
    return Array.from(handles);
  }

  /** The whole STLS upgrade as one handle. */
  startTls() {
    return this.#handle(this.#live().start_tls());
  }

  /** Stops reporting a command: the rest of its reply is read and dropped. */
  discard(handle) {
    this.#live().discard(BigInt(handle));
  }

  /** Frees the WebAssembly memory of this client now. */
  free() {
    if (this.#core) {
      this.#core.free();
      this.#core = undefined;
    }
  }

  [Symbol.dispose]() {
    this.free();
  }
}
