"""`drum new model --code-dir DIR --language python|r`: write a model directory that serves as is.

Like DRUM's template generator it writes `custom.py` (every hook documented) and `README.md`, stamped
with the generating command and date; unlike DRUM's, `load_model` and `score` are implemented (a small
regression) and an example `custom_fastapi.py` (token authentication) is included.
"""

from __future__ import annotations

import argparse
import os
import time

from drum.cli.new_model_templates import CUSTOM_FASTAPI_PY, CUSTOM_PY, CUSTOM_R, README_MD, README_R_MD
from drum.errors import DrumCommonException

TEMPLATES = {
    "python": {"custom.py": CUSTOM_PY, "custom_fastapi.py": CUSTOM_FASTAPI_PY, "README.md": README_MD},
    "r": {"custom.R": CUSTOM_R, "README.md": README_R_MD},
}


def render(text: str, language: str) -> str:
    values = {"gen_command": f"drum new model --language {language}", "gen_date": time.ctime()}
    for name, value in values.items():
        text = text.replace("{{" + name + "}}", value)
    return text


def write_template(code_dir: str | os.PathLike[str], language: str = "python") -> list[str]:
    """Create `code_dir` (it must not exist) with the template of `language`; returns the file names."""
    template = TEMPLATES.get(language)
    if template is None:
        raise DrumCommonException(
            f"Language: {language} is not supported yet by 'drum new model'; use --language python or r."
        )
    if os.path.exists(code_dir):
        raise DrumCommonException(f"The path {code_dir} already exists! Please provide a non existing path!")
    os.makedirs(code_dir)
    for name, text in template.items():
        with open(os.path.join(code_dir, name), "w", encoding="utf-8") as f:
            f.write(render(text, language))
    return list(template)


def run(options: argparse.Namespace) -> int:
    if getattr(options, "new_mode", "model") != "model":
        raise DrumCommonException(f"'drum new {options.new_mode}' is not supported; use 'drum new model'.")
    code_dir = os.path.abspath(options.code_dir)
    names = write_template(code_dir, options.language)
    print(f"Created a {options.language} model template in {code_dir}: {', '.join(sorted(names))}")
    print(f"Serve it with: drum server --code-dir {code_dir} --address 127.0.0.1:8080 --target-type regression")
    return 0
