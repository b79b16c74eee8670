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

vendor jquery 3.7.1 \
  sha512-m4avr8yL8kmFN8psrbFFFmB/If14iN5o9nw/NgnnM+kybDJpRsAynV2BsfpTYrTRysYUdADVD7CkUUizgkpLfg== \
  dist/jquery.min.js:jquery/jquery.min.js \
  LICENSE.txt:jquery/LICENSE.txt

vendor bootstrap 5.2.3 \
  sha512-cEKPM+fwb3cT8NzQZYEu4HilJ3anCrWqh3CHAok1p9jXqMPsPTBhU25fBckEJHJ/p+tTxTFTsFQGM+gaHpi3QQ== \
  dist/css/bootstrap.min.css:bootstrap/css/bootstrap.min.css \
  dist/js/bootstrap.bundle.min.js:bootstrap/js/bootstrap.bundle.min.js \
  LICENSE:bootstrap/LICENSE
strip_map bootstrap/css/bootstrap.min.css
strip_map bootstrap/js/bootstrap.bundle.min.js

# Font Awesome: woff2 only (every browser Bootstrap 5 supports reads it); the .ttf fallbacks,
# three times the size, are cut from the CSS so that no url() points at a missing file.
fa=()
for f in fa-brands-400 fa-regular-400 fa-solid-900 fa-v4compatibility; do
  fa+=("webfonts/$f.woff2:fontawesome-free/webfonts/$f.woff2")
done
vendor @fortawesome/fontawesome-free 6.7.2 \
  sha512-JUOtgFW6k9u4Y+xeIaEiLr3+cjoUPiAuLXoyKOJSia6Duzb7pq+A76P9ZdPDoAoxHdHzq6gE9/jKBGXlZT8FbA== \
  css/all.min.css:fontawesome-free/css/all.min.css \
  "${fa[@]}" \
  LICENSE.txt:fontawesome-free/LICENSE.txt
sed -i -E 's#,url\(\.\./webfonts/[^)]+\.ttf\) format\("truetype"\)##g' \
  "$DEST/fontawesome-free/css/all.min.css"
if grep -q '\.ttf' "$DEST/fontawesome-free/css/all.min.css"; then
  die "Font Awesome CSS still names a .ttf font: update the sed above"
fi

# The npm package is the maintained fork of Lennard Voogdt's 2.0.2 (the one folium links): the
# same JavaScript, a sprite with an extra row of square markers. Its LICENSE text is MIT.
vendor leaflet.awesome-markers 2.0.5 \
  sha512-Ne/xDjkGyaujwNVVkv2tyXQUV0ZW7gZ0Mo0FuQY4jp2qWrvXi0hwDBvmZyF/8YOvybyMabTMM/mFWCTd1jZIQA== \
  dist/leaflet.awesome-markers.min.js:leaflet.awesome-markers/leaflet.awesome-markers.min.js \
  dist/leaflet.awesome-markers.css:leaflet.awesome-markers/leaflet.awesome-markers.css \
  dist/images/markers-soft.png:leaflet.awesome-markers/images/markers-soft.png \
  dist/images/markers-soft@2x.png:leaflet.awesome-markers/images/markers-soft@2x.png \
  dist/images/markers-shadow.png:leaflet.awesome-markers/images/markers-shadow.png \
  dist/images/markers-shadow@2x.png:leaflet.awesome-markers/images/markers-shadow@2x.png \
  LICENSE:leaflet.awesome-markers/LICENSE

# Glyphicons (folium.Icon's default prefix): only the glyphicon rules of Bootstrap 3's CSS, under
# an @font-face that names the woff2 and woff fonts alone.
bs3=$(fetch bootstrap 3.4.1 \
  sha512-yN5oZVmRCwe5aKwzRj6736nSmKDX7pLYwsXiCj/EYmo16hODaBiT4En5btW/jhBF/seV+XMx3aYwukYC3A49DA==)
glyph=glyphicons/css/bootstrap-glyphicons.css
glyph_font=glyphicons/fonts/glyphicons-halflings-regular
mkdir -p "$DEST/glyphicons/css"
{
  printf '/*!\n * Glyphicons Halflings from Bootstrap v3.4.1 (https://getbootstrap.com/)\n'
  printf ' * Copyright 2011-2019 Twitter, Inc.\n * Licensed under MIT (see ../LICENSE)\n */\n'
  printf '@font-face {\n  font-family: "Glyphicons Halflings";\n'
  printf '  src: url("../fonts/glyphicons-halflings-regular.woff2") format("woff2"),'
  printf ' url("../fonts/glyphicons-halflings-regular.woff") format("woff");\n}\n'
  awk '/^\.glyphicon \{/ { on = 1 } /^\* \{/ { on = 0 } on' "$bs3/dist/css/bootstrap.css"
} >"$DEST/$glyph"
grep -q '^\.glyphicon-info-sign:before' "$DEST/$glyph" || die "no glyphicon rules in Bootstrap 3"
put "$bs3/dist/fonts/glyphicons-halflings-regular.woff2" "$glyph_font.woff2"
put "$bs3/dist/fonts/glyphicons-halflings-regular.woff" "$glyph_font.woff"
put "$bs3/LICENSE" glyphicons/LICENSE
row "bootstrap (glyphicons only)" 3.4.1 "$(licence_of "$bs3/package.json")" \
  "npm \`bootstrap@3.4.1\`" "$glyph" "$glyph_font.woff2" "$glyph_font.woff" glyphicons/LICENSE

vendor leaflet.markercluster 1.5.3 \
  sha512-vPTw/Bndq7eQHjLBVlWpnGeLa3t+3zGiuM7fJwCkiMFq+nmRuG3RI3f7f4N4TDX7T4NpbAXpR2+NTRSEGfCSeA== \
  dist/leaflet.markercluster.js:leaflet.markercluster/leaflet.markercluster.js \
  dist/MarkerCluster.css:leaflet.markercluster/MarkerCluster.css \
  dist/MarkerCluster.Default.css:leaflet.markercluster/MarkerCluster.Default.css \
  MIT-LICENCE.txt:leaflet.markercluster/MIT-LICENCE.txt
strip_map leaflet.markercluster/leaflet.markercluster.js

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

# ECharts for the charts of /evaluation: the minified full build only (no maps, no source maps).
# Apache-2.0 asks that its NOTICE travel with the files.
vendor echarts 6.1.0 \
  sha512-q0yaFPggC9FUdsWH4blavRWFmxdrIodbkoKNAjJudAI6CA9gNPxHtV2RcZNEepZVlk4yvBYkOkbk6HIVpIyHZA== \
  dist/echarts.min.js:echarts/echarts.min.js \
  LICENSE:echarts/LICENSE \
  NOTICE:echarts/NOTICE
strip_map echarts/echarts.min.js

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

# folium.Icon(angle=N) adds the class fa-rotate-N; the CSS folium links for it is not in its
# wheel, so it is generated here.
rotate=folium/leaflet.awesome.rotate.css
{
  echo "/* fa-rotate-N for folium.Icon(angle=N); generated by scripts/vendor-assets.sh */"
  for n in $(seq 0 360); do
    echo ".fa-rotate-$n{transform:rotate(${n}deg)}"
  done
} >"$DEST/$rotate"
row "awesome-rotate CSS (folium.Icon angle)" generated "Apache-2.0 (Blockdata)" \
  "\`scripts/vendor-assets.sh\`" "$rotate"

if grep -rlE "url\([\"']?(https?:)?//" "$DEST" --include='*.css'; then
  die "the CSS files above load from another host"
fi

{
  cat <<'EOF'
# Vendored front-end assets

Everything our folium maps and ECharts charts load is served from `static/vendor/` (URL
`/static/vendor/`): no page loads anything from a CDN. `app/offline.py` points folium at these
files; the evaluation page links ECharts itself. This file is written by
`scripts/vendor-assets.sh`; do not edit it by hand.

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
- `fontawesome-free/css/all.min.css`: the `.ttf` fallbacks are cut from each `@font-face`;
  only the woff2 fonts are vendored.
- `glyphicons/css/bootstrap-glyphicons.css`: the `.glyphicon` rules of Bootstrap 3.4.1's
  `dist/css/bootstrap.css`, under a new `@font-face` that names the woff2 and woff fonts only.
- `folium/leaflet.awesome.rotate.css` is generated (`.fa-rotate-0` to `.fa-rotate-360`).
- leaflet.awesome-markers: its package.json says ISC; its LICENSE file is the MIT text of the
  original author, Lennard Voogdt.
EOF
} >"$DOC"

echo "vendored into $DEST: $(du -sh "$DEST" | cut -f1) ($(du -sb "$DEST" | cut -f1) bytes)"
