#!/usr/bin/env bash
# Install the Debian packages Blockdata needs when they are missing.
# Usage: scripts/system-deps.sh [--browser] [--gdal]
set -euo pipefail

need=()
pgver=""
for d in /usr/lib/postgresql/*/bin; do
  [ -x "$d/initdb" ] && pgver=$(basename "$(dirname "$d")")
done
if [ -z "$pgver" ]; then
  need+=(postgresql)
  pgver=15
fi
[ -f "/usr/share/postgresql/$pgver/extension/postgis.control" ] || need+=("postgresql-$pgver-postgis-3")
command -v psql >/dev/null || need+=(postgresql-client)
# The monthly report (blockdata report monthly): WeasyPrint lays the PDF out with Pango and
# embeds the CJK font; the tests render its pages with poppler's pdftoppm/pdftotext/pdffonts.
dpkg -s libpangoft2-1.0-0 >/dev/null 2>&1 || need+=(libpangoft2-1.0-0)
dpkg -s fonts-noto-cjk >/dev/null 2>&1 || need+=(fonts-noto-cjk)
command -v pdftoppm >/dev/null || need+=(poppler-utils)
for arg in "$@"; do
  case "$arg" in
    --browser)
      command -v chromium >/dev/null || need+=(chromium)
      ;;
    --gdal) command -v ogr2ogr >/dev/null || need+=(gdal-bin) ;;
  esac
done

[ ${#need[@]} -eq 0 ] && exit 0

echo "Missing Debian packages: ${need[*]}"
if [ ! -r /etc/debian_version ] || ! command -v apt-get >/dev/null; then
  echo "This is not a Debian system: install PostgreSQL ${pgver} with PostGIS 3 by hand," >&2
  echo "or point DATABASE_URL at a PostgreSQL server that has PostGIS." >&2
  exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
  SUDO=""
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO="sudo -n"; fi
  if [ -z "$SUDO" ]; then
    echo "Not root: run this once as root, then make again:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y ${need[*]}" >&2
    exit 1
  fi
else
  SUDO=""
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
