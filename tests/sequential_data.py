"""A tiny synthetic RecBole atomic dataset for the sequential model tests (no shipped data needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

USERS, ITEMS = 40, 30


def write_tiny_dataset(folder: Path) -> Path:
    """40 users walking a 30-item ring with small random strides: learnable, deterministic."""
    rng = np.random.default_rng(12)
    target = folder / "tiny" / "tiny.inter"
    target.parent.mkdir(parents=True)
    lines = ["user_id:token\titem_id:token\ttimestamp:float"]
    for user in range(USERS):
        item = int(rng.integers(0, ITEMS))
        for step in range(int(rng.integers(6, 15))):
            lines.append(f"u{user}\ti{item}\t{1000 * user + step}")
            item = (item + int(rng.integers(1, 4))) % ITEMS
    target.write_text("\n".join(lines) + "\n")
    return target.parent


def recbole_config(model_class: type, data_folder: Path, run_dir: Path, **overrides: Any) -> Any:
    """A RecBole Config for ``model_class`` on the tiny dataset: its defaults files, then ``overrides``."""
    from recbole.config import Config

    config_dict = {
        "data_path": str(data_folder.parent),
        "dataset": data_folder.name,
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "MAX_ITEM_LIST_LENGTH": 10,
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user", "mode": "full"},
        "train_batch_size": 16,
        "eval_batch_size": 64,
        "epochs": 1,
        "gpu_id": "",
        "use_gpu": False,
        "show_progress": False,
        "checkpoint_dir": str(run_dir / "saved"),
        "state": "WARNING",
        "seed": 0,
        **overrides,
    }
    files = model_class.config_files() if hasattr(model_class, "config_files") else None  # RecBole's own models find theirs
    return Config(model=model_class, dataset=data_folder.name, config_file_list=files, config_dict=config_dict)
