// Test servers: the workspace's real Dovecot (test-support's `local-dovecot`)
// and scripted servers on loopback, the JavaScript twin of the Python
// suite's conftest.

import { spawn, execFileSync } from "node:child_process";
import { createInterface } from "node:readline";
import { readdirSync, readFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import * as net from "node:net";
import * as tls from "node:tls";
import { fileURLToPath } from "node:url";

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

function localDovecot() {
  return (
    process.env.POP3_LOCAL_DOVECOT ??
    path.join(process.env.CARGO_TARGET_DIR ?? path.join(REPO, "target"), "debug", "local-dovecot")
  );
}

/** A running Dovecot with one user; `messages` are its maildrop's files in message-number order. */
export async function startDovecot(...args) {
  const proc = spawn(localDovecot(), args, { stdio: ["pipe", "pipe", "inherit"] });
  const lines = createInterface({ input: proc.stdout });
  const first = await new Promise((resolve, reject) => {
    lines.once("line", resolve);
    proc.once("exit", (code) => reject(new Error(`local-dovecot exited (${code}) before printing its address`)));
    proc.once("error", reject);
  });
  const info = JSON.parse(first);
  const files = ["new", "cur"]
    .flatMap((sub) => readdirSync(path.join(info.maildir, sub)).map((name) => path.join(info.maildir, sub, name)))
    .sort((a, b) => parseInt(path.basename(a), 10) - parseInt(path.basename(b), 10));
  const messages = files.map((file) => new Uint8Array(readFileSync(file)));
  if (messages.length !== info.messages) throw new Error("maildrop does not match local-dovecot's count");
  return {
    ...info,
    messages,
    ca: readFileSync(info.ca),
    port(mode) {
      return mode === "implicit" ? info.tls_port : info.plain_port;
    },
    async stop() {
      proc.stdin.end();
      await new Promise((resolve) => proc.once("exit", resolve));
    },
  };
}

/** A self-signed certificate valid only for wrong.example, made with openssl. */
export function wrongCertificate() {
  const dir = mkdtempSync(path.join(tmpdir(), "pop3-js-"));
  const key = path.join(dir, "wrong.key");
  const cert = path.join(dir, "wrong.pem");
  execFileSync(
    "openssl",
    ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-keyout", key, "-out", cert,
      "-subj", "/CN=wrong.example", "-addext", "subjectAltName=DNS:wrong.example"],
    { stdio: "ignore" },
  );
  const identity = { key: readFileSync(key), cert: readFileSync(cert) };
  rmSync(dir, { recursive: true });
  return identity;
}

/** The server's side of one scripted connection. */
export class Peer {
  constructor(socket) {
    this.socket = socket;
    this.buffer = Buffer.alloc(0);
    this.waiting = null;
    this.ended = false;
    this.#listen();
  }

  #listen() {
    this.socket.on("data", (chunk) => {
      this.buffer = Buffer.concat([this.buffer, chunk]);
      this.waiting?.();
    });
    this.socket.on("end", () => {
      this.ended = true;
      this.waiting?.();
    });
    this.socket.on("error", () => {
      this.ended = true;
      this.waiting?.();
    });
  }

  send(data) {
    return new Promise((resolve) => this.socket.write(data, () => resolve()));
  }

  /** The next command line without CRLF ("" at end of stream). */
  async line() {
    for (;;) {
      const at = this.buffer.indexOf(10);
      if (at >= 0) {
        const line = this.buffer.subarray(0, at).toString("latin1").replace(/\r$/, "");
        this.buffer = this.buffer.subarray(at + 1);
        return line;
      }
      if (this.ended) return "";
      await new Promise((resolve) => (this.waiting = resolve));
      this.waiting = null;
    }
  }

  /** Upgrades this connection to TLS as a server. */
  async startTls({ key, cert }) {
    this.socket.removeAllListeners("data");
    this.socket.removeAllListeners("end");
    const secure = new tls.TLSSocket(this.socket, { isServer: true, key, cert });
    this.socket = secure;
    this.#listen();
    await new Promise((resolve) => {
      secure.once("secure", resolve);
      secure.once("error", resolve);
      secure.once("close", resolve);
    });
  }

  close() {
    this.socket.destroy();
  }
}

/**
 * A loopback server running `script(peer)` for each connection; with
 * `tlsIdentity` ({key, cert}) it is implicit TLS.
 */
export async function scripted(script, { tlsIdentity } = {}) {
  const errors = [];
  const onSocket = async (socket) => {
    socket.on("error", () => {});
    const peer = new Peer(socket);
    try {
      await script(peer);
    } catch (error) {
      errors.push(error);
    } finally {
      peer.close();
    }
  };
  const server = tlsIdentity ? tls.createServer(tlsIdentity, onSocket) : net.createServer(onSocket);
  server.on("tlsClientError", () => {});
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    host: "127.0.0.1",
    port: server.address().port,
    errors,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

export const GREETING = "+OK scripted server ready <1896.697170952@dbc.mtview.ca.us>\r\n";

/** A script answering each command by its verb; a function reply gets (peer, line) and returns the reply, or null to hang up. */
export function serve(replies, { greeting = GREETING, log } = {}) {
  return async (peer) => {
    await peer.send(greeting);
    for (;;) {
      const line = await peer.line();
      if (!line) return;
      log?.push(line);
      const verb = line.split(" ")[0].toUpperCase();
      let reply = replies[verb] ?? "-ERR unknown command\r\n";
      if (typeof reply === "function") {
        reply = await reply(peer, line);
        if (reply === null) return;
      }
      await peer.send(reply);
      if (verb === "QUIT") return;
    }
  };
}

export function equalBytes(a, b) {
  return Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.length), Buffer.from(b.buffer, b.byteOffset, b.length)) === 0;
}
