"""Java models (`pip install 'drum[java]'`: py4j, with a JDK from the system), as DRUM 1.18.1 serves them.

drum's own Java entry point (sources in `drum/model/java`, compiled with `javac` on first use into a cache
directory) starts in a JVM and serves one predictor over a py4j gateway on 127.0.0.1:
- `.jar`: DataRobot Scoring Code (`drum.java.ScoringCode`, the Scoring Code API by reflection);
- `.zip` / `.java`: an H2O MOJO / POJO (`drum.java.H2OPredictor`, h2o-genmodel taken from the `h2o`
  package's `h2o.jar`);
- `DRUM_JAVA_CUSTOM_PREDICTOR_CLASS` (+ `DRUM_JAVA_CUSTOM_CLASS_PATH`): a class extending
  `com.datarobot.drum.BasePredictor`.
CSV in, CSV out (a `Predictions` column or one column per class label); no transform, no Matrix Market.
"""

from __future__ import annotations

import atexit
import hashlib
import io
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pandas as pd

from drum.errors import DrumCommonException
from drum.model.fastcsv import read_plain_numeric_csv
from drum.model.marshalling import marshal_predictions
from drum.model.predictor import ModelConfig, PredictionInput, Predictor, PredictResponse

logger = logging.getLogger("drum.model.java_predictor")

SOURCES = Path(__file__).with_name("java")
ENTRY_POINT = "drum.java.EntryPoint"
H2O_PREDICTOR = "drum.java.H2OPredictor"
CLASS_BY_EXTENSION = {".jar": "drum.java.ScoringCode", ".zip": H2O_PREDICTOR, ".java": H2O_PREDICTOR}
JAVA_ARTIFACTS = [".jar", ".zip", ".java", ".mojo"]
RUNNING_LANG_MSG = "Running environment language: Java."
#: Payloads above this many bytes go to the JVM as a temporary file (DRUM's limit), not over the socket.
FILE_THRESHOLD = 33792
GATEWAY_START_TIMEOUT = 60.0
PORT_LINE = "DRUM_JAVA_GATEWAY_PORT "
DAI_LICENSE_MISSING = (
    "Cannot find license file for DAI Mojo Pipeline.\nMake sure you have done one of the following:\n"
    "\t* provided license.sig file in the artifacts\n"
    "\t* set the environment variable DRIVERLESS_AI_LICENSE_FILE : A location of file with a license\n"
    "\t* set the environment variable DRIVERLESS_AI_LICENSE_KEY : A license key"
)


def _tool(name: str) -> str:
    home = os.environ.get("JAVA_HOME")
    if home and os.access(Path(home, "bin", name), os.X_OK):
        return str(Path(home, "bin", name))
    found = shutil.which(name)
    if found is None:
        raise DrumCommonException(
            f"Java models need a JDK, and `{name}` was not found (JAVA_HOME, PATH). Install one, e.g. "
            "`apt-get install default-jdk-headless` on Debian/Ubuntu, then run drum again."
        )
    return found


def py4j_jar() -> str:
    try:
        from py4j.java_gateway import find_jar_path
    except ImportError:
        raise DrumCommonException(
            "Java models need the py4j package, which is not installed. Install drum with Java support: "
            "pip install 'drum[java]'"
        ) from None
    path = find_jar_path()
    if not path:
        raise DrumCommonException("py4j is installed without its jar (share/py4j/py4j*.jar); reinstall py4j")
    return path


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base, "drum")


def h2o_genmodel_jar() -> str | None:
    """h2o-genmodel, extracted once from the `h2o` package's h2o.jar (`www/3/h2o-genmodel.jar`); None when
    the `h2o` package is not installed."""
    spec = find_spec("h2o")
    if spec is None or not spec.submodule_search_locations:
        return None
    h2o_jar = Path(next(iter(spec.submodule_search_locations)), "backend", "bin", "h2o.jar")
    if not h2o_jar.is_file():
        return None
    target = cache_dir() / f"h2o-genmodel-{h2o_jar.stat().st_size}.jar"
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            with zipfile.ZipFile(h2o_jar) as archive:
                content = archive.read("www/3/h2o-genmodel.jar")
        except (zipfile.BadZipFile, KeyError, OSError) as exc:
            logger.warning("No h2o-genmodel in %s (%s): H2O models cannot be served", h2o_jar, exc)
            return None
        with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as out:
            out.write(content)
        os.replace(out.name, target)
    return str(target)


def build(genmodel: str | None) -> Path:
    """drum's Java classes, compiled with `javac` once per source version into the cache (H2OPredictor
    only when h2o-genmodel is available); concurrent builds each write their own directory and rename."""
    sources = sorted(SOURCES.rglob("*.java"))
    if genmodel is None:
        sources = [s for s in sources if s.name != "H2OPredictor.java"]
    digest = hashlib.sha256()
    for source in sources:
        digest.update(source.read_bytes())
    digest.update(str(genmodel).encode())
    target = cache_dir() / f"java-{digest.hexdigest()[:16]}"
    if (target / ".complete").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=target.parent, prefix=".build-"))
    classpath = os.pathsep.join(p for p in (py4j_jar(), genmodel) if p)
    command = [_tool("javac"), "--release", "11", "-nowarn", "-d", str(work), "-cp", classpath, *map(str, sources)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        shutil.rmtree(work, ignore_errors=True)
        raise DrumCommonException(f"Compiling drum's Java entry point failed:\n{result.stderr}")
    (work / ".complete").write_text("")
    try:
        os.rename(work, target)
    except OSError:  # another process built it first
        shutil.rmtree(work, ignore_errors=True)
    return target


class JavaPredictor(Predictor):
    """A Java model served by a JVM of its own (see the module docstring)."""

    reads_frames = False
    payload_formats = {"csv": None}

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        self.process: subprocess.Popen[str] | None = None
        self.gateway: Any = None
        self.java: Any = None
        self._lock = threading.Lock()

    # --- loading ---------------------------------------------------------------------------------

    def load(self) -> JavaPredictor:
        code_dir = self.config.code_dir
        names = sorted(os.listdir(code_dir))
        extensions = [e for name in names for e in JAVA_ARTIFACTS if name.lower().endswith(e)]
        if not extensions:
            raise DrumCommonException(
                f"\n\n{RUNNING_LANG_MSG}\nCould not find model artifact file in: {code_dir} supported by default "
                f"predictors.\nThey support filenames with the following extensions {JAVA_ARTIFACTS}.\n"
                f"List of retrieved files are: {' | '.join(names).lower()}"
            )
        custom_class = os.environ.get("DRUM_JAVA_CUSTOM_PREDICTOR_CLASS")
        if ".mojo" in extensions and not custom_class:
            licensed = (os.environ.get("DRIVERLESS_AI_LICENSE_FILE") or os.environ.get("DRIVERLESS_AI_LICENSE_KEY")
                        or os.path.isfile(os.path.join(code_dir, "license.sig")))  # fmt: skip
            if not licensed:
                raise DrumCommonException(DAI_LICENSE_MISSING)
            raise DrumCommonException(
                "Driverless AI MOJO pipelines (.mojo) need H2O's proprietary mojo2 runtime, which this drum does not "
                "run; score them with DRUM's java_codegen environment or DAI's own scorer."
            )
        class_name = custom_class or CLASS_BY_EXTENSION[extensions[0]]
        genmodel = h2o_genmodel_jar()
        if class_name == H2O_PREDICTOR and genmodel is None:
            raise DrumCommonException(
                "H2O models (.zip MOJO, .java POJO) need h2o-genmodel, which drum takes from the `h2o` package: "
                "pip install h2o"
            )
        classpath = [str(build(genmodel)), py4j_jar(), *([genmodel] if genmodel else [])]
        if os.environ.get("DRUM_JAVA_CUSTOM_CLASS_PATH"):
            classpath.append(os.environ["DRUM_JAVA_CUSTOM_CLASS_PATH"])
        self._start(class_name, os.pathsep.join(classpath))
        self._configure()
        return self

    def _start(self, class_name: str, classpath: str) -> None:
        from py4j.java_gateway import GatewayParameters, JavaGateway

        command = [_tool("java")]
        if os.environ.get("DRUM_JAVA_XMX"):
            command.append(f"-Xmx{os.environ['DRUM_JAVA_XMX']}")
        command += ["-cp", classpath, ENTRY_POINT, "--class-name", class_name]
        logger.info("Loading predictor class: %s", class_name)
        self.process = process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, bufsize=1)
        atexit.register(self.terminate)
        port = None
        deadline = time.monotonic() + GATEWAY_START_TIMEOUT
        assert process.stdout is not None
        while port is None and time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            if line.startswith(PORT_LINE):
                port = int(line[len(PORT_LINE):])
            else:
                sys.stdout.write(line)
        if port is None:
            self.terminate()
            raise DrumCommonException(
                f"java gateway failed to start (predictor class {class_name}): see the JVM's messages above"
            )
        threading.Thread(target=self._echo, args=(process.stdout,), daemon=True, name="drum-java-stdout").start()
        self.gateway = JavaGateway(gateway_parameters=GatewayParameters(port=port, auto_convert=True, eager_load=True))
        self.java = self.gateway.entry_point.getPredictor()

    @staticmethod
    def _echo(stream: io.TextIOBase) -> None:
        for line in stream:
            sys.stdout.write(line)

    def _configure(self) -> None:
        c = self.config
        params = {
            "__custom_model_path__": c.code_dir, "target_type": self.target_type.value,
            "positiveClassLabel": c.positive_class_label, "negativeClassLabel": c.negative_class_label,
        }  # fmt: skip
        java_map = self.gateway.jvm.java.util.HashMap()
        for key, value in params.items():
            java_map.put(key, value)
        labels = None
        if c.class_labels:
            labels = self.gateway.new_array(self.gateway.jvm.java.lang.String, len(c.class_labels))
            for i, label in enumerate(c.class_labels):
                labels[i] = str(label)
        java_map.put("classLabels", labels)
        self._call(lambda: self.java.configure(java_map))

    def _call(self, job: Any) -> Any:
        with self._lock:
            try:
                return job()
            except Exception as exc:
                if type(exc).__name__ == "Py4JJavaError":  # the Java exception's own text, as DRUM answers it
                    raise DrumCommonException(str(exc.java_exception.toString())) from None  # type: ignore[attr-defined]
                raise

    # --- serving ----------------------------------------------------------------------------------

    def has_read_input_data_hook(self) -> bool:
        return False

    def predict(self, inputs: PredictionInput) -> PredictResponse:
        data = inputs.binary_data
        if len(data) > FILE_THRESHOLD:
            with tempfile.NamedTemporaryFile(suffix=".csv") as f:
                f.write(data)
                f.flush()
                text = self._call(lambda: self.java.predictCSV(f.name))
        else:
            text = self._call(lambda: self.java.predict(bytearray(data)))
        frame = read_plain_numeric_csv(text.encode())  # ~15 µs for a few rows, where pandas takes ~200 µs
        if frame is None:
            frame = pd.read_csv(io.StringIO(text))
        predictions = marshal_predictions(self.class_ordering, frame.values, self.target_type, frame.columns)
        return PredictResponse(predictions)

    def transform(self, *args: Any, **kwargs: Any) -> tuple[pd.DataFrame, Any]:
        raise DrumCommonException("Transform feature is not supported for Java/Scala")

    def predict_unstructured(self, data: str | bytes, **kwargs: Any) -> tuple[Any, dict | None]:
        charset = kwargs.get("charset") or "utf-8"
        payload = bytearray(data.encode(charset) if isinstance(data, str) else data)
        query = self.gateway.jvm.java.util.HashMap()
        for key, value in (kwargs.get("query") or {}).items():
            query.put(str(key), str(value))
        result = self._call(lambda: self.java.predictUnstructured(payload, kwargs.get("mimetype"), charset, query))
        return (bytes(result) if isinstance(result, (bytes, bytearray)) else result), None

    def supports_chat(self) -> bool:
        return False

    def info(self) -> dict:
        info = super().info()
        info.pop("predictor", None)  # DRUM's Java predictor reports none
        return info

    def terminate(self) -> None:
        super().terminate()
        gateway, self.gateway = self.gateway, None
        if gateway is not None:
            try:
                gateway.shutdown()
            except Exception:  # noqa: BLE001 - the JVM may be gone already
                pass
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
