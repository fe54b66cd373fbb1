"""`--docker IMAGE|DIR`: run the same drum command inside a container, as DRUM 1.18.1 does.

The container engine is the `docker` CLI or `podman`, whichever answers `info` (`DRUM_CONTAINER_ENGINE`
names one). A DIR is a build context: built into an image tagged by a hash of its content (and of the
code dir's `requirements.txt`, which is pip-installed into a temporary copy of the context unless
`--skip-deps-install`), and reused while that hash holds. The command line is rewritten as DRUM does:
the code dir is mounted at `/opt/model`, the input at `/opt/input.csv`, the output at `/opt/output.csv`,
the runtime parameters file at `/opt/runtime_parameters.yaml`; a server binds `0.0.0.0:PORT` inside and
is published as `-p PORT:PORT`; `--memory` becomes `--memory`/`--memory-swap`; the container runs with
`--user uid:gid --init --rm`. drum never runs the command locally instead.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import drum
from drum.errors import DrumCommonException

logger = logging.getLogger("drum.cli.docker")

ENGINE_ENV = "DRUM_CONTAINER_ENGINE"
ENGINES = ("docker", "podman")
IN_MODEL = "/opt/model"
IN_INPUT = "/opt/input.csv"
IN_OUTPUT = "/opt/output.csv"
IN_FIT_OUTPUT = "/opt/fit_output_dir"
IN_FIT_TARGET = "/opt/fit_target.csv"
IN_FIT_WEIGHTS = "/opt/fit_row_weights.csv"
IN_RUNTIME_PARAMS = "/opt/runtime_parameters.yaml"
#: Exit code of a process killed by SIGKILL (the engine's OOM killer, with --memory).
KILLED = 137
INSTALL_HINT = (
    "Install Docker (https://docs.docker.com/engine/install/) and start its daemon, or podman "
    "(Debian/Ubuntu: apt-get install podman runc catatonit), or name a working one in DRUM_CONTAINER_ENGINE."
)


def container_engine(environ: Mapping[str, str] = os.environ) -> str:
    """The engine to use: `DRUM_CONTAINER_ENGINE`, else the first of docker and podman that answers
    `info` (a `docker` client without a daemon does not count). Raises `DrumCommonException`."""
    named = environ.get(ENGINE_ENV)
    candidates = [named] if named else list(ENGINES)
    tried = []
    for engine in candidates:
        if shutil.which(engine) is None:
            tried.append(f"{engine}: not found on PATH")
            continue
        result = subprocess.run([engine, "info"], capture_output=True, text=True)
        if result.returncode == 0:
            return engine
        tried.append(f"{engine}: `{engine} info` failed: {_last_line(result.stderr)}")
    raise DrumCommonException(
        f"--docker needs a container engine, and none works here ({'; '.join(tried)}). {INSTALL_HINT}"
    )


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def image_exists(engine: str, image: str) -> bool:
    return subprocess.run([engine, "image", "inspect", image], capture_output=True).returncode == 0


def requirements(code_dir: str) -> list[str] | None:
    """The code dir's `requirements.txt` lines (None when there is none)."""
    path = Path(code_dir, "requirements.txt")
    if not path.is_file():
        return None
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


def context_tag(context: Path, extra: Sequence[str]) -> str:
    """`localhost/drum-env-<dir name>:<hash>`: a hash of every file of the build context and of `extra` (the
    requirements added to it, the ids of its base images), so an unchanged context reuses its image."""
    digest = hashlib.sha256()
    for path in sorted(p for p in context.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(context)).encode() + b"\0" + path.read_bytes() + b"\0")
    for line in extra:
        digest.update(line.encode() + b"\n")
    name = "".join(c if c.isalnum() or c in "._-" else "-" for c in context.name.lower()).strip("-._") or "env"
    return f"localhost/drum-env-{name}:{digest.hexdigest()[:12]}"


def base_image_ids(engine: str, dockerfile: Path) -> list[str]:
    """The ids of the images the Dockerfile builds FROM (those the engine has): a rebuilt base image
    (a new drum in it, say) changes the tag of everything built on it."""
    ids = []
    for line in dockerfile.read_text().splitlines():
        words = [w for w in line.split() if not w.startswith("--")]
        if len(words) >= 2 and words[0].upper() == "FROM" and "$" not in words[1]:
            found = subprocess.run([engine, "image", "inspect", "--format", "{{.Id}}", words[1]],
                                   capture_output=True, text=True)  # fmt: skip
            if found.returncode == 0:
                ids.append(found.stdout.strip())
    return ids


def build_image(engine: str, context_dir: str, code_dir: str, language: str | None, skip_deps: bool) -> str:
    """Build the build-context directory (with the code dir's requirements unless `skip_deps`); its tag."""
    context = Path(context_dir).resolve()
    if not (context / "Dockerfile").is_file():
        raise DrumCommonException(f"--docker {context_dir}: the directory has no Dockerfile")
    lines = None if skip_deps else requirements(code_dir)
    if lines and language not in (None, "python"):
        print(f"Dependencies management is not supported for the '{language}' language and will not be installed "
              "into an image")  # fmt: skip
        lines = None
    tag = context_tag(context, [*(lines or []), *base_image_ids(engine, context / "Dockerfile")])
    if image_exists(engine, tag):
        print(f"Reusing the image {tag} built from {context} (unchanged)")
        return tag
    with tempfile.TemporaryDirectory(prefix="drum-docker-context-") as tmp:
        build_dir = context
        if lines:
            build_dir = Path(tmp, "context")
            shutil.copytree(context, build_dir)
            print(
                "Requirements file has been found in the code dir. DRUM will try to install dependencies into a "
                f"docker image.\nDocker context has been copied from: {context} to: {build_dir}"
            )
            quoted = " ".join("'" + line.replace("'", "'\\''") + "'" for line in lines)
            with open(build_dir / "Dockerfile", "a") as dockerfile:
                dockerfile.write(f"\nRUN pip3 install {quoted}\n")
        print(f"Building a docker image from directory: {context}... (tag {tag})", flush=True)
        result = subprocess.run([engine, "build", "-t", tag, str(build_dir)])
    if result.returncode != 0:
        raise DrumCommonException(f"Failed to build a docker image from {context} (`{engine} build` exited with "
                                  f"{result.returncode}; its output is above)")  # fmt: skip
    print(f"\nImage successfully built; tag: {tag}")
    print(f"It is recommended to use --docker {tag}, if you don't need to rebuild the image.\n")
    return tag


def resolve_image(engine: str, image_or_dir: str, options: argparse.Namespace) -> str:
    """The image to run: DIR built (or reused), IMAGE as given when the engine has it or can pull it."""
    if os.path.isdir(image_or_dir):
        return build_image(
            engine, image_or_dir, options.code_dir, getattr(options, "language", None),
            bool(getattr(options, "skip_deps_install", False)),
        )  # fmt: skip
    if image_exists(engine, image_or_dir):
        return image_or_dir
    pulled = subprocess.run([engine, "pull", image_or_dir])  # the engine says why it cannot (shown as is)
    if pulled.returncode != 0:
        raise DrumCommonException(
            f"The string '{image_or_dir}' does not represent a docker image in your registry or a directory"
        )
    return image_or_dir


# --- the command line inside the container ---------------------------------------------------------


def _index(args: list[str], flag: str) -> int | None:
    for i, arg in enumerate(args):
        if arg == flag or arg.startswith(flag + "="):
            return i
    return None


def delete_argument(args: list[str], flag: str, has_value: bool = True) -> None:
    i = _index(args, flag)
    if i is None:
        return
    takes_next = has_value and "=" not in args[i] and i + 1 < len(args) and not args[i + 1].startswith("--")
    del args[i : i + 2 if takes_next else i + 1]


def replace_value(args: list[str], flag: str, value: str) -> None:
    i = _index(args, flag)
    if i is None:
        return
    if "=" in args[i]:
        args[i] = f"{flag}={value}"
    elif i + 1 < len(args):
        args[i + 1] = value


def docker_command(engine: str, image: str, options: argparse.Namespace, args: Sequence[str]) -> list[str]:
    """The engine command running `drum <args>` (the command line after env-var injection) in `image`."""
    command = options.subparser_name
    inner = ["--code-dir" if a == "-cd" else a for a in args]
    delete_argument(inner, "--docker")
    delete_argument(inner, "--skip-deps-install", has_value=False)
    delete_argument(inner, "--memory")
    code_dir = os.path.abspath(options.code_dir)
    run = [engine, "run", "--rm", "--init", "--entrypoint", "", "--interactive",
           "--user", f"{os.getuid()}:{os.getgid()}", "-v", f"{code_dir}:{IN_MODEL}"]  # fmt: skip
    if engine == "podman":
        run.insert(2, "--pull=never")  # the image was resolved above: never a registry lookup here
    if getattr(options, "memory", None):
        run += ["--memory", options.memory, "--memory-swap", options.memory]
    if getattr(options, "class_labels", None) and _index(inner, "--class-labels") is None:
        delete_argument(inner, "--class-labels-file")
        inner += ["--class-labels", *options.class_labels]
    replace_value(inner, "--code-dir", IN_MODEL)
    replace_value(inner, "--input", IN_INPUT)
    if command == "server":
        host, sep, port = (getattr(options, "address", None) or "").partition(":")
        if not sep or not port:
            raise DrumCommonException("Error: when using the docker option provide argument --address host:port")
        replace_value(inner, "--address", f"0.0.0.0:{int(port)}")
        run += ["-p", f"{int(port)}:{int(port)}"]
    if getattr(options, "runtime_params_file", None):
        run += ["-v", f"{os.path.abspath(options.runtime_params_file)}:{IN_RUNTIME_PARAMS}"]
        delete_argument(inner, "--runtime-params-file")
        inner += ["--runtime-params-file", IN_RUNTIME_PARAMS]
    if command in ("score", "perf-test", "validation", "fit") and getattr(options, "input", None):
        run += ["-v", f"{os.path.abspath(options.input)}:{IN_INPUT}"]
    if command == "score" and getattr(options, "output", None):
        output = os.path.realpath(options.output)
        if not os.path.exists(output):
            open(output, "a").close()  # a file to mount (else the engine makes a directory)
        run += ["-v", f"{output}:{IN_OUTPUT}"]
        replace_value(inner, "--output", IN_OUTPUT)
    elif command == "fit":
        if getattr(options, "output", None):
            run += ["-v", f"{os.path.realpath(options.output)}:{IN_FIT_OUTPUT}"]
            replace_value(inner, "--output", IN_FIT_OUTPUT)
        for flag, inside in (("--target-csv", IN_FIT_TARGET), ("--row-weights-csv", IN_FIT_WEIGHTS)):
            value = getattr(options, flag[2:].replace("-", "_"), None)
            if value:
                run += ["-v", f"{os.path.realpath(value)}:{inside}"]
                replace_value(inner, flag, inside)
    return [*run, image, "drum", *inner]


def check_version(engine: str, image: str) -> None:
    """Warn when the drum in the image is not this drum (not fatal, as in DRUM)."""
    result = subprocess.run([engine, "run", "--rm", "--entrypoint", "", image, "sh", "-c", "drum --version"],
                            capture_output=True, text=True)  # fmt: skip
    here = f"drum {drum.__version__} (DRUM {drum.DRUM_COMPAT_VERSION} compatible)"
    there = " ".join(result.stdout.split())
    if result.returncode != 0:
        print(f"Unable to determine DRUM version in {image}")
        logger.info("%s failed to get version: %s", image, result.stderr)
    elif there != here:
        print("WARNING: looks like host DRUM version doesn't match container DRUM version. This can lead to "
              f"unexpected behavior.\nHost DRUM version: {here}\nContainer DRUM version: {there}")  # fmt: skip


def run_in_container(options: argparse.Namespace, args: Sequence[str]) -> int:
    """`drum <args> --docker ...`: resolve the image, run the command in it, return 0 or raise."""
    engine = container_engine()
    image = resolve_image(engine, options.docker, options)
    check_version(engine, image)
    command = docker_command(engine, image, options, args)
    logger.info(" ".join(command))
    if getattr(options, "verbose", False):
        print(f"docker command: <{command}>")
    # The engine runs in a directory of its own: podman's conmon writes a file `oom` into its working
    # directory when the container runs out of memory (all paths in the command are absolute).
    with tempfile.TemporaryDirectory(prefix="drum-docker-run-") as workdir:
        process = subprocess.Popen(command, cwd=workdir)
        # The engine proxies SIGINT/SIGTERM to the container (--init passes them on to drum inside, which
        # drains and exits): forward SIGTERM and SIGINT to it, and wait.
        previous = {
            signal.SIGTERM: signal.signal(signal.SIGTERM, lambda *_: process.send_signal(signal.SIGTERM)),
            signal.SIGINT: signal.signal(signal.SIGINT, lambda *_: process.send_signal(signal.SIGINT)),
        }
        try:
            code = process.wait()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        out_of_memory = os.path.exists(os.path.join(workdir, "oom"))
    if code in (0, 128 + signal.SIGTERM, 128 + signal.SIGINT, -signal.SIGTERM, -signal.SIGINT):
        return 0  # done, or stopped on request (DRUM: a KeyboardInterrupt returns 0)
    if code == KILLED and (out_of_memory or getattr(options, "memory", None)):
        limit = f"--memory {options.memory} allows" if getattr(options, "memory", None) else "the engine allows"
        likely = "because" if out_of_memory else "most likely because"
        raise DrumCommonException(
            f"The container was killed (exit code {KILLED}), {likely} it used more memory than {limit}."
        )
    raise DrumCommonException(f"Error from docker process: {code}")


__all__ = ["container_engine", "docker_command", "run_in_container"]
