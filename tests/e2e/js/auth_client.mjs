// Drives the official `convex` npm ConvexClient for tests/e2e/test_auth_e2e.py.
//
// Usage: node auth_client.mjs <deployment url> [<options JSON>]
// Protocol: one JSON object per line. Commands on stdin:
//   {"cmd": "setAuth"}                      client.setAuth(fetchToken, onChange)
//   {"cmd": "token", "token": <str|null>}   the answer to the oldest pending fetchToken
//   {"cmd": "setAdminAuth", "key": k, "identity": {...}|null}
//   {"cmd": "subscribe", "path": "auth:whoami", "args": {}}
//   {"cmd": "mutation"|"query", "id": n, "path": ..., "args": {}}
//   {"cmd": "close"}
// Events on stdout:
//   {"type": "fetchToken", "forceRefreshToken": bool}   (answer with a "token" command)
//   {"type": "authChange", "isAuthenticated": bool}
//   {"type": "update", "path": ..., "value": ...} / {"type": "updateError", ...}
//   {"type": "result", "id": n, "value": ...} / {"type": "result", "id": n, "error": ...}
//   {"type": "console", "level": ..., "text": ...}      (the client's own logging)
//   {"type": "ready"} once started, {"type": "closed"} before exiting
import readline from "node:readline";
import { ConvexClient } from "convex/browser";
import { anyApi } from "convex/server";

const url = process.argv[2];
const options = JSON.parse(process.argv[3] ?? "{}");

function emit(event) {
  process.stdout.write(JSON.stringify(event) + "\n");
}

function show(arg) {
  if (typeof arg === "string") return arg;
  if (arg instanceof Error) return arg.message;
  try {
    return JSON.stringify(arg);
  } catch {
    return String(arg);
  }
}

for (const level of ["log", "info", "warn", "error", "debug"]) {
  console[level] = (...args) => emit({ type: "console", level, text: args.map(show).join(" ") });
}
process.on("unhandledRejection", (reason) => emit({ type: "console", level: "unhandled", text: show(reason) }));

function ref(path) {
  const [module, name] = path.split(":");
  let node = anyApi;
  for (const part of module.split("/")) node = node[part];
  return node[name];
}

const client = new ConvexClient(url, {
  skipConvexDeploymentUrlCheck: true,
  authRefreshTokenLeewaySeconds: options.authRefreshTokenLeewaySeconds ?? 10,
});

const waitingForTokens = [];

async function fetchToken(args) {
  emit({ type: "fetchToken", forceRefreshToken: !!args?.forceRefreshToken });
  return await new Promise((resolve) => waitingForTokens.push(resolve));
}

const input = readline.createInterface({ input: process.stdin });
input.on("line", async (line) => {
  const cmd = JSON.parse(line);
  switch (cmd.cmd) {
    case "setAuth":
      client.setAuth(fetchToken, (isAuthenticated) => emit({ type: "authChange", isAuthenticated }));
      break;
    case "token": {
      const resolve = waitingForTokens.shift();
      if (resolve) resolve(cmd.token ?? null);
      break;
    }
    case "setAdminAuth":
      client.setAdminAuth(cmd.key, cmd.identity ?? undefined);
      break;
    case "subscribe":
      client.onUpdate(
        ref(cmd.path),
        cmd.args ?? {},
        (value) => emit({ type: "update", path: cmd.path, value: value ?? null }),
        (error) => emit({ type: "updateError", path: cmd.path, message: error.message }),
      );
      break;
    case "mutation":
    case "query":
      try {
        const value = await client[cmd.cmd](ref(cmd.path), cmd.args ?? {});
        emit({ type: "result", id: cmd.id, value: value ?? null });
      } catch (error) {
        emit({ type: "result", id: cmd.id, error: show(error) });
      }
      break;
    case "close":
      await client.close();
      emit({ type: "closed" });
      process.exit(0);
      break;
    default:
      emit({ type: "console", level: "driver", text: `unknown command ${line}` });
  }
});
input.on("close", () => process.exit(0));
emit({ type: "ready" });
