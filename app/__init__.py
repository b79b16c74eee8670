"""Blockdata map server: `create_app` is the only way to build it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from app.config import Settings, from_env

if TYPE_CHECKING:
    from flask import Flask


def create_app(config: dict[str, Any] | None = None, settings: Settings | None = None) -> Flask:
    """Build the Flask app. `config` overrides Flask config keys (tests pass DB_CONNECTION)."""
    from flask import Flask

    from app import db, errors, health
    from app.config import resolve_database_url
    from app.pgcluster import ClusterError

    settings = settings or from_env()
    app = Flask(__name__, static_folder=None)
    app.config.update(
        SECRET_KEY=settings.secret_key,
        JSON_AS_ASCII=False,
        MAX_CONTENT_LENGTH=16 * 1024 * 1024,
        BLOCKDATA_SETTINGS=settings,
    )
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    if config:
        app.config.update(config)

    engine = None
    if app.config.get("DB_CONNECTION") is None:
        url = app.config.get("DATABASE_URL")
        if url is None:
            try:
                url = resolve_database_url(settings)
            except ClusterError as exc:
                app.config["DB_ERROR"] = str(exc)
        if url is not None:
            engine = db.make_engine(url)
    db.init_app(app, engine)
    errors.register(app)
    app.register_blueprint(health.bp)
    return app
