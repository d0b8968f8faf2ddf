// Imports the installed package and runs one exchange through the sans-IO
// client: proof that the WebAssembly core loads where the package landed.
import { Client } from "pop3";

const client = new Client();
client.receiveData(new TextEncoder().encode("+OK ready\r\n"));
const event = client.nextEvent();
if (event.kind !== "greeting" || event.text !== "ready") {
  throw new Error(`unexpected event ${JSON.stringify(event)}`);
}
const handle = client.capa();
const sent = new TextDecoder().decode(client.dataToSend());
if (sent !== "CAPA\r\n") throw new Error(`unexpected bytes ${JSON.stringify(sent)}`);
console.log(`pop3 package works: greeting read, CAPA queued as handle ${handle}`);
