// Packs layer tarballs into a docker-archive image (the `docker save` format) that
// `ctr images import` and `docker load` read: manifest.json, one config JSON named by its digest,
// and one uncompressed <diff id>/layer.tar per layer.
//
// Our own ~150 lines instead of a tool such as crane (go-containerregistry): there is no registry and
// no Docker here, the layers are already tarballs made by GNU tar from a root filesystem, and all
// that is left is two small JSON documents and a tar of four files. Building crane would cost a Go
// build and its flags would still have to be learnt; this is plain Node, run by the project's own
// pinned binary, no dependency.
//
//   node pack.mjs --out image.tar --ref localhost/scalableapp/x:tag --layer a.tar [--layer b.tar]
//                 [--user 999:999] [--env K=V]... [--entrypoint '["json","array"]']
//                 [--cmd '["json","array"]'] [--workdir /] [--expose 5432/tcp]...
//                 [--stop-signal SIGINT] [--label k=v]... [--created-by 'text']
//
// Writes image.tar atomically (via image.tar.tmp) and prints a JSON summary (ref, config digest,
// layer diff ids, size) on stdout, which tools/images.sh stores beside the archive.
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, renameSync, statSync, unlinkSync } from 'node:fs';
import { once } from 'node:events';
import { arch } from 'node:process';

function parseArgs(argv) {
  const repeated = new Set(['layer', 'env', 'expose', 'label']);
  const o = { layer: [], env: [], expose: [], label: [] };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i]?.replace(/^--/, '');
    const value = argv[i + 1];
    if (!key || value === undefined) throw new Error(`missing value for ${argv[i]}`);
    if (repeated.has(key)) o[key].push(value);
    else o[key] = value;
  }
  for (const required of ['out', 'ref']) if (!o[required]) throw new Error(`--${required} is required`);
  if (o.layer.length === 0) throw new Error('at least one --layer is required');
  return o;
}

function jsonArray(what, text) {
  const v = JSON.parse(text);
  if (!Array.isArray(v) || !v.every((s) => typeof s === 'string'))
    throw new Error(`${what} must be a JSON array of strings`);
  return v;
}

async function sha256File(path) {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk);
  return h.digest('hex');
}

// One ustar header block. Our names are at most 74 bytes ("<64 hex>/layer.tar"), so no long-name
// extensions are needed; sizes up to 8 GiB fit the 11-digit octal field.
function tarHeader(name, size, type, mtime) {
  if (Buffer.byteLength(name) > 100) throw new Error(`tar name too long: ${name}`);
  if (size >= 8 ** 11) throw new Error(`${name} is too large for a ustar header`);
  const b = Buffer.alloc(512, 0);
  const field = (offset, length, text) => b.write(text, offset, length, 'ascii');
  const octal = (offset, length, n) => field(offset, length, n.toString(8).padStart(length - 1, '0') + '\0');
  field(0, 100, name);
  octal(100, 8, type === '5' ? 0o755 : 0o644);
  octal(108, 8, 0);
  octal(116, 8, 0);
  octal(124, 12, size);
  octal(136, 12, mtime);
  field(148, 8, '        '); // checksum placeholder: spaces while summing
  field(156, 1, type);
  field(257, 6, 'ustar\0');
  field(263, 2, '00');
  let sum = 0;
  for (const byte of b) sum += byte;
  field(148, 8, sum.toString(8).padStart(6, '0') + '\0 ');
  return b;
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const epoch = Number(process.env.SOURCE_DATE_EPOCH ?? 0);
  const created = new Date(epoch * 1000).toISOString().replace(/\.000Z$/, 'Z');
  const layers = [];
  for (const path of o.layer) {
    layers.push({ path, diffId: await sha256File(path), size: statSync(path).size });
  }

  const config = {};
  if (o.user) config.User = o.user;
  if (o.env.length) config.Env = o.env;
  if (o.entrypoint) config.Entrypoint = jsonArray('--entrypoint', o.entrypoint);
  if (o.cmd) config.Cmd = jsonArray('--cmd', o.cmd);
  if (o.workdir) config.WorkingDir = o.workdir;
  if (o.expose.length) config.ExposedPorts = Object.fromEntries(o.expose.map((p) => [p, {}]));
  if (o['stop-signal']) config.StopSignal = o['stop-signal'];
  if (o.label.length) {
    config.Labels = Object.fromEntries(
      o.label.map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
    );
  }
  const image = {
    architecture: { x64: 'amd64', arm64: 'arm64' }[arch] ?? arch,
    os: 'linux',
    created,
    config,
    rootfs: { type: 'layers', diff_ids: layers.map((l) => `sha256:${l.diffId}`) },
    history: layers.map((_, i) => ({
      created,
      created_by: `${o['created-by'] ?? 'tools/images.sh'} (layer ${i + 1})`,
    })),
  };
  const configText = Buffer.from(`${JSON.stringify(image)}\n`);
  const configDigest = createHash('sha256').update(configText).digest('hex');
  const manifest = Buffer.from(
    `${JSON.stringify([{ Config: `${configDigest}.json`, RepoTags: [o.ref], Layers: layers.map((l) => `${l.diffId}/layer.tar`) }])}\n`,
  );

  const tmp = `${o.out}.tmp`;
  const out = createWriteStream(tmp);
  const write = async (buf) => {
    if (!out.write(buf)) await once(out, 'drain');
  };
  const pad = (size) => (size % 512 ? Buffer.alloc(512 - (size % 512)) : Buffer.alloc(0));
  const file = async (name, buf) => {
    await write(tarHeader(name, buf.length, '0', epoch));
    await write(buf);
    await write(pad(buf.length));
  };
  try {
    await file('manifest.json', manifest);
    await file(`${configDigest}.json`, configText);
    const seen = new Set();
    for (const l of layers) {
      if (seen.has(l.diffId)) continue; // the same layer twice is stored once
      seen.add(l.diffId);
      await write(tarHeader(`${l.diffId}/`, 0, '5', epoch));
      await write(tarHeader(`${l.diffId}/layer.tar`, l.size, '0', epoch));
      let copied = 0;
      for await (const chunk of createReadStream(l.path)) {
        copied += chunk.length;
        await write(chunk);
      }
      if (copied !== l.size) throw new Error(`${l.path} changed while it was packed`);
      await write(pad(l.size));
    }
    await write(Buffer.alloc(1024)); // end of archive
    out.end();
    await once(out, 'finish');
  } catch (e) {
    out.destroy();
    try {
      unlinkSync(tmp);
    } catch {
      // nothing was written yet
    }
    throw e;
  }
  renameSync(tmp, o.out);
  const summary = {
    ref: o.ref,
    config: `sha256:${configDigest}`,
    layers: layers.map((l) => ({ diffId: `sha256:${l.diffId}`, size: l.size })),
    archiveSize: statSync(o.out).size,
    imageConfig: config,
  };
  process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
}

main().catch((e) => {
  process.stderr.write(`pack.mjs: ${e.message}\n`);
  process.exit(1);
});
