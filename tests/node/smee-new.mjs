// The channel-creation path of the smee CLI run without --url, pointed at a
// relay: smee-client's own SmeeClient.createChannel (HEAD, redirect: manual,
// reads Location), then its own client forwarding to the target. The CLI
// itself hard-codes https://smee.io/new, hence this script.
//
// usage: node smee-new.mjs <relay>/new <target-url>
import SmeeClient from "smee-client";

const [newChannelUrl, target] = process.argv.slice(2);
if (!newChannelUrl || !target) {
  console.error("usage: node smee-new.mjs <relay>/new <target-url>");
  process.exit(2);
}
const source = await SmeeClient.createChannel({ newChannelUrl });
console.log(`CHANNEL ${source}`);
await new SmeeClient({ source, target }).start();
