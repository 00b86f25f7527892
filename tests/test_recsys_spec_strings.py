"""Issue 10.1: RecBole ``eval``s config strings, so a spec string must never reach it as code.

For each string key of a RecBole spec, the same payload is planted where it would reach
RecBole's ``Config`` (a header field, a folder name), and ``suite run`` must refuse it: exit 2,
one line naming the key, the command never runs (no marker file) and no MLflow run exists.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from suite.cli import main

MARKER = "PWNED"
PAYLOAD = f"__import__('os').system('touch {MARKER}') or 'x'"


def _dataset(
    folder: Path, name: str = "shop", user_field: str = "user_id", item_field: str = "item_id", time_field: str = "timestamp"
) -> Path:
    """A small valid atomic dataset whose header may carry the payload as a field name."""
    (folder / name).mkdir(parents=True)
    rows = [f"u{user}\ti{(user + step) % 7}\t{step}" for user in range(6) for step in range(6)]
    header = f"{user_field}:token\t{item_field}:token\t{time_field}:float"
    (folder / name / f"{name}.inter").write_text(header + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return folder / name


def _spec(tmp_path: Path, scenario: dict, train: dict | None = None) -> Path:
    tree = {
        "experiment": "payload",
        "seeds": [0],
        "scenario": {"name": "recbole", **scenario},
        "model": {"name": "sasrec", "hidden_size": 8, "inner_size": 16, "n_layers": 1, "n_heads": 1},
        "method": {"name": "recbole-trainer"},
        "train": {"epochs": 1, "num_threads": 1, **(train or {})},
    }
    path = tmp_path / "payload.yaml"
    path.write_text(yaml.safe_dump(tree), encoding="utf-8")
    return path


def _cases(tmp_path: Path) -> dict[str, tuple[dict, dict | None]]:
    fields = {key: str(_dataset(tmp_path / key, **{key: PAYLOAD})) for key in ("user_field", "item_field", "time_field")}
    return {
        "scenario.dataset": ({"dataset": PAYLOAD}, None),
        "scenario.path": ({"path": str(_dataset(tmp_path / "named", name=PAYLOAD))}, None),
        "scenario.user_field": ({"path": fields["user_field"], "user_field": PAYLOAD}, None),
        "scenario.item_field": ({"path": fields["item_field"], "item_field": PAYLOAD}, None),
        "scenario.time_field": ({"path": fields["time_field"], "time_field": PAYLOAD}, None),
        "scenario.user_inter_num_interval": ({"path": str(_dataset(tmp_path / "u")), "user_inter_num_interval": PAYLOAD}, None),
        "scenario.item_inter_num_interval": ({"path": str(_dataset(tmp_path / "i")), "item_inter_num_interval": PAYLOAD}, None),
        "train.valid_metric": ({"path": str(_dataset(tmp_path / "v"))}, {"valid_metric": PAYLOAD.replace("'x'", "'NDCG@10'")}),
        "train.metrics": ({"path": str(_dataset(tmp_path / "m"))}, {"metrics": ["Hit", PAYLOAD]}),
        "train.device": ({"path": str(_dataset(tmp_path / "d"))}, {"device": PAYLOAD}),
    }


KEYS = [
    "scenario.dataset",
    "scenario.path",
    "scenario.user_field",
    "scenario.item_field",
    "scenario.time_field",
    "scenario.user_inter_num_interval",
    "scenario.item_inter_num_interval",
    "train.valid_metric",
    "train.metrics",
    "train.device",
]


@pytest.mark.parametrize("key", KEYS)
def test_a_payload_in_any_string_key_is_refused_before_anything_runs(key: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    scenario, train = _cases(tmp_path)[key]
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = CliRunner().invoke(main, ["run", str(_spec(tmp_path, scenario, train)), "-q", "--tracking-uri", store])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and key.split(".")[-1] in lines[0], lines
    assert not (tmp_path / MARKER).exists()
    assert not (tmp_path / "mlflow.db").exists() or not MlflowClient(store).search_runs(
        [experiment.experiment_id for experiment in MlflowClient(store).search_experiments()]
    )


def test_the_planted_datasets_are_valid_so_only_the_grammar_stops_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same specs with harmless values pass validation and pre-flight (so the refusals above are the grammar's)."""
    from suite import spec as specs

    monkeypatch.chdir(tmp_path)
    folder = _dataset(tmp_path / "ok")
    plan = specs.plan(_spec(tmp_path, {"path": str(folder), "user_inter_num_interval": "[5,inf)"}, {"valid_metric": "MRR@10"}))
    assert plan.base.scenario_options.user_inter_num_interval == "[5,inf)"
    assert plan.base.train_options.recbole_metrics() == ["Hit", "NDCG", "MRR"]
