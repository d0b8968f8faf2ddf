import type { Capabilities, ListEntry, UidlEntry } from "./sans-io.js";
export { Client, init } from "./sans-io.js";
export type { ClientOptions, Event, Handle, ListEntry, UidlEntry, Capabilities, LoginOptions } from "./sans-io.js";
export * from "./errors.js";

export interface ConnectOptions {
  host?: string;
  /** Default 995 for implicit TLS, else 110. */
  port?: number;
  /** Default "implicit". "starttls" upgrades with STLS and never falls back. */
  tls?: "implicit" | "starttls" | "none";
  /** Trusted CA certificates or an exact (self-signed) server certificate, PEM. */
  ca?: string | Uint8Array | Array<string | Uint8Array>;
  /** A PEM file read as `ca`. */
  caFile?: string;
  /** SHA-256 fingerprint(s) of the server certificate ("AB:CD:..." or hex); nothing else is checked. */
  pinSha256?: string | string[];
  /** The name the certificate must carry (default: host). */
  servername?: string;
  /** Milliseconds: connect, TLS handshake, and the longest silence of the server. Default 30000. */
  timeout?: number;
  allowPlaintextCredentials?: boolean;
  /** Every line on the wire, secrets redacted. */
  onTrace?: (direction: "sent" | "received", line: string) => void;
  pipelineWindow?: number;
  readSize?: number;
}

/** What `retrTo` uses of a Node.js writable stream (`events.once` listens with `on`/`removeListener`). */
export interface Writable {
  write(chunk: Uint8Array): boolean;
  readonly destroyed?: boolean;
  readonly closed?: boolean;
  on(event: "drain" | "error" | "close", listener: (...args: any[]) => void): unknown;
  once(event: "drain" | "error" | "close", listener: (...args: any[]) => void): unknown;
  removeListener(event: "drain" | "error" | "close", listener: (...args: any[]) => void): unknown;
}

export type RetrManyResult = { msg: number; data: Uint8Array; error?: undefined } | { msg: number; error: Error; data?: undefined };

export class Session {
  readonly capabilities: Capabilities | null;
  readonly isEncrypted: boolean;
  readonly isPipelining: boolean;
  readonly loginMechanism: string | null;
  readonly closed: boolean;
  startTls(): Promise<void>;
  login(user: string, secret: string, options?: { method?: string }): Promise<{ mechanism: string | null; text: string }>;
  stat(): Promise<{ count: number; size: number }>;
  list(): Promise<ListEntry[]>;
  list(msg: number): Promise<ListEntry>;
  uidl(): Promise<UidlEntry[]>;
  uidl(msg: number): Promise<UidlEntry>;
  top(msg: number, lines: number): Promise<Uint8Array>;
  retr(msg: number): AsyncGenerator<Uint8Array, void, undefined>;
  retrTo(msg: number, writable: Writable): Promise<number>;
  retrMany(msgs: number[]): AsyncGenerator<RetrManyResult, void, undefined>;
  dele(msg: number): Promise<void>;
  rset(): Promise<void>;
  noop(): Promise<void>;
  quit(): Promise<void>;
  close(): void;
  [Symbol.asyncDispose](): Promise<void>;
}

export function connect(options?: ConnectOptions): Promise<Session>;
