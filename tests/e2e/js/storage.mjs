// File storage the way a Convex web app does it (docs.convex.dev/file-storage/upload-files):
// a mutation returns ctx.storage.generateUploadUrl(), the page POSTs the file to it with
// fetch(), saves the returned storageId with a mutation, and shows the URL a query returns.
// Asserted by test_storage_e2e.py.
import { ConvexClient, ConvexHttpClient } from "convex/browser";
import { anyApi } from "convex/server";
import { main, params, uniq, watch } from "./lib.mjs";

const api = anyApi;

function fileBytes(n) {
  const bytes = new Uint8Array(n);
  for (let i = 0; i < n; i++) bytes[i] = (i * 7 + 3) % 256;
  return bytes;
}

main(async () => {
  const url = process.argv[2];
  const client = new ConvexClient(url);
  const author = uniq("uploader");
  const r = {};
  const images = watch(client, api.files.list_images, { author }, "list_images");
  await images.until(() => true);

  // 1. The upload URL from a mutation; 2. POST the file; 3. save its id with a mutation.
  const bytes = fileBytes(params.size ?? 100000);
  const image = new Blob([bytes], { type: "image/png" });
  const postUrl = await client.mutation(api.files.generate_upload_url, {});
  r.postUrl = postUrl;
  const result = await fetch(postUrl, {
    method: "POST",
    headers: { "Content-Type": image.type },
    body: image,
  });
  r.uploadStatus = result.status;
  const { storageId } = await result.json();
  r.storageId = storageId;
  await client.mutation(api.files.send_image, { storageId, author });

  // 4. The subscribed query delivers the file's URL and its _storage document.
  const listed = await images.until((v) => v.length === 1);
  r.listed = listed;

  // 5. The browser fetches the URL.
  const got = await fetch(listed[0].url);
  const body = new Uint8Array(await got.arrayBuffer());
  r.download = {
    status: got.status,
    contentType: got.headers.get("content-type"),
    cacheControl: got.headers.get("cache-control"),
    length: body.length,
    same: body.length === bytes.length && body.every((b, i) => b === bytes[i]),
  };
  const part = await fetch(listed[0].url, { headers: { Range: "bytes=10-19" } });
  const partBody = new Uint8Array(await part.arrayBuffer());
  r.range = {
    status: part.status,
    contentRange: part.headers.get("content-range"),
    same: partBody.length === 10 && partBody.every((b, i) => b === bytes[10 + i]),
  };

  // The HTTP client sees the same URL.
  const http = new ConvexHttpClient(url);
  r.httpClientUrl = (await http.query(api.files.list_images, { author }))[0].url;

  // A wrong token and a wrong Digest are refused.
  const forged = await fetch(postUrl.replace(/token=.*/, "token=forged"), { method: "POST", body: "x" });
  r.forged = { status: forged.status, body: await forged.json() };
  const digest = await fetch(postUrl, {
    method: "POST",
    headers: { "Content-Type": "text/plain", Digest: "sha-256=" + Buffer.alloc(32).toString("base64") },
    body: "does not match",
  });
  r.digest = { status: digest.status, body: await digest.json() };

  // Deleting: the query updates, the URL stops working.
  await client.mutation(api.files.delete_image, { storageId });
  r.afterDelete = await images.until((v) => v.length === 0);
  r.deletedStatus = (await fetch(listed[0].url)).status;

  await client.close();
  return r;
});
