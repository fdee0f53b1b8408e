#!/usr/bin/env bash
# Vendors uPlot (the dashboard's charting library, MIT) from the npm registry into the
# dashboard's static files: the minified browser build, its CSS and its licence. The
# gateway serves them itself (no CDN at run time). Usage: scripts/vendor-uplot.sh [VERSION]
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=${1:-1.6.32}
DEST=simfarm/gateway/dashboard/static
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
(cd "$WORK" && npm pack --silent "uplot@$VERSION" >/dev/null && tar xzf uplot-*.tgz)
cp "$WORK/package/dist/uPlot.iife.min.js" "$DEST/uPlot.iife.min.js"
cp "$WORK/package/dist/uPlot.min.css" "$DEST/uPlot.min.css"
{ echo "uPlot $VERSION (npm package uplot), https://github.com/leeoniya/uPlot"; echo;
  cat "$WORK/package/LICENSE"; } > "$DEST/uPlot.LICENSE.txt"
echo "uPlot $VERSION vendored into $DEST"
