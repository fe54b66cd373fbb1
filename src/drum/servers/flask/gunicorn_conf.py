"""gunicorn configuration of `drum server` (DRUM_SERVER_TYPE=gunicorn), from DRUM's settings (§5.5)."""

from __future__ import annotations

import os

from drum.config.settings import get_setting

bind = os.environ.get("DRUM_GUNICORN_BIND", "0.0.0.0:8080")
workers = int(os.environ.get("DRUM_GUNICORN_WORKERS", "1"))
backlog = get_setting("DRUM_WEBSERVER_BACKLOG")
timeout = get_setting("DRUM_CLIENT_REQUEST_TIMEOUT")
max_requests = get_setting("DRUM_GUNICORN_MAX_REQUESTS")
max_requests_jitter = get_setting("DRUM_GUNICORN_MAX_REQUESTS_JITTER")
worker_connections = get_setting("DRUM_WORKER_CONNECTIONS")
worker_class = get_setting("DRUM_GUNICORN_WORKER_CLASS")
graceful_timeout = get_setting("DRUM_GUNICORN_GRACEFUL_TIMEOUT")
keepalive = get_setting("DRUM_GUNICORN_KEEP_ALIVE")
loglevel = get_setting("DRUM_GUNICORN_LOG_LEVEL")
accesslog = "-" if get_setting("DRUM_ACCESS_LOG") else None
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'
control_socket_disable = True  # gunicorn >= 23: no shared ~/.gunicorn/gunicorn.ctl between servers
