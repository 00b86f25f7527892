"""What a continual run shows in MLflow and on the terminal, through the real MLflow client.

Loss curves per epoch at a global epoch step, accuracies per experience at integer steps, the
dataset as an MLflow input, the matrix heatmap titled, the tuning split (valid.* metrics, the
test stream never read), a method added from outside by one file and one entry point, a NaN
loss failing the run, skipped audio reported, and no warning lines on stderr.
"""

from __future__ import annotations

import math
import shutil
import sys
from dataclasses import replace
from pathlib import Path

import mlflow
import pytest
import torch
from avalanche.training.plugins import SupervisedPlugin
from click.testing import CliRunner
from continual_runs import Store, history, install_toy_method, run

from suite import registry
from suite.api import NoOptions, ScenarioEntry
from suite.cli import main
from suite.continual.entries import continual_method
from suite.continual.finetune import FinetuneOptions
from suite.continual.mlflow_logger import heatmap
from suite.continual.strategy import NonFiniteLossError, Seq2SeqTemplate
from suite.continual.synthetic import build_synthetic_slu
from suite.devices import check_device
from suite.errors import SpecError

torch.set_num_threads(1)
CONTINUAL = ["finetune", "joint", "replay", "ewc", "lwf", "akd", "skd", "coconut"]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Store:
    return Store.create(tmp_path_factory.mktemp("logging"))


@pytest.fixture
def toy_method(tmp_path):
    site = install_toy_method(tmp_path)
    sys.path.insert(0, str(site))
    registry.clear_cache()
    yield site
    sys.path.remove(str(site))
    sys.modules.pop("toy_lr_decay", None)
    registry.clear_cache()


@pytest.mark.slow
def test_loss_terms_per_epoch_and_accuracies_per_experience_at_integer_steps(store):
    summary, run_id = run(store, "coconut")
    steps = {key: [step for step, _ in history(store, run_id, key)] for key in ("train.loss", "train.loss.seq2seq", "train.loss.mm")}
    assert steps == {key: [0, 1, 2, 3, 4, 5] for key in steps}  # 2 epochs x 3 experiences, one global epoch count
    assert [step for step, _ in history(store, run_id, "train.loss.nspt")] == [2, 3, 4, 5]  # NSPT waits for a teacher
    clipped = history(store, run_id, "train.clip_fraction")
    assert len(clipped) == 6 and all(0.0 <= value <= 1.0 for _, value in clipped)
    assert all(value > 0 for _, value in history(store, run_id, "train.grad_norm"))
    for j in range(3):  # accuracy on experience j from the row after experience j on: steps j..2, integers
        assert [step for step, _ in history(store, run_id, f"acc_exp{j}")] == list(range(j, 3))
    assert [step for step, _ in history(store, run_id, "avg_acc_seen")] == [0, 1, 2]
    run_data = store.client.get_run(run_id)
    dataset = run_data.inputs.dataset_inputs[0].dataset
    assert dataset.name == "synthetic-slu" and dataset.digest == build_synthetic_slu(per_class=(16, 2, 6), seed=0).fingerprint
    assert run_data.data.params["derived.skipped_audio"] == "0"
    assert run_data.data.params["derived.plugins"] == '["Seq2SeqReplayPlugin", "CoconutPlugin"]'
    assert not math.isnan(summary["wer"])


def test_every_continual_method_names_its_curve_metric_and_the_heatmap_its_run():
    assert {name: registry.get("method", name).curve_metric for name in CONTINUAL} == dict.fromkeys(CONTINUAL, "avg_acc_seen")
    figure = heatmap([[90.0, None], [50.0, 70.0]], "coconut seed=3")
    assert figure.axes[0].get_title() == "coconut seed=3"


def test_both_families_take_one_device_grammar_and_check():
    for family_options in (registry.get("method", "replay").train_options, registry.get("method", "recbole-trainer").train_options):
        assert family_options(device="auto").device == "auto"
        with pytest.raises(ValueError, match="expected 'cpu', 'cuda', 'cuda:N' or 'auto'"):
            family_options(device="gpu1")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    with pytest.raises(SpecError, match=rf"train.device: cuda:{count + 6}, but torch sees"):
        check_device(f"cuda:{count + 6}")
    check_device("cpu")
    check_device("auto")


class LockedTestStream:
    """A benchmark whose test stream may not be read (the tuning split must never touch it)."""

    def __init__(self, benchmark):
        self._benchmark = benchmark

    def __getattr__(self, name):
        if name == "test_stream":
            raise AssertionError("the test stream was read during a validation run")
        return getattr(self._benchmark, name)


@pytest.mark.slow
def test_validation_runs_report_valid_metrics_and_never_read_the_test_stream(store):
    def build(options, context):
        scenario = build_synthetic_slu(per_class=(16, 2, 6), seed=context.seed)
        return replace(scenario, benchmark=LockedTestStream(scenario.benchmark))

    locked = ScenarioEntry(name="synthetic-slu", family="continual", options=NoOptions, build=build)
    summary, run_id = run(store, "replay", evaluation="valid", scenario=locked)
    assert {"valid.avg_acc", "valid.last_acc", "valid.forgetting", "valid.bwt", "valid.wer"} <= set(summary)
    assert not {"avg_acc", "last_acc"} & set(summary)
    assert [step for step, _ in history(store, run_id, "valid.avg_acc_seen")] == [0, 1, 2]
    assert history(store, run_id, "avg_acc_seen") == []


@pytest.mark.slow
def test_a_method_added_by_one_file_and_one_entry_point_runs(toy_method, store):
    listing = CliRunner().invoke(main, ["list"])
    assert ["method", "toy-lr-decay", "suite-toy-continual", "0.1.0", "toy_lr_decay:LR_DECAY"] in [
        line.split() for line in listing.output.splitlines()
    ]
    summary, run_id = run(store, "toy-lr-decay", lr=0.004)
    assert [value for _, value in history(store, run_id, "train.lr")] == pytest.approx([0.004, 0.004, 0.002, 0.002, 0.001, 0.001])
    assert [step for step, _ in history(store, run_id, "avg_acc_seen")] == [0, 1, 2]
    assert 0.0 <= summary["avg_acc"] <= 100.0


def test_seq2seq_clipping_bounds_the_seq2seq_gradient_alone():
    """grad_clip_on=seq2seq_loss: clip(grad of the seq2seq loss) + unclipped grad of the other terms."""
    model = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[3.0, -4.0]]))
    strategy = Seq2SeqTemplate(
        model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1), collate_fn=None, pad_id=0, bos_id=1, eos_id=2,
        grad_clip=1.0, grad_clip_on="seq2seq_loss",
    )  # fmt: skip
    seq2seq = (model.weight * torch.tensor([[30.0, 40.0]])).sum()  # gradient (30, 40): norm 50
    strategy.loss, strategy._seq2seq_loss, strategy._aux_loss = seq2seq, seq2seq, None
    strategy.add_loss("aux", model.weight.pow(2).sum())  # gradient 2w = (6, -8), never clipped
    strategy.backward()
    assert torch.allclose(model.weight.grad, torch.tensor([[0.6 + 6.0, 0.8 - 8.0]]), atol=1e-5)
    assert float(strategy.grad_norm) == pytest.approx(50.0)


def fsc_spec(tmp_path: Path, root: Path, **train) -> Path:
    settings = {"epochs": 1, "batch_size": 4, "num_threads": 1, **train}
    spec = tmp_path / "fsc-tiny.yaml"
    spec.write_text(
        "experiment: fsc-tiny\nseeds: [0]\n"
        f"scenario: {{name: fsc, root: {root}, num_experiences: 2, skip_bad_audio: true, features: {{n_mels: 20}}}}\n"
        "model: {name: slu-seq2seq, preset: tiny}\nmethod: {name: finetune}\n"
        f"train: {{{', '.join(f'{key}: {value}' for key, value in settings.items())}}}\n"
    )
    return spec


@pytest.mark.slow
def test_skipped_audio_is_logged_on_the_run_and_stderr_holds_no_warning(fsc_root, tracking_uri, tmp_path):
    root = shutil.copytree(fsc_root, tmp_path / "fsc")
    broken = sorted((root / "wavs" / "speakers").rglob("*.wav"))[0]
    broken.write_bytes(b"not a wav file")
    result = CliRunner().invoke(main, ["run", str(fsc_spec(tmp_path, root, checkpoint="false"))])
    assert result.exit_code == 0, result.output
    assert not [line for line in result.stderr.splitlines() if "warning" in line.lower()], result.stderr
    child = next(r for r in mlflow.search_runs(experiment_names=["fsc-tiny"], output_format="list") if r.data.tags["suite.kind"] == "child")
    assert child.data.params["derived.skipped_audio"] == "1"
    assert str(broken) in child.data.params["derived.skipped_audio_files"]


@pytest.mark.slow
def test_a_nan_loss_fails_the_run_naming_experience_and_batch(fsc_root, tracking_uri, tmp_path):
    result = CliRunner().invoke(main, ["run", str(fsc_spec(tmp_path, fsc_root, lr=1.0e9, grad_clip="null")), "-q"])
    assert result.exit_code == 1
    assert "non-finite training loss at experience 0, epoch 0, batch 1" in result.output
    child = next(r for r in mlflow.search_runs(experiment_names=["fsc-tiny"], output_format="list") if r.data.tags["suite.kind"] == "child")
    assert child.info.status == "FAILED"
    assert "NonFiniteLossError: non-finite training loss at experience 0, epoch 0, batch 1" in child.data.tags["suite.error"]
    assert history(Store(mlflow.get_tracking_uri(), mlflow.MlflowClient(), "", tmp_path), child.info.run_id, "avg_acc_seen") == []


def test_on_an_accelerator_a_nan_loss_is_caught_at_the_end_of_its_epoch_without_per_batch_reads(store):
    """The accelerator path (no per-batch device read) run on the CPU: the epoch ends, then the run fails naming the batch."""
    seen = []

    class Watch(SupervisedPlugin):
        def before_training_exp(self, strategy, **kwargs):
            strategy.check_finite_per_batch = False

        def after_training_iteration(self, strategy, **kwargs):
            seen.append(strategy.clock.train_epoch_iterations)

    entry = continual_method("finetune", FinetuneOptions, lambda options, setup: [Watch()], "watched")
    with pytest.raises(NonFiniteLossError, match="non-finite training loss at experience 0, epoch 0, batch 1; stopped"):
        run(store, entry, lr=1.0e9, grad_clip=None, batch_size=4)
    assert seen == list(range(8))  # the whole first epoch ran (8 batches of 4), then the run stopped


def test_a_local_launch_on_a_device_this_machine_lacks_is_exit_2_before_any_run(tmp_path, tracking_uri):
    from click.testing import CliRunner
    from mlflow.tracking import MlflowClient

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    spec = tmp_path / "gpu.yaml"
    spec.write_text(
        "experiment: needs-gpu\nscenario: {name: spoken-commands}\nmodel: {name: slu-seq2seq}\n"
        f"method: {{name: finetune}}\ntrain: {{device: 'cuda:{count + 3}'}}\n"
    )
    result = CliRunner().invoke(main, ["run", str(spec), "-q"])
    assert result.exit_code == 2 and f"train.device: cuda:{count + 3}, but torch sees" in result.output
    assert MlflowClient(tracking_uri).search_experiments(filter_string="name = 'needs-gpu'") == []
