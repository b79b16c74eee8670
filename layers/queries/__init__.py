"""The query layer between the web and the tables: framework-free (it never imports Flask
or app/). It takes plain values and a Connection and returns rows, streams or bytes.

- `params`: query parameters (bbox, instants and intervals, limits, cursors, property
  filters) parsed from a plain mapping; errors carry their HTTP status (ParamError).
"""

from layers.queries.params import DEFAULT_TZ, ParamError

__all__ = ["DEFAULT_TZ", "ParamError"]
