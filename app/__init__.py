"""Blockdata map server: `create_app` is the only way to build it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from app.config import Settings, from_env

if TYPE_CHECKING:
    from flask import Flask


def create_app(config: dict[str, Any] | None = None, settings: Settings | None = None) -> Flask:
    """Build the Flask app. `config` overrides Flask config keys (tests pass DB_CONNECTION,
    or DATABASE_URL: the database to serve, logged in to as the web role).

    The engine connects as the web role (`resolve_web_database_url`), never as the owner.
    """
    from flask import Flask

    from app import (
        api,
        auth,
        capabilities,
        cases,
        compression,
        db,
        errors,
        evaluation,
        evaluation_inputs,
        evaluation_page,
        evaluation_quality,
        headers,
        health,
        intake,
        ogc,
        open311,
        openapi,
        pages,
        photos,
        search,
        tiles,
    )
    from app.config import (
        PROJECT_ROOT,
        ConfigError,
        resolve_secret_key,
        resolve_web_database_url,
    )
    from app.offline import localize
    from app.pgcluster import ClusterError

    settings = settings or from_env()
    app = Flask(__name__, static_folder=str(PROJECT_ROOT / "static"), static_url_path="/static")
    app.config.update(
        SECRET_KEY=resolve_secret_key(settings),
        JSON_AS_ASCII=False,
        MAX_CONTENT_LENGTH=16 * 1024 * 1024,
        SEND_FILE_MAX_AGE_DEFAULT=3600,
        BLOCKDATA_SETTINGS=settings,
    )
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    if config:
        app.config.update(config)

    engine = None
    if app.config.get("DB_CONNECTION") is None:
        # A DATABASE_URL in `config` (tests, benches) names the database; the server still
        # logs in there as the web role, as it does in production.
        owner = app.config.get("DATABASE_URL")
        target = (
            settings if owner is None else settings.with_(database_url=owner, web_database_url=None)
        )
        # DB_AS_OWNER: the URL as it is — the CLI's own apps (`tiles seed`) run as the owner.
        url = owner if owner is not None and app.config.get("DB_AS_OWNER") else None
        if url is None:
            try:
                url = resolve_web_database_url(target)
            except (ClusterError, ConfigError) as exc:
                app.config["DB_ERROR"] = str(exc)
        if url is not None:
            engine = db.make_engine(url, tz=settings.tz)
    headers.init_app(app, settings.basemap_url)  # first: its hook runs after the others
    compression.init_app(app)  # next: it compresses what the later hooks made
    db.init_app(app, engine)
    errors.register(app)
    app.register_blueprint(health.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(cases.bp)
    app.register_blueprint(evaluation_quality.bp)
    app.register_blueprint(pages.bp)
    app.register_blueprint(ogc.bp)
    app.register_blueprint(tiles.bp)
    app.register_blueprint(openapi.bp)
    app.register_blueprint(open311.bp)
    app.register_blueprint(photos.bp)
    app.register_blueprint(intake.bp)
    app.register_blueprint(evaluation.bp)
    app.register_blueprint(evaluation_inputs.bp)
    app.register_blueprint(evaluation_page.bp)
    app.register_blueprint(search.bp)
    auth.init_app(app)
    capabilities.declare_static(app)
    capabilities.require_declared(app)  # a view that declares no access never serves
    localize("/static/vendor")
    return app
