/** Instantiates the WebAssembly core (once) from its bytes or a compiled module. */
export function init(module: BufferSource | WebAssembly.Module): void;

/** A command's identity: the core's handle id. */
export type Handle = bigint;

export interface ClientOptions {
  /** The connection is already TLS (port 995). */
  encrypted?: boolean;
  /** Allow USER/PASS, APOP and plaintext SASL without TLS. Off by default. */
  allowPlaintextCredentials?: boolean;
  /** Report every line on the wire as `trace` events, secrets redacted. */
  trace?: boolean;
  pipelineWindow?: number;
  readSize?: number;
  maxLineLen?: number;
  maxListingLines?: number;
  maxListingBytes?: number;
  maxBodyLineLen?: number;
}

export interface ListEntry { msg: number; size: number }
export interface UidlEntry { msg: number; uid: string }
export type Capabilities = Record<string, string[]>;

export type Event =
  | { kind: "needInput" }
  | { kind: "startTls" }
  | { kind: "closed" }
  | { kind: "protocolError"; message: string }
  | { kind: "greeting"; text: string; apopTimestamp: string | null }
  | { kind: "ok"; handle: Handle; text: string }
  | { kind: "loggedIn"; handle: Handle; text: string }
  | { kind: "stat"; handle: Handle; count: number; size: number }
  | { kind: "listing"; handle: Handle; entries: ListEntry[] }
  | { kind: "uidListing"; handle: Handle; entries: UidlEntry[] }
  | { kind: "capabilities"; handle: Handle | null; capabilities: Capabilities }
  | { kind: "bodyStart"; handle: Handle }
  | { kind: "body"; handle: Handle; data: Uint8Array }
  | { kind: "bodyEnd"; handle: Handle }
  | { kind: "tlsEstablished"; handle: Handle }
  | { kind: "trace"; direction: "sent" | "received"; line: string }
  | {
      kind: "err";
      handle: Handle;
      code: string | null;
      text: string;
      tokenRefusal: string | null;
      authenticationRefused: boolean;
      temporary: boolean;
    }
  | { kind: "failed"; handle: Handle; error: string }
  | { kind: "cancelled"; handle: Handle; reason: string; sessionEnded: boolean };

export interface LoginOptions {
  /** "auto" (default), "user", "apop", "plain", "login", "cram-md5", "scram-sha-1", "scram-sha-256", "xoauth2", "oauthbearer". */
  method?: string;
  scramNonce?: string;
  /** The server certificate (DER), for SCRAM -PLUS channel binding. */
  tlsCertificate?: Uint8Array;
}

/** The sans-IO POP3 client: bytes in, events out, commands in, bytes out. */
export class Client {
  constructor(options?: ClientOptions);
  receiveData(bytes: Uint8Array): void;
  receiveEof(): void;
  nextEvent(): Event;
  dataToSend(): Uint8Array;
  tlsEstablished(): void;
  tlsFailed(): void;
  bindPendingLogins(certificate: Uint8Array): number;
  readonly bufferedInput: number;
  readonly inputBound: number;
  readonly state: "greeting" | "authorization" | "transaction" | "closed";
  readonly isEncrypted: boolean;
  readonly isPipelining: boolean;
  readonly isIdle: boolean;
  readonly loginMechanism: string | null;
  readonly capabilities: Capabilities | null;
  readonly apopTimestamp: string | null;
  user(name: string): Handle;
  pass(password: string): Handle;
  apop(user: string, password: string): Handle;
  capa(): Handle;
  stls(): Handle;
  stat(): Handle;
  list(msg?: number): Handle;
  uidl(msg?: number): Handle;
  retr(msg: number): Handle;
  top(msg: number, lines: number): Handle;
  dele(msg: number): Handle;
  noop(): Handle;
  rset(): Handle;
  quit(): Handle;
  utf8(): Handle;
  login(user: string, secret: string, options?: LoginOptions): Handle;
  retrMany(msgs: number[]): Handle[];
  deleMany(msgs: number[]): Handle[];
  startTls(): Handle;
  discard(handle: Handle): void;
  free(): void;
}

export * from "./errors.js";
