"""A resume checkpoint carries its own checksum: a changed, damaged or NaN-holding one is exit 2 and nothing is resumed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest
import torch
from mlflow.tracking import MlflowClient
from test_sequential_pipeline import SMALL, write_ring_dataset

from suite.checkpoints import CHECKSUM_KEY, first_non_finite, read_checkpoint, state_digest
from suite.errors import DataError


def _state() -> dict:
    return {"format": 1, "model": {"w": torch.arange(6.0).reshape(2, 3), "steps": torch.tensor(3)}, "rng": {"numpy": [1, 2.5, "MT"]}}


def test_the_digest_sees_every_value_and_the_structure() -> None:
    reference = state_digest(_state())
    assert state_digest(_state()) == reference
    changed = _state()
    changed["model"]["w"][1, 2] = 5.000001
    assert state_digest(changed) != reference
    reshaped = _state()
    reshaped["model"]["w"] = reshaped["model"]["w"].reshape(3, 2)  # same bytes, another shape
    assert state_digest(reshaped) != reference
    retyped = _state()
    retyped["rng"]["numpy"][1] = 2  # 2.5 -> 2: another plain value
    assert state_digest(retyped) != reference
    assert first_non_finite(_state()) is None
    large = {"x": torch.full((10,), 3e38)}  # finite values whose float32 sum overflows: still finite
    assert first_non_finite(large) is None
    large["x"][4] = float("-inf")
    assert first_non_finite(large) == "x"


def test_read_checkpoint_refuses_changed_unchecked_unreadable_and_nan(tmp_path: Path) -> None:
    path = tmp_path / "resume.pt"
    torch.save({**_state(), CHECKSUM_KEY: state_digest(_state())}, path)
    assert torch.equal(read_checkpoint(path, "ckpt")["model"]["w"], _state()["model"]["w"])
    tampered = torch.load(path, weights_only=True)
    tampered["model"]["w"][0, 0] = 7.0
    torch.save(tampered, path)
    with pytest.raises(DataError, match="ckpt: does not match the checksum written with it"):
        read_checkpoint(path, "ckpt")
    torch.save(_state(), path)
    with pytest.raises(DataError, match="ckpt: has no checksum"):
        read_checkpoint(path, "ckpt")
    nan = _state()
    nan["model"]["w"][1, 1] = float("nan")
    torch.save({**nan, CHECKSUM_KEY: state_digest(nan)}, path)  # saved as such: the checksum matches, the values are not usable
    with pytest.raises(DataError, match=r"ckpt: model\.w holds NaN or inf values"):
        read_checkpoint(path, "ckpt")
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DataError, match="ckpt: cannot be read"):
        read_checkpoint(path, "ckpt")


def _suite(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "suite.cli", *args], env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_suite_resume_refuses_a_changed_checkpoint_and_leaves_the_run_as_it_was(tmp_path: Path) -> None:
    """Through the CLI: a FAILED run whose resume.pt was changed (finite values) or holds a NaN is exit 2, naming the file."""
    data = write_ring_dataset(tmp_path / "data", users=20)
    spec = tmp_path / "sasrec-tiny.yaml"
    model = ", ".join(f"{key}: {value}" for key, value in SMALL.items())
    spec.write_text(
        f"experiment: ckpt\nseeds: [0]\nscenario: {{name: recbole, path: {data}, max_seq_length: 10}}\n"
        f"model: {{name: sasrec, {model}}}\nmethod: {{name: recbole-trainer}}\n"
        "train: {epochs: 2, train_batch_size: 64, eval_batch_size: 128, topk: [5, 10], num_threads: 1}\n"
    )
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "SUITE_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    assert (launch := _suite("run", str(spec), "-q", env=env)).returncode == 0, launch.stderr[-3000:]
    client = MlflowClient(uri)
    (child,) = client.search_runs([client.get_experiment_by_name("ckpt").experiment_id], "tags.`suite.kind` = 'child'")
    client.set_terminated(child.info.run_id, "FAILED")  # a run that stopped: resumable
    checkpoint = Path(urlparse(child.info.artifact_uri).path) / "checkpoints" / "resume.pt"
    intact = checkpoint.read_bytes()

    state = torch.load(checkpoint, weights_only=True)
    weights = next(key for key, value in state["model"].items() if value.is_floating_point())
    state["model"][weights] = state["model"][weights] * 1.01  # finite, plausible, not the trained values
    torch.save(state, checkpoint)
    refused = _suite("resume", child.info.run_id, "-q", env=env)
    assert refused.returncode == 2, refused.stderr[-3000:]
    assert refused.stderr.strip().splitlines() == [
        f"error: resume checkpoint {child.info.artifact_uri}/checkpoints/resume.pt: does not match the checksum written with it "
        "(changed or damaged since); nothing was resumed"
    ]

    state = torch.load(checkpoint, weights_only=True)
    del state[CHECKSUM_KEY]
    state["model"][weights][0] = float("nan")
    torch.save({**state, CHECKSUM_KEY: state_digest(state)}, checkpoint)
    refused = _suite("resume", child.info.run_id, "-q", env=env)
    assert refused.returncode == 2 and f"resume.pt: model.{weights} holds NaN or inf values" in refused.stderr, refused.stderr[-3000:]

    after = client.get_run(child.info.run_id)
    assert after.info.status == "FAILED" and "suite.resumed" not in after.data.tags  # the run was never reopened
    checkpoint.write_bytes(intact)
    resumed = _suite("resume", child.info.run_id, "-q", env=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert client.get_run(child.info.run_id).data.tags["suite.resumed"] == "1"
