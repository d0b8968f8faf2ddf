// The package as shipped: the WebAssembly file's size, no runtime
// dependencies, and the sans-IO client usable without any socket.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, statSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { Client, UsageError } from "../index.js";

const root = new URL("../", import.meta.url);

test("the .wasm file stays under 1 MiB", () => {
  const size = statSync(new URL("wasm/pop3_wasm_bg.wasm", root)).size;
  assert.ok(size > 100_000, `suspiciously small: ${size}`);
  assert.ok(size < 1024 * 1024, `the core grew to ${size} octets`);
});

test("package.json declares no runtime dependencies and ships its types", () => {
  const pkg = JSON.parse(readFileSync(new URL("package.json", root), "utf8"));
  assert.equal(pkg.dependencies, undefined);
  assert.equal(pkg.peerDependencies, undefined);
  assert.equal(pkg.optionalDependencies, undefined);
  assert.equal(pkg.type, "module");
  for (const file of pkg.files.filter((f) => f.endsWith(".d.ts") || f.endsWith(".js") || f.endsWith(".wasm"))) {
    assert.ok(statSync(new URL(file, root)).isFile(), `${file} is missing`);
  }
});

test("the sans-IO client: bytes in, events out, without a socket", () => {
  const client = new Client({ allowPlaintextCredentials: true });
  const encoder = new TextEncoder();
  client.receiveData(encoder.encode("+OK hello <1.2@host>\r\n"));
  const greeting = client.nextEvent();
  assert.equal(greeting.kind, "greeting");
  assert.equal(greeting.apopTimestamp, "<1.2@host>");
  assert.equal(client.nextEvent().kind, "needInput");
  assert.throws(() => client.stat(), UsageError, "STAT before login is refused by the core");
  assert.throws(() => client.retr(0), UsageError);
  const login = client.login("u", "p", { method: "user" });
  assert.equal(typeof login, "bigint");
  assert.equal(new TextDecoder().decode(client.dataToSend()), "USER u\r\n");
  client.receiveData(encoder.encode("+OK\r\n"));
  assert.equal(new TextDecoder().decode(client.dataToSend()), "PASS p\r\n");
  client.receiveData(encoder.encode("+OK in\r\n"));
  const done = client.nextEvent();
  assert.deepEqual([done.kind, done.handle], ["loggedIn", login]);
  const retr = client.retr(1);
  client.dataToSend();
  client.receiveData(encoder.encode("+OK\r\na\r\n..b\r\n.\r\n"));
  const events = [];
  for (let e = client.nextEvent(); e.kind !== "needInput"; e = client.nextEvent()) events.push(e);
  assert.deepEqual(events.map((e) => e.kind), ["bodyStart", "body", "bodyEnd"]);
  assert.equal(events[1].handle, retr);
  assert.equal(new TextDecoder().decode(events[1].data), "a\r\n.b\r\n");
  client.free();
});

test("the packed tarball holds both licence texts, the same as the workspace's", () => {
  // Copies, not links: npm pack leaves symbolic links out.
  const [pack] = JSON.parse(
    execFileSync("npm", ["pack", "--dry-run", "--json", "--silent"], { cwd: root, encoding: "utf8" }),
  );
  const packed = pack.files.map((f) => f.path);
  for (const licence of ["LICENSE-MIT", "LICENSE-APACHE"]) {
    assert.ok(packed.includes(licence), `${licence} is not in the tarball: ${packed.join(", ")}`);
    assert.equal(readFileSync(new URL(licence, root), "utf8"), readFileSync(new URL(`../${licence}`, root), "utf8"));
  }
});

test("pop3/sans-io exports the error classes its type declarations promise", async () => {
  const sansIo = await import("../sans-io.js");
  const errors = await import("../errors.js");
  for (const [name, value] of Object.entries(errors)) {
    assert.equal(sansIo[name], value, `${name} is not exported by sans-io.js`);
  }
  assert.ok(sansIo.UsageError && sansIo.ServerError && sansIo.ConnectionError);
});

test("top refuses a line count that is not a whole number from 0, instead of wrapping it", () => {
  const client = new Client({ allowPlaintextCredentials: true });
  const encoder = new TextEncoder();
  client.receiveData(encoder.encode("+OK hello\r\n"));
  client.nextEvent();
  client.login("u", "p", { method: "user", scramNonce: "00" });
  client.dataToSend();
  client.receiveData(encoder.encode("+OK\r\n"));
  client.dataToSend();
  client.receiveData(encoder.encode("+OK in\r\n"));
  assert.equal(client.nextEvent().kind, "loggedIn");
  for (const lines of [-1, 1.5, 2 ** 32, NaN, "3", undefined]) {
    assert.throws(() => client.top(1, lines), UsageError, `top(1, ${String(lines)})`);
  }
  assert.equal(client.dataToSend().length, 0, "nothing was sent");
  client.top(1, 0);
  assert.equal(new TextDecoder().decode(client.dataToSend()), "TOP 1 0\r\n");
  client.free();
});
