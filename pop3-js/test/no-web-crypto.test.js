// A host without the Web Crypto API, as Node 18 (the declared minimum) is
// by default: the Node driver still logs in, and the sans-IO client says
// what to do instead of failing inside itself.

import { test, after } from "node:test";
import assert from "node:assert/strict";
import { connect, Client, UsageError } from "../index.js";
import { scripted, serve } from "./helpers.js";

// This file runs in a process of its own: nothing else sees the removal.
Object.defineProperty(globalThis, "crypto", { value: undefined, configurable: true, writable: true });

const servers = [];
after(async () => {
  for (const server of servers) await server.close();
});

test("without globalThis.crypto the Node driver logs in (its nonce comes from node:crypto)", async () => {
  const server = await scripted(
    serve({ CAPA: "-ERR no\r\n", USER: "+OK\r\n", PASS: "+OK in\r\n", QUIT: "+OK bye\r\n" }),
  );
  servers.push(server);
  const session = await connect({
    host: server.host,
    port: server.port,
    tls: "none",
    allowPlaintextCredentials: true,
    timeout: 10_000,
  });
  const { mechanism } = await session.login("u", "p", { method: "user" });
  assert.equal(mechanism, "USER/PASS");
  await session.quit();
});

test("without globalThis.crypto the sans-IO login asks for a scramNonce, with a code", () => {
  const client = new Client({ allowPlaintextCredentials: true });
  client.receiveData(new TextEncoder().encode("+OK hello\r\n"));
  assert.equal(client.nextEvent().kind, "greeting");
  assert.throws(
    () => client.login("u", "p", { method: "user" }),
    (error) => error instanceof UsageError && error.code === "ERR_POP3_USAGE" && /scramNonce/.test(error.message),
  );
  assert.equal(typeof client.login("u", "p", { method: "user", scramNonce: "00ff" }), "bigint");
  client.free();
});
