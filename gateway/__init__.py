"""The Flask app factory: extensions, blueprints, error handlers; nothing else."""
from __future__ import annotations

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from settings import Settings, load_settings_or_exit
from settings.logs import setup_logging


def create_app(settings: Settings | None = None) -> Flask:
    """Build the gateway; without `settings`, read them from the environment (exit 2 if invalid)."""
    from gateway import extensions
    from gateway.health import metrics
    from gateway.http import bodies, errors, requestlog, requesttraces, security_headers
    from gateway.routes import docs, internal, ops, probes, prometheus, tasks

    settings = settings or load_settings_or_exit()
    setup_logging(settings, process="gateway")
    app = Flask(__name__, static_folder=None)  # /docs/assets serves the only static files
    app.config["MAX_CONTENT_LENGTH"] = settings.config["limits"]["max_body_bytes"]
    app.request_class = bodies.GatewayRequest
    app.json = bodies.StrictJSONProvider(app)
    app.json.max_depth = settings.config["limits"]["max_json_depth"]
    hops = settings.config["proxy"]["trusted_hops"]
    if hops:
        # Only as many X-Forwarded-For entries as there are proxies of ours are believed; by default none.
        # Flask's documented way to add WSGI middleware, though Flask types wsgi_app as a method.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=0, x_host=0, x_port=0,  # type: ignore[method-assign]
                                x_prefix=0)
    extensions.init_app(app, settings)
    requesttraces.init_app(app, settings)
    errors.init_app(app)
    bodies.init_app(app, behind_proxy=hops > 0)
    requestlog.init_app(app)
    security_headers.init_app(app)
    metrics.init_app(app)
    app.register_blueprint(tasks.bp)
    app.register_blueprint(probes.bp)
    app.register_blueprint(prometheus.bp)
    app.register_blueprint(ops.bp)
    app.register_blueprint(docs.bp)
    app.register_blueprint(internal.bp)
    return app
