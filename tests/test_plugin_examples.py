"""The two example plugins of docs/plugins.md, installed as distributions and run end to end through the CLI.

``tests/plugin_examples/speech_folder`` (continual: Speech Commands style folders, returns a
``SpeechCorpus``) and ``tests/plugin_examples/csv_interactions`` (sequential: a
``user,item,timestamp`` CSV, returns an ``InteractionTable``) import nothing of the suite but
``suite.api``; a scenario whose ``build()`` returns the wrong shape is exit 2 before any run.
"""

from __future__ import annotations

import ast
import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

EXAMPLES = Path(__file__).parent / "plugin_examples"
PACKAGES = {
    "speech_folder": "speech-folder = speech_folder:SPEECH_FOLDER",
    "csv_interactions": "csv-interactions = csv_interactions:CSV_INTERACTIONS",
}
WRONG_SHAPES = """
import types
from suite.api import NoOptions, ScenarioEntry

def avalanche_like(options, context):
    return types.SimpleNamespace(train_stream=[], test_stream=[])  # what class_incremental_benchmark gives: streams only

def recbole_settings(options, context):
    return {"dataset": "ml-100k", "USER_ID_FIELD": "user_id"}

STREAMS_ONLY = ScenarioEntry("streams-only", "continual", NoOptions, avalanche_like)
SETTINGS_DICT = ScenarioEntry("settings-dict", "sequential", NoOptions, recbole_settings)
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example packages and a wrong-shape package, each installed as a distribution with its entry points."""
    site = tmp_path_factory.mktemp("examples-site")
    for package, entry_point in PACKAGES.items():
        shutil.copytree(EXAMPLES / package, site / package)
        _dist_info(site, package, f"[suite.scenarios]\n{entry_point}\n")
    (site / "wrong_shapes.py").write_text(WRONG_SHAPES)
    entry_points = "streams-only = wrong_shapes:STREAMS_ONLY\nsettings-dict = wrong_shapes:SETTINGS_DICT\n"
    _dist_info(site, "wrong_shapes", f"[suite.scenarios]\n{entry_points}")
    return site


def _dist_info(site: Path, package: str, entry_points: str) -> None:
    dist_info = site / f"{package}-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package.replace('_', '-')}\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text(entry_points)


@pytest.fixture
def env(site: Path, tracking_uri: str, tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
        "MLFLOW_TRACKING_URI": tracking_uri,
        "SUITE_CACHE": str(tmp_path / "cache"),
    }


def suite_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "suite.cli", *args], env=env, capture_output=True, text=True, timeout=600)


def test_the_examples_import_nothing_of_the_suite_but_its_public_api():
    imported = set()
    for path in EXAMPLES.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
    ours = {name for name in imported if name.split(".")[0] in ("suite", "scenarios", "models")}
    assert ours == {"suite.api"}


@pytest.fixture(scope="module")
def speech_folder(fsc_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny FSC corpus's recordings rearranged as ROOT/<label>/<speaker>_<n>.wav."""
    root = tmp_path_factory.mktemp("speech") / "commands"
    for split in ("train", "valid", "test"):
        with (fsc_root / "data" / f"{split}_data.csv").open() as handle:
            for row in csv.DictReader(handle):
                label = "_".join((row["action"], row["object"], row["location"]))
                folder = root / label
                folder.mkdir(parents=True, exist_ok=True)
                number = len(list(folder.glob(f"{row['speakerId']}_*.wav")))
                shutil.copyfile(fsc_root / row["path"], folder / f"{row['speakerId']}_{number}.wav")
    return root


@pytest.mark.slow
def test_the_speech_folder_plugin_runs_end_to_end(speech_folder: Path, env: dict[str, str], tmp_path: Path, tracking_uri: str):
    spec = tmp_path / "speech.yaml"
    spec.write_text(
        "experiment: speech-folder\nseeds: [0]\n"
        f"scenario: {{name: speech-folder, root: '{speech_folder}', num_experiences: 2, features: {{n_mels: 40}}}}\n"
        "model: {name: slu-seq2seq, preset: tiny}\nmethod: {name: replay, replay: {size: 8, batch_size_mem: 4}}\n"
        "train: {epochs: 1, batch_size: 8, num_threads: 1, checkpoint: false}\n"
    )
    result = suite_cli("run", str(spec), "-q", env=env)
    assert result.returncode == 0, result.stderr
    [child] = _children(tracking_uri, "speech-folder")
    assert child.info.status == "FINISHED"
    assert 0.0 <= child.data.metrics["avg_acc"] <= 100.0
    assert child.data.params["derived.class_order"].count("_") >= 5  # the folder labels, as the classes of the experiences


@pytest.mark.slow
def test_the_csv_plugin_runs_end_to_end(env: dict[str, str], tmp_path: Path, tracking_uri: str):
    table = tmp_path / "clicks.csv"
    rows = [(f"u{user}", f"i{(user * 7 + step * 3) % 40}", 1_600_000_000 + 60 * step) for user in range(30) for step in range(8)]
    table.write_text("user,item,timestamp\n" + "".join(f"{u},{i},{t}\n" for u, i, t in rows))
    spec = tmp_path / "csv.yaml"
    spec.write_text(
        "experiment: csv-plugin\nseeds: [0]\n"
        f"scenario: {{name: csv-interactions, path: '{table}'}}\n"
        "model: {name: sasrec}\nmethod: {name: recbole-trainer}\n"
        "train: {epochs: 1, train_batch_size: 64, eval_batch_size: 64, num_threads: 1}\n"
    )
    result = suite_cli("run", str(spec), "-q", env=env)
    assert result.returncode == 0, result.stderr
    [child] = _children(tracking_uri, "csv-plugin")
    assert child.info.status == "FINISHED"
    assert 0.0 <= child.data.metrics["test.ndcg_at_10"] <= 1.0
    assert child.data.params["recbole.users"] == "30"


@pytest.mark.parametrize(
    ("scenario", "model", "method", "missing"),
    [
        ("streams-only", "slu-seq2seq", "finetune", "missing benchmark, tokenizer, n_mels"),
        ("settings-dict", "sasrec", "recbole-trainer", "missing config_fragment, dataset"),
    ],
)
def test_a_build_of_the_wrong_shape_is_exit_2_before_any_run(env, tmp_path, tracking_uri, scenario, model, method, missing):
    spec = tmp_path / "wrong.yaml"
    spec.write_text(f"experiment: wrong-shape\nscenario: {{name: {scenario}}}\nmodel: {{name: {model}}}\nmethod: {{name: {method}}}\n")
    result = suite_cli("run", str(spec), env=env)
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert f"scenario '{scenario}' build() returned" in line and missing in line
    assert MlflowClient(tracking_uri).search_experiments(filter_string="name = 'wrong-shape'") == []


def _children(tracking_uri: str, experiment: str) -> list:
    client = MlflowClient(tracking_uri)
    [found] = client.search_experiments(filter_string=f"name = '{experiment}'")
    return client.search_runs([found.experiment_id], filter_string="tags.`suite.kind` = 'child'")
