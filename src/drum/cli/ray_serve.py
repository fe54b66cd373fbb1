"""`drum ray-serve`: the model as a Ray Serve application (`pip install 'drum[ray]'`).

Every replica builds drum's own FastAPI app (`cli.server.fastapi_app`: the same routes, middleware,
error answers, streaming and `custom_fastapi.py` extension as `drum server`) from this command line and
its `ServerConfig`, loads the model once in the app's lifespan, and Ray Serve's HTTP proxy on `--address`
routes requests to the replicas (`@serve.ingress`, built at replica start). `--num-replicas N` or
`--autoscaling MIN:MAX`; `--ray-address` joins a running cluster (`auto` for one started with `ray start` on
this machine), else a local cluster is started for this command. SIGINT/SIGTERM delete the application,
shut Serve down and stop a cluster this command started.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from typing import Any

from drum.config.server_config import ServerConfig
from drum.errors import DrumCommonException

logger = logging.getLogger("drum.cli.ray_serve")

APP_NAME = "drum"
#: Environment variables a replica needs from this command's environment (runtime parameters, DRUM's
#: variables, drum's settings), passed through Ray's runtime_env so that a joined cluster gets them too.
ENV_PREFIXES = ("MLOPS_", "DRUM_", "TARGET_", "URL_PREFIX", "USER_SECRETS_", "OTEL_", "PROMETHEUS_",
                "DRIVERLESS_AI_", "RUNTIME_PARAMS_FILE", "DEPLOYMENT_", "MODEL_ID", "API_TOKEN", "KERAS_", "JAVA_",
                "R_HOME")  # fmt: skip


class DrumReplica:
    """One Ray Serve replica: drum's FastAPI app for this command line (built by Ray at replica start)."""

    def __init__(self, argv: list[str], config_json: str):
        self.argv = argv
        self.config_json = config_json

    def __serve_build_asgi_app__(self) -> Any:
        from drum.cli.parser import parse_args
        from drum.cli.server import fastapi_app
        from drum.observability.logging import setup_logging

        options = parse_args(self.argv)
        config = ServerConfig.from_json(self.config_json)
        setup_logging(config.logging_level, config.settings.json_logging)

        def on_start_error(exc: BaseException) -> None:
            raise exc  # Ray marks the replica failed; `serve.run` reports it and `drum ray-serve` exits 1

        return fastapi_app(options, config, on_start_error)


def _ray() -> tuple[Any, Any]:
    try:
        import ray
        from ray import serve
    except ImportError:
        raise DrumCommonException("drum ray-serve needs Ray Serve: pip install 'drum[ray]'") from None
    return ray, serve


def replica_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    env = os.environ if environ is None else environ
    return {k: v for k, v in env.items() if k.startswith(ENV_PREFIXES)}


def deployment_options(options: argparse.Namespace) -> dict[str, Any]:
    if options.autoscaling:
        low, _, high = options.autoscaling.partition(":")
        return {"autoscaling_config": {"min_replicas": int(low), "max_replicas": int(high)}}
    return {"num_replicas": options.num_replicas or 1}


def start_ray(ray: Any, address: str | None) -> bool:
    """Join `address`, or start a local cluster (127.0.0.1, no dashboard); returns whether it was started here."""
    kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING, "log_to_driver": True}
    if address and address != "local":
        ray.init(address=address, **kwargs)
        return False
    ray.init(**kwargs)
    return True


def run(options: argparse.Namespace, argv: list[str] | None = None) -> int:
    ray, serve = _ray()
    argv = list(argv if argv is not None else sys.argv[1:])
    config = ServerConfig.from_options(options)  # settings read and validated once, here
    started = start_ray(ray, options.ray_address)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        serve.start(http_options={"host": config.host, "port": config.port})
        deployment = serve.deployment(
            serve.ingress()(DrumReplica),
            name="drum",
            ray_actor_options={"runtime_env": {"env_vars": replica_env()}},
            # drum's app queues requests itself (its executor + DRUM_FASTAPI_MAX_QUEUE, then 503), and writes
            # its own access log: Ray's per-request log line and its default of 5 requests in a replica cost
            # most of the proxy's throughput.
            max_ongoing_requests=config.settings.executor_workers + config.settings.max_queue,
            logging_config={"enable_access_log": False},
            **deployment_options(options),
        )
        serve.run(deployment.bind(argv, config.to_json()), name=APP_NAME, route_prefix="/")
        print(f"drum ray-serve: {APP_NAME} serving {config.code_dir} on http://{config.host}:{config.port} "
              f"({json.dumps(deployment_options(options))})", flush=True)  # fmt: skip
        while not stop.wait(1.0):
            pass
        return 0
    finally:
        try:
            serve.shutdown()  # deletes the application: its replicas drain and stop
        finally:
            if started:
                ray.shutdown()
