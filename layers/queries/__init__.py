"""The query layer between the web and the tables: framework-free (it never imports Flask
or app/). It takes plain values and a Connection and returns rows, streams or bytes; the web
(app/), the CLI and the tile seeder call it alike.

- `params`: query parameters (bbox, instants and intervals, limits, cursors, property
  filters) parsed from a plain mapping; errors carry their HTTP status (ParamError).
- `access`: the zone rule, scoping a connection to the reader in a zone, the audit row.
- `slices`: the filters an export, an /api page, an OGC page and a tile share (`Slice`).
- `window`: windows of local days as the aggregates' periods.
- `types`: one mapping of column types to JSON Schema, TileJSON and Arrow.
- `geojson`: JSON built in SQL, the one coordinate precision; latest requests, overlays.
- `features`: OGC collections, the one GeoJSON feature SQL, key paging, extents.
- `export`: a slice as GeoJSON, CSV, GeoPackage or GeoParquet, with its provenance.
- `tiles`: vector tiles: tile math, MVT queries, data versions and cache keys.
- `heat`, `scorecards`, `planner`: the figures behind /api and the pages.
- `georeport`: Open311 GeoReport v2's reading of service requests.
"""

from layers.queries.params import DEFAULT_TZ, ParamError

__all__ = ["DEFAULT_TZ", "ParamError"]
