"""The variables each Deployment under `infra/k8s` sets: the one list of what a process reads.

`make dev` gives each process the variables its Deployment sets, with local values
(`plan.py`), so the list is not written a second time here; `infra/tests` checks it against
the services' `Settings`.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

K8S_DIR = Path("infra") / "k8s"

_REFERENCE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


class ManifestError(ValueError):
    """The manifests cannot be read, or lack a service's Deployment."""


@dataclass(frozen=True)
class EnvVar:
    """One variable of a container: its literal value, or None when a Secret or ConfigMap
    gives it."""

    name: str
    value: str | None


def deployment_env(root: Path) -> dict[str, tuple[EnvVar, ...]]:
    """Per Deployment `<name>-depl`, keyed by `<name>`: what its one container sets.

    A variable that exists only to be expanded into another (`$(NAME)`: a Secret's
    password in a URL) is left out: locally the URLs carry no credentials.
    """
    folder = root / K8S_DIR
    files = tuple(sorted(folder.glob("*.yaml")))
    if not files:
        raise ManifestError(
            f"no manifests in {folder}: make dev reads each process's variables there"
        )
    # Parsed once per plan (which asks for every process), and again after an edit.
    return dict(_parse(files, tuple(path.stat().st_mtime_ns for path in files)))


@functools.lru_cache(maxsize=4)
def _parse(files: tuple[Path, ...], _stamps: tuple[int, ...]) -> dict[str, tuple[EnvVar, ...]]:
    found: dict[str, tuple[EnvVar, ...]] = {}
    for path in files:
        try:
            docs = [d for d in yaml.load_all(path.read_text(), Loader=_Loader) if d]
        except (OSError, yaml.YAMLError) as exc:
            raise ManifestError(f"cannot read {path}: {exc}") from exc
        for doc in docs:
            name = str(doc.get("metadata", {}).get("name", ""))
            if doc.get("kind") == "Deployment" and name.endswith("-depl"):
                found[name.removesuffix("-depl")] = _container_env(doc, path)
    return found


def _container_env(deployment: dict[str, Any], path: Path) -> tuple[EnvVar, ...]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    if len(containers) != 1:
        raise ManifestError(f"{path}: {deployment['metadata']['name']} needs exactly one container")
    variables = [
        EnvVar(str(var["name"]), None if "value" not in var else str(var["value"]))
        for var in containers[0].get("env", [])
    ]
    expanded = {ref for var in variables for ref in _REFERENCE.findall(var.value or "")}
    return tuple(var for var in variables if var.name not in expanded)


# The C parser when PyYAML has it: a tenth of the time of the pure-Python one.
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
