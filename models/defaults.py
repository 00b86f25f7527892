"""Model defaults live in YAML files beside the models, as RecBole keeps its own.

RecBole reads a model's defaults from ``recbole/properties/model/<Model>.yaml``, but only for
models inside its package; a plain RecBole user of a model defined here passes the files
with ``Config(model=MCLRec, config_file_list=MCLRec.config_files(), ...)``. The suite's
options classes take their defaults from the same files, so each default lives once and a
spec key is the config key the model reads. SASRec's encoder defaults are RecBole's own
``SASRec.yaml``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

MODELS_DIR = Path(__file__).resolve().parent

# RecBole's loader reads '1e-12' as a float (plain YAML 1.1 reads a string): the same rule here.
_FLOAT = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+][0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)


class _DefaultsLoader(yaml.SafeLoader):
    """A safe loader that reads numbers the way RecBole's config loader does."""


_DefaultsLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))


def recbole_model_file(model_name: str) -> Path:
    """RecBole's own defaults file of one of its models (e.g. ``SASRec``)."""
    import recbole

    return Path(recbole.__file__).resolve().parent / "properties" / "model" / f"{model_name}.yaml"


def model_file(name: str) -> Path:
    """A defaults file beside the models (``models/<name>.yaml``)."""
    return MODELS_DIR / f"{name}.yaml"


def read_defaults(files: list[Path]) -> dict[str, Any]:
    """The merged defaults of ``files``, later files winning, as RecBole's ``config_file_list`` merges them."""
    merged: dict[str, Any] = {}
    for path in files:
        merged.update(yaml.load(path.read_text(encoding="utf-8"), Loader=_DefaultsLoader) or {})
    return merged


def missing_keys(config: Any, defaults: dict[str, Any]) -> list[str]:
    """Keys of ``defaults`` a RecBole config does not hold (a plain-RecBole user forgot the files)."""
    return [key for key in defaults if key not in config]
