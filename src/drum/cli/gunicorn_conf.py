"""gunicorn configuration of `drum server` (DRUM_SERVER_TYPE=gunicorn), from the parent's `ServerConfig`
(DRUM 1.18 §5.5's settings); gunicorn imports it in the master it became."""

from __future__ import annotations

import os

from drum.config.server_config import CONFIG_ENV, ServerConfig

_config = ServerConfig.from_json(os.environ[CONFIG_ENV])
_s = _config.settings

bind = f"{_config.host}:{_config.port}"
workers = _config.workers
backlog = _s.backlog
timeout = _s.request_timeout
max_requests = _s.gunicorn_max_requests
max_requests_jitter = _s.gunicorn_max_requests_jitter
worker_connections = _s.gunicorn_worker_connections
worker_class = _s.gunicorn_worker_class
graceful_timeout = _s.gunicorn_graceful_timeout
keepalive = _s.gunicorn_keep_alive
loglevel = _s.gunicorn_log_level
accesslog = "-" if _s.access_log else None
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'
control_socket_disable = True  # gunicorn >= 23: no shared ~/.gunicorn/gunicorn.ctl between servers
