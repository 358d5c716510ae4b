// R1 over WebSocket with a raw sync-protocol client (the npm ConvexClient answers a repeated
// query from its own local cache, which would measure the client, not the server).
// params {clients, seconds, channel, vary}: each connection loops: one ModifyQuerySet that
// removes the previous query and adds messages:latest({channel[, cb]}), then waits for the
// Transition that reaches that query-set version. Reports completed queries and latency.
import { randomUUID } from "node:crypto";
import WebSocket from "ws";
import { cpuSeconds, main, now, params, summary, url } from "./lib.mjs";

function connect() {
  const ws = new WebSocket(url.replace(/^http/, "ws") + "/api/1.48.0/sync", { perMessageDeflate: false });
  return new Promise((resolve, reject) => {
    ws.on("open", () => {
      ws.send(JSON.stringify({ type: "Connect", sessionId: randomUUID(), connectionCount: 0, lastCloseReason: "InitialConnect", clientTs: 0 }));
      resolve(ws);
    });
    ws.on("error", reject);
  });
}

main(async () => {
  const sockets = await Promise.all(Array.from({ length: params.clients }, connect));
  let ok = 0;
  let failed = 0;
  const lat = [];
  const t0 = now();
  const end = t0 + params.seconds * 1000;
  const cpu0 = cpuSeconds();
  let seq = 0;
  await Promise.all(
    sockets.map(
      (ws, i) =>
        new Promise((resolve) => {
          let version = 0;
          let sentAt = 0;
          const next = () => {
            if (now() >= end) {
              ws.close();
              resolve();
              return;
            }
            seq += 1;
            const args = params.vary ? { channel: params.channel, cb: i * 1e7 + seq } : { channel: params.channel };
            const mods = [];
            if (version > 0) mods.push({ type: "Remove", queryId: version - 1 });
            mods.push({ type: "Add", queryId: version, udfPath: "messages:latest", args: [args] });
            ws.send(JSON.stringify({ type: "ModifyQuerySet", baseVersion: version, newVersion: version + 1, modifications: mods }));
            version += 1;
            sentAt = now();
          };
          ws.on("message", (data) => {
            const msg = JSON.parse(String(data));
            if (msg.type !== "Transition" || msg.endVersion.querySet < version) return;
            const mod = msg.modifications.find((m) => m.queryId === version - 1);
            if (mod && mod.type === "QueryUpdated") ok += 1;
            else failed += 1;
            lat.push(now() - sentAt);
            next();
          });
          next();
        }),
    ),
  );
  const seconds = (now() - t0) / 1000;
  return { ok, failed, seconds, cpu_s: cpuSeconds() - cpu0, latency_ms: summary(lat), failures: {} };
});
