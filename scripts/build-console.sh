#!/usr/bin/env bash
# Bundles the console (console/src, TypeScript + Preact) with the esbuild
# that package-lock.json pins into console/dist, the `[assets]` directory of
# wrangler.toml: console/dist/console/app.{js,css} are served at
# /console/app.{js,css}, with console/_headers as the assets' headers file.
# The page itself (/console/) is the Worker's (worker/src/console.rs embeds
# console/index.html), so its Content-Security-Policy can name the identity
# providers AUTH_REALMS configures. Fails when the script is over its
# budget: 60 KB gzipped.
set -euo pipefail
cd "$(dirname "$0")/.."
BUDGET=61440
out=console/dist
# Type-check first (esbuild strips types without checking them).
node_modules/.bin/tsc -p console/tsconfig.json
rm -rf "$out"
mkdir -p "$out/console"
node_modules/.bin/esbuild console/src/app.tsx --bundle --minify --format=esm --target=es2022 \
  --jsx=automatic --jsx-import-source=preact --legal-comments=none --log-level=warning \
  --outfile="$out/console/app.js"
node_modules/.bin/esbuild console/src/app.css --bundle --minify --log-level=warning \
  --outfile="$out/console/app.css"
cp console/_headers "$out/_headers"
# The OpenAPI document, minified, beside the console's files: the Worker's
# `GET /openapi.json` reads it through the ASSETS binding (worker/src/routes/mod.rs)
# instead of carrying it in the .wasm.
node -e 'const fs = require("fs"); fs.writeFileSync(process.argv[2], JSON.stringify(JSON.parse(fs.readFileSync(process.argv[1], "utf8"))))' \
  worker/src/openapi.json "$out/console/openapi.json"
gzipped=$(gzip -9 -c "$out/console/app.js" | wc -c)
echo "console: app.js $(wc -c <"$out/console/app.js") bytes, ${gzipped} gzipped (budget ${BUDGET})"
if [ "$gzipped" -gt "$BUDGET" ]; then
  echo "console: app.js is over its budget of ${BUDGET} bytes gzipped" >&2
  exit 1
fi
