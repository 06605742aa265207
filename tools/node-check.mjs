// Fails fast, with the fix in the message, when a script runs on a Node the client library cannot use.
// npm scripts normally get the pinned Node from node_modules/.bin; this catches `node x.js` by hand
// and an install that did not finish.
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 19)) {
  console.error(
    `error: Node ${process.versions.node} is not supported; ScalableApp needs Node >= 22.19 ` +
      '(@kubernetes/client-node 2.x depends on undici 8).\n' +
      'Run `npm ci` (it installs the pinned Node from the npm registry) and use `npm run <script>`, ' +
      'or put node_modules/.bin first on PATH.',
  );
  process.exit(1);
}
