// The Node.js entry point: loads the WebAssembly core from the package's
// own directory, then exports the sans-IO client, the Node.js driver and
// the errors. (Other hosts import "pop3/sans-io" and call `init` themselves.)

import { readFileSync } from "node:fs";
import { init } from "./sans-io.js";

init(readFileSync(new URL("./wasm/pop3_wasm_bg.wasm", import.meta.url)));

export { Client, init } from "./sans-io.js";
export { connect, Session } from "./node.js";
export * from "./errors.js";
