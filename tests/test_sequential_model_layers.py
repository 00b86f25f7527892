"""Layers point one way, and each default lives once (issue 12.2, 12.3).

``models/`` holds torch modules and imports nothing from ``suite/`` (walked statically over
every module's imports, so a lazy import inside a function counts too). The sequential
options classes take their defaults from the YAML files beside the models, and their keys
are the config keys the models read.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from recbole.config import Config

from models.cl4srec import CL4SRec
from models.defaults import model_file, read_defaults, recbole_model_file
from models.mclrec import TRAINER_KEYS, MCLRec
from models.sasrec import FusedSASRec
from suite.sequential import entries as P

MODELS = Path(__file__).resolve().parents[1] / "models"


def imported_modules(source: Path) -> set[str]:
    """Every module a file imports, at any depth of its syntax tree (relative imports resolved)."""
    package = ".".join(source.relative_to(MODELS.parent).with_suffix("").parts[:-1])
    names: set[str] = set()
    for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(part for part in (base, node.module or "") if part)
            names.add(module)
    return names


def test_the_walk_sees_lazy_and_relative_imports(tmp_path: Path) -> None:
    package = MODELS / "_probe_walk"
    probe = package / "probe.py"
    try:
        package.mkdir()
        probe.write_text("def f():\n    from suite.api import Options\n    from ..defaults import model_file\n    import suite.spec\n")
        assert imported_modules(probe) == {"suite.api", "models.defaults", "suite.spec"}
    finally:
        probe.unlink(missing_ok=True)
        package.rmdir()


@pytest.mark.parametrize("source", sorted(MODELS.rglob("*.py")), ids=lambda path: str(path.relative_to(MODELS)))
def test_models_import_nothing_from_suite(source: Path) -> None:
    offending = sorted(name for name in imported_modules(source) if name == "suite" or name.startswith("suite."))
    assert not offending, f"{source.relative_to(MODELS.parent)} imports {offending}"


def _defaults_of(options_class: type) -> dict:
    return {name: field.get_default(call_default_factory=True) for name, field in options_class.model_fields.items()}


@pytest.mark.parametrize(
    ("options_class", "defaults"),
    [
        (P.SASRecOptions, {**read_defaults([recbole_model_file("SASRec")]), "encoder": "recbole"}),  # the entry's own default
        (P.CL4SRecOptions, CL4SRec.default_config()),
        (P.MCLRecOptions, MCLRec.default_config()),
        (P.MetaTrainerOptions, MCLRec.default_config()),
    ],
)
def test_option_defaults_are_the_yaml_defaults(options_class: type, defaults: dict) -> None:
    """Every option is a config key, and its default is the defaults file's value."""
    options = _defaults_of(options_class)
    assert set(options) <= set(defaults)
    assert options == {key: defaults[key] for key in options}


def test_sasrec_on_either_encoder_reads_its_own_defaults() -> None:
    """``sasrec`` is RecBole's own class by default (exact parity); ``encoder: fused`` is FusedSASRec."""
    recbole_class, recbole_fragment = P.SASREC.build(P.SASRecOptions())
    fused_class, fused_fragment = P.SASREC.build(P.SASRecOptions(encoder="fused"))
    assert recbole_class.__module__.startswith("recbole.") and "encoder" not in recbole_fragment
    assert fused_class is FusedSASRec and fused_fragment["encoder"] == "fused"
    assert {key: fused_fragment[key] for key in recbole_fragment} == recbole_fragment
    assert P.MCLRecOptions().encoder == P.CL4SRecOptions().encoder == FusedSASRec.default_config()["encoder"] == "fused"


def test_spec_keys_cover_every_model_key() -> None:
    """A spec can set every key the model reads, except the loss type and the switches CL4SRec fixes."""
    fixed = {"loss_type", "train_neg_sample_args"}
    mclrec_keys = set(MCLRec.default_config()) - set(TRAINER_KEYS) - fixed
    assert mclrec_keys == set(P.MCLRecOptions.model_fields)
    cl4srec_fixes = {key for key, value in read_defaults([model_file("cl4srec")]).items() if isinstance(value, bool)}
    mclrec_only = {
        "cl2_weight",
        "cl2_temperature",
        "regularizer_weight",
        "augmenter_regularizer_weight",
        "regularizer_scope",
        "augmenter_init",
    }
    assert set(P.CL4SRecOptions.model_fields) == mclrec_keys - cl4srec_fixes - mclrec_only
    assert set(TRAINER_KEYS) == set(P.MetaTrainerOptions.model_fields)


def test_no_key_collides_with_recboles_own() -> None:
    """Our keys must not change RecBole's own settings (its data transforms read eta, beta, mask_ratio)."""
    recbole_keys = set(read_defaults(sorted((recbole_model_file("SASRec").parent).glob("*.yaml"))))
    overall = recbole_model_file("SASRec").parents[1] / "overall.yaml"
    recbole_keys |= set(read_defaults([overall, overall.parent / "dataset" / "sample.yaml"]))
    recbole_keys |= {"eta", "beta", "mask_ratio", "ft_ratio", "tail_ratio"}  # read by recbole.data.transform
    ours = set(MCLRec.default_config()) - set(read_defaults([recbole_model_file("SASRec")])) - {"train_neg_sample_args"}
    assert not ours & recbole_keys


def test_a_plain_recbole_config_reads_the_same_defaults(tmp_path: Path) -> None:
    """RecBole's own loader, given ``config_files()``, gives the values the options default to."""
    config = Config(model=MCLRec, dataset="ml-100k", config_file_list=MCLRec.config_files(), config_dict={"data_path": str(tmp_path)})
    for key, value in MCLRec.default_config().items():
        if key != "train_neg_sample_args":  # RecBole expands it into its own structure
            assert config[key] == value, key


@pytest.mark.parametrize(("model", "accepted"), [("mclrec", True), ("cl4srec", True), ("sasrec", False)])
def test_the_meta_trainer_refuses_a_model_it_cannot_train_before_any_run(model: str, accepted: bool, tmp_path: Path) -> None:
    """``mclrec-trainer``'s pre-flight check (issue 10.8): a SpecError naming the model, from the spec alone."""
    from suite import spec as specs
    from suite.errors import SpecError

    spec = tmp_path / "spec.yaml"
    spec.write_text(f"seeds: [0]\nscenario: {{name: recbole}}\nmodel: {{name: {model}}}\nmethod: {{name: mclrec-trainer}}\n")
    point = specs.plan(spec, check_data=False).base
    assert P.MCLREC_TRAINER.names_runs_after_model and P.RECBOLE_TRAINER.names_runs_after_model
    if accepted:
        P.MCLREC_TRAINER.check(point)
    else:
        with pytest.raises(SpecError, match="'mclrec-trainer' trains model mclrec or cl4srec, not 'sasrec'"):
            P.MCLREC_TRAINER.check(point)
