#!/usr/bin/env bash
# Vendor Chart.js into static/vendor/chartjs/ (committed): the dashboard
# loads it from our own static files, never from a CDN. The version comes
# from package.json / package-lock.json; run this again after changing it.
# Needs node and npm only here, never at run time.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DEST="$ROOT/static/vendor/chartjs"
VERSION="$(node -p "require('$ROOT/package.json').devDependencies['chart.js']")"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

cp "$ROOT/package.json" "$WORK/"
if [ -f "$ROOT/package-lock.json" ]; then
  cp "$ROOT/package-lock.json" "$WORK/"
  (cd "$WORK" && npm ci --ignore-scripts --no-audit --no-fund)
else
  (cd "$WORK" && npm install --ignore-scripts --no-audit --no-fund)
  cp "$WORK/package-lock.json" "$ROOT/"
fi

PKG="$WORK/node_modules/chart.js"
INSTALLED="$(node -p "require('$PKG/package.json').version")"
if [ "$INSTALLED" != "$VERSION" ]; then
  echo "expected chart.js $VERSION, npm installed $INSTALLED" >&2
  exit 1
fi

mkdir -p "$DEST"
if [ -f "$PKG/dist/chart.umd.min.js" ]; then
  cp "$PKG/dist/chart.umd.min.js" "$DEST/chart.umd.min.js"
else
  # Older 4.x releases ship only chart.umd.js (already minified).
  cp "$PKG/dist/chart.umd.js" "$DEST/chart.umd.min.js"
fi
cp "$PKG/LICENSE.md" "$DEST/LICENSE.md"
echo "chart.js $INSTALLED -> ${DEST#"$ROOT"/}"
