"""Shared by `drum server` and `drum score`: turn parsed options into a `ModelConfig`, and load the predictor
of its language."""

from __future__ import annotations

import argparse

from drum.cli.parser import check_unstructured_only_options
from drum.errors import DrumCommonException
from drum.model.code_dir import detect_language
from drum.model.metadata import read_model_metadata_yaml, resolve_target_and_labels_from_metadata
from drum.model.predictor import ModelConfig, Predictor


def model_config(options: argparse.Namespace) -> tuple[ModelConfig, dict | None]:
    """Resolve language, target type and labels (CLI/env vs model-metadata.yaml) for the code dir."""
    code_dir = options.code_dir
    if getattr(options, "gpu_predictor", None) and not getattr(options, "language", None):
        language = "other"  # as DRUM: the model is the backend server, no artifact to detect
    else:
        language = detect_language(code_dir, getattr(options, "language", None))
    gpu_predictor = getattr(options, "gpu_predictor", None)
    if language not in ("python", "r", "java") and not (language == "other" and gpu_predictor):
        raise DrumCommonException(
            f"Models in language '{language}' are not supported by this drum; Python, R and Java models can be served."
        )
    metadata = read_model_metadata_yaml(code_dir)
    resolved = resolve_target_and_labels_from_metadata(
        metadata,
        options.target_type,
        getattr(options, "positive_class_label", None),
        getattr(options, "negative_class_label", None),
        getattr(options, "class_labels", None),
        getattr(options, "class_labels_file", None),
    )
    check_unstructured_only_options(options, resolved.target_type.value)
    config = ModelConfig(
        code_dir=code_dir,
        target_type=resolved.target_type,
        positive_class_label=resolved.positive_class_label,
        negative_class_label=resolved.negative_class_label,
        class_labels=resolved.class_labels,
        language=language,
        type_schema=(metadata or {}).get("typeSchema") or None,
        user_secrets_mount_path=getattr(options, "user_secrets_mount_path", None),
        user_secrets_prefix=getattr(options, "user_secrets_prefix", None),
    )
    return config, metadata


def load_predictor(config: ModelConfig) -> Predictor:
    """The loaded predictor of the model's language (R models start the process's R interpreter)."""
    if config.language == "r":
        from drum.model.r_predictor import RPredictor

        return RPredictor(config).load()
    if config.language == "java":
        from drum.model.java_predictor import JavaPredictor

        return JavaPredictor(config).load()
    return Predictor(config).load()
