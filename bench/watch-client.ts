/**
 * A Watch client in its own process, for `npm run bench`: opens N streams on projects against
 * URL, says `ready` once every snapshot is complete, records when each change arrives on each
 * stream, and on the stdin line `report` prints `{ "<revision>": [arrival ms, …] }` as JSON (what
 * arrived since the previous report); it exits when its stdin closes.
 * Times are wall-clock milliseconds with sub-millisecond precision (performance.timeOrigin +
 * performance.now()), comparable with the bench process's own.
 */
import { createInterface } from "node:readline";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { ResourceKind, WatchService } from "../gen/clusterplane/v1/watch_pb.js";

const [url, count] = [process.argv[2]!, Number(process.argv[3] ?? 1)];
// Several HTTP/2 connections, as many independent watchers would open.
const STREAMS_PER_CONNECTION = 50;
const arrivals = new Map<string, number[]>();
const now = () => performance.timeOrigin + performance.now();
let ready = 0;

for (let i = 0; i < count; i++) {
  const transport = createGrpcTransport({ baseUrl: url });
  const client = createClient(WatchService, transport);
  const group = Math.min(STREAMS_PER_CONNECTION, count - i);
  for (let j = 0; j < group; j++) {
    void (async () => {
      // The bench kills the servers when done; a stream ending then is expected.
      try {
        for await (const response of client.watch({ kinds: [ResourceKind.PROJECT] })) {
        if (response.event.case === "snapshotComplete" && ++ready === count) process.stdout.write("ready\n");
        if (response.event.case !== "change") continue;
        const revision = String(response.event.value.revision);
        const list = arrivals.get(revision) ?? [];
        list.push(now());
        arrivals.set(revision, list);
      }
      } catch {
        // Ended by the server going away.
      }
    })();
  }
  i += group - 1;
}

// Each report hands over (and forgets) what arrived since the last; the process ends with its stdin.
createInterface({ input: process.stdin })
  .on("line", (line) => {
    if (line !== "report") return;
    process.stdout.write(`${JSON.stringify(Object.fromEntries(arrivals))}\n`);
    arrivals.clear();
  })
  .on("close", () => process.exit(0));
