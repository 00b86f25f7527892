"""Issue 11.8: the terminal of a real run holds the suite's own lines only, no warnings and no library chatter.

Each family runs a tiny real launch in a subprocess (as a user types it, progress lines on),
and every line it printed is checked against what the libraries underneath are known to emit:
Python warnings, RecBole's "command line args ... will not be used", MLflow's schema creation.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

# Python's warning lines ("FutureWarning: ...", "warning: ..."), RecBole's argv notice, MLflow's schema lines
NOISE = re.compile(
    r"\w*Warning\b|(?i:\bwarning:)|(?i:deprecat)|will not be used|(?i:creating initial mlflow database)|alembic|Traceback"
    r"|(?:Down|Up)loading artifacts"
)

SPECS = {
    "continual": """
experiment: terminal-continual
scenario: {{name: fsc, root: {fsc_root}, num_experiences: 2, features: {{n_mels: 40}}}}
model: {{name: slu-seq2seq, preset: tiny, conv_channels: 8}}
method: {{name: coconut, replay: {{size: 10, batch_size_mem: 4}}}}
train: {{epochs: 1, batch_size: 8, num_threads: 1}}
""",
    "sequential": """
experiment: terminal-sequential
scenario: {{name: recbole, dataset: ml-100k, max_users: 30}}
model: {{name: sasrec}}
method: {{name: recbole-trainer}}
train: {{epochs: 2, train_batch_size: 128, eval_batch_size: 256, num_threads: 1}}
""",
}


@pytest.mark.slow
@pytest.mark.parametrize("family", sorted(SPECS))
def test_a_run_prints_no_warning_or_library_chatter(family: str, fsc_root: Path, tracking_uri: str, tmp_path: Path) -> None:
    spec = tmp_path / f"{family}.yaml"
    spec.write_text(SPECS[family].format(fsc_root=fsc_root))
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "SUITE_CACHE": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-m", "suite.cli", "run", str(spec)], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    printed = done.stdout.splitlines() + done.stderr.splitlines()
    assert any(line.startswith("| ") for line in printed)  # the results table did print
    assert [line for line in printed if NOISE.search(line)] == []
    assert done.stderr.splitlines()[-1].startswith(f"open the results: suite ui --tracking-uri {tracking_uri}  (table: ")
    if family == "sequential":  # RecBole's quick start counts first, then one line per epoch naming seed and point
        err = done.stderr.splitlines()
        counts = r"sasrec seed=0: ml-100k\S*: 30 users, [\d,]+ items, [\d,]+ interactions \(after RecBole's filters\)"
        assert re.fullmatch(counts, err[1]), err[:3]
        epochs = [line.split()[:4] for line in err if " epoch " in line]
        assert epochs == [["sasrec", "seed=0", "epoch", "0"], ["sasrec", "seed=0", "epoch", "1"]]
