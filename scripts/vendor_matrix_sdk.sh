#!/usr/bin/env bash
# Rebuild the portal's vendored matrix-js-sdk (src/medicus/web/static/vendor/): the versions
# pinned in scripts/matrix-sdk-bundle/package-lock.json, installed from npm (`npm ci`, no
# install scripts run) and bundled by esbuild into one minified IIFE that defines the global
# `matrixcs` (scripts/matrix-sdk-bundle/entry.js names what it exports), with the Rust crypto
# (@matrix-org/matrix-sdk-crypto-wasm, the version matrix-js-sdk's lock pins) for the portal's
# end-to-end encrypted rooms (docs/portal.md, messages) and matrix-encrypt-attachment for
# their files. The crypto's WebAssembly is not inlined: it is copied beside the bundle as
# matrix-sdk-crypto-wasm-<version>.wasm (served as application/wasm under a hashed name), and
# the page hands its URL to the bundle's `initCryptoWasm` before matrix-js-sdk needs it (the
# package's own default, a URL relative to `import.meta.url`, means nothing in a bundle).
# The licence file beside the bundle holds the licence of every npm package that went into
# it, the .wasm's its package's. Two runs give the same bytes.
#
#     scripts/vendor_matrix_sdk.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bundle="$here/matrix-sdk-bundle"
vendor="$here/../src/medicus/web/static/vendor"

cd "$bundle"
npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
version="$(node -p 'require("matrix-js-sdk/package.json").version')"
crypto="node_modules/@matrix-org/matrix-sdk-crypto-wasm"
crypto_version="$(node -p "require('./$crypto/package.json').version")"
out="$vendor/matrix-js-sdk-$version.min.js"
licence="$vendor/matrix-js-sdk-$version.LICENSE"
wasm="$vendor/matrix-sdk-crypto-wasm-$crypto_version"
rm -f "$vendor"/matrix-js-sdk-*.min.js "$vendor"/matrix-js-sdk-*.LICENSE
rm -f "$vendor"/matrix-sdk-crypto-wasm-*.wasm "$vendor"/matrix-sdk-crypto-wasm-*.LICENSE
cp "$crypto/pkg/matrix_sdk_crypto_wasm_bg.wasm" "$wasm.wasm"
{
  printf '%s\n' "@matrix-org/matrix-sdk-crypto-wasm $crypto_version (Apache-2.0): its WebAssembly"
  printf '%s\n\n' "(pkg/matrix_sdk_crypto_wasm_bg.wasm as published on npm)."
  cat "$crypto/LICENSE"
} >"$wasm.LICENSE"

# esbuild's own binary comes from its platform package (its install script is not run).
node -e '
const esbuild = require("esbuild");
const fs = require("fs");
const path = require("path");
const [out, licence] = process.argv.slice(1);
const result = esbuild.buildSync({
  entryPoints: ["entry.js"],
  bundle: true,
  format: "iife",
  globalName: "matrixcs",
  minify: true,
  platform: "browser",
  target: "es2020",
  legalComments: "none",
  // the Rust crypto loader names its .wasm relative to its module: unused (initCryptoWasm)
  define: { "import.meta.url": "self.location.href" },
  metafile: true,
  outfile: out,
});
const packages = new Set();
for (const input of Object.keys(result.metafile.inputs)) {
  const found = input.match(/node_modules\/((?:@[^/]+\/)?[^/]+)\//);
  if (found) packages.add(found[1]);
}
const names = ["LICENSE", "LICENSE.md", "LICENSE.txt", "LICENCE", "license", "license.md"];
let text = "";
for (const name of [...packages].sort()) {
  const dir = path.join("node_modules", name);
  const meta = require(path.resolve(dir, "package.json"));
  const file = names.map(n => path.join(dir, n)).find(f => fs.existsSync(f));
  text += `${"=".repeat(76)}\n${name} ${meta.version} (${meta.license})\n${"=".repeat(76)}\n\n`;
  text += file ? fs.readFileSync(file, "utf8").trim() + "\n\n" : `Licence: ${meta.license} (no licence file in the package)\n\n`;
}
fs.writeFileSync(licence, text);
' "$out" "$licence"
echo "built $out"
