// A Cloudflare Worker that reads a mailbox's size over POP3 with STLS,
// through the sans-IO client and Workers' TCP sockets (`cloudflare:sockets`).
// The driver loop is the same as the Node.js one: write what the core gives,
// read when it asks, upgrade when it says `startTls`.
//
// wrangler.toml: main = "cloudflare-worker.js", compatibility_flags = ["nodejs_compat"]
// is not needed; the .wasm import is bundled by wrangler as a WebAssembly.Module.
import { connect } from "cloudflare:sockets";
import { Client, init } from "pop3/sans-io";
import wasm from "pop3/wasm";

init(wasm);

async function run(host, port, user, secret) {
  let socket = connect({ hostname: host, port }, { secureTransport: "starttls" });
  let writer = socket.writable.getWriter();
  let reader = socket.readable.getReader();
  const client = new Client();
  const results = new Map();
  const upgrade = client.startTls();
  const login = client.login(user, secret);
  const stat = client.stat();
  const quit = client.quit();
  let tlsError = null;
  try {
    for (;;) {
      const event = client.nextEvent();
      const out = client.dataToSend();
      if (out.length > 0) await writer.write(out);
      if (event.kind === "needInput") {
        const { value, done } = await reader.read();
        if (done) client.receiveEof();
        else client.receiveData(value);
      } else if (event.kind === "startTls") {
        // Workers refuse the upgrade while plaintext is unread; the core has
        // refused any bytes after the +OK already.
        writer.releaseLock();
        reader.releaseLock();
        socket = socket.startTls();
        writer = socket.writable.getWriter();
        reader = socket.readable.getReader();
        // The core learns of the upgrade only once the handshake is done;
        // if it fails, the core ends the session and cancels what waited.
        try {
          await socket.opened;
        } catch (error) {
          tlsError = error;
          client.tlsFailed();
          continue;
        }
        client.tlsEstablished();
      } else if (event.kind === "closed") {
        break;
      } else if (event.kind === "protocolError") {
        throw new Error(event.message);
      } else if (event.handle !== undefined) {
        results.set(event.handle, event);
      }
    }
  } finally {
    await socket.close();
    client.free();
  }
  if (tlsError) throw new Error(`TLS failed: ${tlsError.message}`, { cause: tlsError });
  for (const handle of [upgrade, login, quit]) {
    const event = results.get(handle);
    if (!event || ["err", "failed", "cancelled"].includes(event.kind)) {
      throw new Error(`POP3 step failed: ${event ? event.kind : "no reply"}`);
    }
  }
  return results.get(stat);
}

export default {
  async fetch(request, env) {
    const stat = await run(env.POP3_HOST, Number(env.POP3_PORT ?? 110), env.POP3_USER, env.POP3_SECRET);
    return Response.json({ messages: stat.count, octets: stat.size });
  },
};
