"""The Dockerfiles agree with the chart and the operator (no Docker engine here to build them).

What can be checked without building: every COPY source exists and survives
the .dockerignore, the images run as the numeric user the pods run as, only
the inference image carries the engines (piper-tts is GPL-3.0), the CUDA
base is a build argument, and the entrypoint is the command pods run.
"""

from __future__ import annotations

import fnmatch
import re
import tomllib
from pathlib import Path

import pytest

from ttsfleet.operator import objects

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
IMAGES_SH = DOCKER / "images.sh"
IMAGES = {"operator-router": DOCKER / "Dockerfile", "inference": DOCKER / "Dockerfile.inference"}


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [
        (word.upper(), rest.strip())
        for word, _, rest in (line.partition(" ") for line in lines if line and line[0] != "#")
    ]


def final_stage(dockerfile: Path) -> list[tuple[str, str]]:
    steps = instructions(dockerfile)
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last_from:]


def ignored(path: str, dockerignore: Path) -> bool:
    """Whether BuildKit's .dockerignore rules (last match wins, ! re-includes) drop ``path``."""
    result = False
    for rule in dockerignore.read_text().splitlines():
        rule = rule.strip()
        if not rule or rule.startswith("#"):
            continue
        negated, pattern = rule.startswith("!"), rule.lstrip("!")
        if fnmatch.fnmatch(path, pattern):
            result = not negated
    return result


@pytest.mark.parametrize("dockerfile", IMAGES.values(), ids=IMAGES.keys())
def test_every_copy_source_exists_and_is_in_the_context(dockerfile: Path) -> None:
    dockerignore = ROOT / ".dockerignore"
    sources = [
        source
        for word, args in instructions(dockerfile)
        if word == "COPY" and not args.startswith("--from")
        for source in args.split()[:-1]
    ]
    assert sources
    assert [s for s in sources if not (ROOT / s).exists()] == []
    assert [s for s in sources if ignored(s, dockerignore)] == []


@pytest.mark.parametrize("dockerfile", IMAGES.values(), ids=IMAGES.keys())
def test_runs_as_the_numeric_user_the_pods_run_as(dockerfile: Path) -> None:
    """runAsNonRoot can only be verified for a numeric USER; the chart and operator pin 65532."""
    users = [args for word, args in final_stage(dockerfile) if word == "USER"]
    assert users == [f"{objects.RUN_AS}:{objects.RUN_AS}"]
    helpers = (ROOT / "charts" / "ttsfleet" / "templates" / "_helpers.tpl").read_text()
    assert re.findall(r"runAsUser: (\d+)", helpers) == [str(objects.RUN_AS)]


@pytest.mark.parametrize("dockerfile", IMAGES.values(), ids=IMAGES.keys())
def test_the_entrypoint_is_the_command_pods_run(dockerfile: Path) -> None:
    entrypoints = [args for word, args in final_stage(dockerfile) if word == "ENTRYPOINT"]
    assert entrypoints == ['["ttsfleet"]']


def _installs(dockerfile: Path) -> str:
    return " ".join(args for word, args in instructions(dockerfile) if word == "RUN")


def test_only_the_inference_image_installs_the_engines() -> None:
    assert not re.search(r"piper|torch", _installs(IMAGES["operator-router"]))
    assert '"/src[$EXTRAS]"' in _installs(IMAGES["operator-router"])
    args = [args for word, args in instructions(IMAGES["operator-router"]) if word == "ARG"]
    assert "EXTRAS=gateway,redis,mcp" in args
    assert '"/src[$ENGINE_EXTRA]"' in _installs(IMAGES["inference"])
    args = [args for word, args in instructions(IMAGES["inference"]) if word == "ARG"]
    assert "ENGINE_EXTRA=torch" in args  # the torch extra includes piper


def test_the_inference_base_image_is_a_build_argument() -> None:
    steps = instructions(IMAGES["inference"])
    assert steps[0][0] == "ARG" and steps[0][1].startswith("BASE_IMAGE=nvidia/cuda:")
    froms = [args.split()[0] for word, args in steps if word == "FROM"]
    assert froms == ["${BASE_IMAGE}", "${BASE_IMAGE}"]


@pytest.mark.parametrize("dockerfile", IMAGES.values(), ids=IMAGES.keys())
def test_hygiene_no_second_index_no_pip_cache_no_bytecode_writes(dockerfile: Path) -> None:
    """A second index could shadow a package (dependency confusion); caches and pip stay out."""
    text = " ".join(args for _, args in instructions(dockerfile))  # comments may say why
    assert "--extra-index-url" not in text
    assert "PIP_NO_CACHE_DIR=1" in text
    assert "pip uninstall --yes pip setuptools" in _installs(dockerfile)
    env = " ".join(args for word, args in final_stage(dockerfile) if word == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env


def test_the_gate_image_is_the_control_plane_dockerfile_with_an_engine_free_gate_extra() -> None:
    """images.sh builds it; its extra pulls in no piper-tts (GPL-3.0) and no torch."""
    assert re.search(r'build "\$GATE" docker/Dockerfile .*"EXTRAS=gate"', IMAGES_SH.read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    gate = " ".join(project["optional-dependencies"]["gate"])
    assert not re.search(r"piper|torch|ttsfleet\[", gate)
