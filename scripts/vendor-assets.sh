#!/usr/bin/env bash
# Vendor the front-end assets our folium maps and charts need into static/vendor/, so that no page loads
# anything from a CDN, and write static/VENDOR.md. Every package is pinned to an exact version
# and checked against its registry checksum; re-running replaces static/vendor/ as a whole.
# Needs npm and node; the folium wheel comes from PyPI through pip.
# Usage: scripts/vendor-assets.sh        (PYTHON=... to choose the interpreter that runs pip)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEST="$ROOT/static/vendor"
DOC="$ROOT/static/VENDOR.md"
PYTHON=${PYTHON:-"$ROOT/.venv/bin/python"}
[ -x "$PYTHON" ] || PYTHON=$(command -v python3)

FOLIUM_VERSION=0.20.0
FOLIUM_SHA256=f0bc2a92acde20bca56367aa5c1c376c433f450608d058daebab2fc9bf8198bf

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

ROWS=()

die() {
  echo "vendor-assets: $*" >&2
  exit 1
}

# fetch NAME VERSION INTEGRITY: npm pack into $TMP, check the checksum, print the unpacked folder.
fetch() {
  local name=$1 version=$2 integrity=$3
  local dir="$TMP/npm/${name//\//_}@$version"
  mkdir -p "$dir"
  (cd "$dir" && npm pack "$name@$version" --silent >/dev/null)
  local tgz
  tgz=$(ls "$dir"/*.tgz)
  local got
  got=$(node -e 'const c = require("crypto"), fs = require("fs");
    process.stdout.write("sha512-" + c.createHash("sha512")
      .update(fs.readFileSync(process.argv[1])).digest("base64"));' "$tgz")
  [ "$got" = "$integrity" ] || die "$name@$version: checksum $got, expected $integrity"
  tar -xzf "$tgz" -C "$dir"
  local have
  have=$(node -p 'require(process.argv[1]).version' "$dir/package/package.json")
  [ "$have" = "$version" ] || die "$name: unpacked version $have, expected $version"
  echo "$dir/package"
}

licence_of() {
  node -p 'const p = require(process.argv[1]);
    p.license || (p.licenses || []).map((l) => l.type).join(" OR ") || "see LICENSE"' "$1"
}

# put SRC DST: copy one file to static/vendor/DST.
put() {
  mkdir -p "$(dirname "$DEST/$2")"
  cp "$1" "$DEST/$2"
}

# strip_map FILE: drop the sourceMappingURL comment; the maps are not vendored.
strip_map() {
  sed -i -E '/^\/[/*]# sourceMappingURL=/d' "$DEST/$1"
}

# row NAME VERSION LICENCE SOURCE FILE...: one line of the VENDOR.md table.
row() {
  local name=$1 version=$2 licence=$3 source=$4
  shift 4
  local files="" f
  for f in "$@"; do
    files+="${files:+<br>}\`$f\`"
  done
  ROWS+=("| $name | $version | $licence | $files | $source |")
}

# vendor NAME VERSION INTEGRITY SRC:DST...: fetch a package and copy the listed files.
vendor() {
  local name=$1 version=$2 integrity=$3
  shift 3
  local pkg files=() pair
  pkg=$(fetch "$name" "$version" "$integrity")
  for pair in "$@"; do
    put "$pkg/${pair%%:*}" "${pair#*:}"
    files+=("${pair#*:}")
  done
  row "$name" "$version" "$(licence_of "$pkg/package.json")" "npm \`$name@$version\`" "${files[@]}"
}

case "$DEST" in
  */static/vendor) rm -rf "$DEST" ;;
  *) die "refusing to clear $DEST" ;;
esac
mkdir -p "$DEST"

vendor leaflet 1.9.4 \
  sha512-nxS1ynzJOmOlHp+iL3FyWqK89GtNL8U8rvlMOsQdTTssxZwCXh8N2NB3GDQOL+YR3XnWyZAxwQixURb+FA74PA== \
  dist/leaflet.js:leaflet/leaflet.js \
  dist/leaflet.css:leaflet/leaflet.css \
  dist/images/layers.png:leaflet/images/layers.png \
  dist/images/layers-2x.png:leaflet/images/layers-2x.png \
  dist/images/marker-icon.png:leaflet/images/marker-icon.png \
  dist/images/marker-icon-2x.png:leaflet/images/marker-icon-2x.png \
  dist/images/marker-shadow.png:leaflet/images/marker-shadow.png \
  LICENSE:leaflet/LICENSE
strip_map leaflet/leaflet.js
# The attribution prefix links to leafletjs.com: keep the credit, drop the outside link.
sed -i -e 's|<a href="https://leafletjs.com" title="A JavaScript library for interactive maps">|<span title="A JavaScript library for interactive maps">|' \
  -e 's|"Leaflet</a>"|"Leaflet</span>"|' "$DEST/leaflet/leaflet.js"

vendor leaflet-realtime 2.2.0 \
  sha512-Z7xbUNdhvwngJUf3plG9Zw3SaGHzcOzi59tVS3jD0GcS6cOWbRNNfP2biwmtHbufM5VYTIWLATrQ4vrlGI23WA== \
  dist/leaflet-realtime.min.js:leaflet-realtime/leaflet-realtime.min.js \
  LICENSE.md:leaflet-realtime/LICENSE.md

vendor leaflet.fullscreen 3.0.0 \
  sha512-81wWSUXz1ZtdneR0v5eJDWXUSx+Zo5J50WXWeydG/UcILfIEAgz/iOjZSi3p00Z9MJ/FC/P5i3CgdYuEAos0yQ== \
  Control.FullScreen.js:leaflet.fullscreen/Control.FullScreen.js \
  Control.FullScreen.css:leaflet.fullscreen/Control.FullScreen.css \
  icon-fullscreen.svg:leaflet.fullscreen/icon-fullscreen.svg \
  LICENSE:leaflet.fullscreen/LICENSE

# ECharts for the charts of /evaluation (bar charts, tooltip, legend, grid): the minified
# "common" build (line, bar, pie, scatter and the common components; 715 KB against the full
# build's 1.1 MB), no maps, no source maps. Apache-2.0 asks that its NOTICE travel with it.
vendor echarts 6.1.0 \
  sha512-q0yaFPggC9FUdsWH4blavRWFmxdrIodbkoKNAjJudAI6CA9gNPxHtV2RcZNEepZVlk4yvBYkOkbk6HIVpIyHZA== \
  dist/echarts.common.min.js:echarts/echarts.common.min.js \
  LICENSE:echarts/LICENSE \
  NOTICE:echarts/NOTICE
strip_map echarts/echarts.common.min.js

# HeatMap: folium links its own copy of Leaflet.heat, which carries the weights fix of
# Leaflet.heat PR 78 (npm leaflet.heat 0.2.0 lacks it and clips weights at max=1). The file comes
# from the pinned folium wheel; Leaflet.heat's own licence from its npm package.
"$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --dest "$TMP/wheel" \
  "folium==$FOLIUM_VERSION" >"$TMP/pip.log" 2>&1 || {
  cat "$TMP/pip.log" >&2
  die "pip download folium==$FOLIUM_VERSION failed"
}
wheel=$(ls "$TMP"/wheel/folium-"$FOLIUM_VERSION"-*.whl)
echo "$FOLIUM_SHA256  $wheel" | sha256sum --quiet -c - || die "folium wheel checksum mismatch"
unzip -q "$wheel" -d "$TMP/folium"
put "$TMP/folium/folium/templates/leaflet_heat.min.js" folium/leaflet_heat.min.js
put "$(find "$TMP/folium" -path '*.dist-info/*' -name 'LICENSE*' | head -n 1)" folium/LICENSE.txt
heat=$(fetch leaflet.heat 0.2.0 \
  sha512-Cd5PbAA/rX3X3XKxfDoUGi9qp78FyhWYurFg3nsfhntcM/MCNK08pRkf4iEenO1KNqwVPKCmkyktjW3UD+h9bQ==)
put "$heat/LICENSE" folium/LICENSE.leaflet-heat
row "Leaflet.heat as patched in folium" "folium $FOLIUM_VERSION (leaflet.heat 0.2.0 + PR 78)" \
  "MIT (folium); BSD-2-Clause (Leaflet.heat LICENSE)" "PyPI \`folium==$FOLIUM_VERSION\` wheel" \
  folium/leaflet_heat.min.js folium/LICENSE.txt folium/LICENSE.leaflet-heat

if grep -rlE "url\([\"']?(https?:)?//" "$DEST" --include='*.css'; then
  die "the CSS files above load from another host"
fi

{
  cat <<'EOF'
# Vendored front-end assets

Everything our folium maps and ECharts charts load is served from `static/vendor/` (URL
`/static/vendor/`): no page loads anything from a CDN. `app/offline.py` points folium at these
files and drops the rest of folium's default header (jQuery, Bootstrap, Font Awesome,
glyphicons, awesome-markers: no page uses them); the evaluation page links ECharts itself.
This file is written by `scripts/vendor-assets.sh`; do not edit it by hand.

Refresh (exact versions and registry checksums are pinned in the script; it needs npm, node
and pip):

```sh
scripts/vendor-assets.sh
```

| package | version | licence (package.json) | files (under `static/vendor/`) | source |
|---|---|---|---|---|
EOF
  printf '%s\n' "${ROWS[@]}"
  cat <<'EOF'

Changes made to the upstream files:

- `//# sourceMappingURL` comments are removed: source maps are not vendored.
- `leaflet/leaflet.js`: the attribution prefix's link to leafletjs.com becomes plain text.
EOF
} >"$DOC"

echo "vendored into $DEST: $(du -sh "$DEST" | cut -f1) ($(du -sb "$DEST" | cut -f1) bytes)"
