"""Code-dir discovery: the user's hook files, artifacts and the run language (DRUM §1.7, §3.1)."""

from __future__ import annotations

import os
from pathlib import Path

from drum.errors import DrumCommonException

CUSTOM_FILE = "custom.py"
PYTHON_ARTIFACTS = (".pkl", ".pth", ".h5", ".joblib", ".onnx")
R_ARTIFACTS = (".rds",)
JAVA_ARTIFACTS = (".jar", ".zip", ".java", ".mojo")  # DRUM order: jar, mojo(.zip), pojo(.java), pipeline(.mojo)
RUNNING_LANG_MSG = "Running environment language: Python."


def find_unique_file(code_dir: str | Path, filename: str) -> Path | None:
    """Search recursively for `filename`; more than one match is an error, as in DRUM."""
    found = list(Path(code_dir).rglob(filename))
    if len(found) > 1:
        raise DrumCommonException(f"Found too many custom hook files: {found}")
    return found[0] if found else None


def _has_suffix(name: str, suffixes: tuple[str, ...]) -> bool:
    return name.lower().endswith(suffixes)


def detect_language(code_dir: str | Path, language: str | None = None) -> str:
    """The run language: `--language` wins, else the one custom file, else the artifacts' language."""
    if language:
        return language
    code_dir = os.path.abspath(code_dir)
    families: set[str] = set()
    for _root, _dirs, names in os.walk(code_dir):
        for name in names:
            for family, suffixes in (("python", PYTHON_ARTIFACTS), ("r", R_ARTIFACTS), ("java", JAVA_ARTIFACTS)):
                if _has_suffix(name, suffixes):
                    families.add(family)
    artifact_language = next(iter(families)) if len(families) == 1 else None
    is_py = os.path.isfile(os.path.join(code_dir, "custom.py"))
    is_r = any(os.path.isfile(os.path.join(code_dir, n)) for n in ("custom.R", "custom.r"))
    custom_language = ("python" if is_py else "r") if is_py + is_r == 1 else None
    if custom_language is None and artifact_language is None or (
        custom_language and artifact_language and custom_language != artifact_language
    ):
        raise DrumCommonException(
            "Can not detect language by artifacts and/or custom.py/R files.\n"
            f"Detected: language by artifacts - {artifact_language}; language by custom - {custom_language}.\n"
            "Code directory must have one or more model artifacts belonging to the same language:\n"
            "Python/R/Java, with an extension:\n"
            f"Python models: {list(PYTHON_ARTIFACTS)}\n"
            f"R models: {list(R_ARTIFACTS)}\n"
            f"Java models: {list(JAVA_ARTIFACTS)}.\n"
            "Or one of custom.py/R files."
            f"\n\nFiles(100 first) found in {code_dir}:\n" + "\n".join(sorted(os.listdir(code_dir))[:100]) + "\n"
        )
    return custom_language or artifact_language  # type: ignore[return-value]


def find_model_artifact(code_dir: str | Path, extensions: tuple[str, ...]) -> Path:
    """The one top-level artifact file with a supported extension (case-insensitive)."""
    names = sorted(os.listdir(code_dir))
    listing = " | ".join(names)
    found: Path | None = None
    for name in names:
        path = Path(code_dir) / name
        if path.is_dir() or not _has_suffix(name, extensions):
            continue
        if found is not None:
            raise DrumCommonException(
                f"\n\n{RUNNING_LANG_MSG}\nMultiple serialized model files found. Remove extra artifacts "
                f"or overwrite custom.load_model()\nList of retrieved files are: {listing}"
            )
        found = path
    if found is None:
        raise DrumCommonException(
            f"\n\n{RUNNING_LANG_MSG}\nCould not find model artifact file in: {code_dir} supported by "
            f"default predictors.\nThey support filenames with the following extensions "
            f"{sorted(extensions)}.\nIf your artifact is not supported by default predictor, "
            f"implement custom.load_model() hook.\nList of retrieved files are: {listing}"
        )
    return found


FASTAPI_EXTENSION_FILE = "custom_fastapi.py"
FLASK_EXTENSION_FILE = "custom_flask.py"

#: Directories never searched: caches, VCS metadata and installed packages (vendored virtualenvs).
_SKIPPED_DIRS = frozenset({"__pycache__", "site-packages", "dist-packages", "node_modules"})


def find_files(code_dir: str | os.PathLike[str], name: str) -> list[Path]:
    """Every file called `name` under `code_dir`, sorted; hidden dirs, caches and virtualenvs are skipped."""
    found: list[Path] = []
    for root, dirs, files in os.walk(code_dir):
        dirs[:] = sorted(
            d
            for d in dirs
            if not d.startswith(".")
            and d not in _SKIPPED_DIRS
            and not os.path.exists(os.path.join(root, d, "pyvenv.cfg"))
        )
        if name in files:
            found.append(Path(root, name))
    return sorted(found)
