"""Input that used to crash (exit 1) or be accepted: each is one line on stderr, exit 2, and no MLflow store or run.

Alias bombs, symlink loops, unreadable data, tracking URIs that are not MLflow stores, seeds
outside NumPy's range, non-finite floats, and reading commands pointed at a store that does
not exist.
"""

from __future__ import annotations

import functools
import http.server
import os
import resource
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from suite.bounded_yaml import MAX_NODES, safe_load_bounded
from suite.cli import main
from suite.errors import SpecError
from suite.tracking import TrackingError

RUNS = Path(__file__).resolve().parents[1] / "runs"
ROOT_NOTE = "running as root: a chmod 000 folder stays readable to root, so this case cannot be provoked here"


def _one_line_exit_2(result, *fragments: str) -> str:
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, lines
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def _invoke(*arguments: str):
    return CliRunner().invoke(main, list(arguments))


def _bomb(levels: int = 10) -> list[str]:
    """``levels`` anchors, each a list of ten aliases of the one before: 10**levels strings once expanded."""
    nodes = ['&l0 ["x","x","x","x","x","x","x","x","x","x"]']
    nodes += [f"&l{n} [" + ",".join([f"*l{n - 1}"] * 10) + "]" for n in range(1, levels)]
    return nodes


# -- 4. alias bombs -------------------------------------------------------------------------


def test_alias_expansion_is_counted_before_anything_is_built() -> None:
    small = "[" + ", ".join(_bomb(3)) + "]"  # 1 + 10 + 110 + 1110 nodes: a legitimate use of anchors
    assert len(safe_load_bounded(small)[2]) == 10
    with pytest.raises(SpecError, match=f"YAML aliases expand to more than {MAX_NODES:,} values"):
        safe_load_bounded("[" + ", ".join(_bomb(6)) + "]")
    with pytest.raises(SpecError, match="refers to itself"):
        safe_load_bounded("a: &a [1, *a]")


def _limited_memory() -> None:
    """6 GiB of address space: a regression fails with MemoryError in this process, not by exhausting the machine."""
    resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))


@pytest.mark.slow
@pytest.mark.parametrize("where", ["description", "grid"])
def test_an_alias_bomb_is_refused_before_it_expands(tmp_path: Path, where: str) -> None:
    body = "\n".join(line for line in (RUNS / "quickstart.yaml").read_text().splitlines() if not line.startswith(("#", "description")))
    if where == "description":
        text = "description: {" + ", ".join(f"k{i}: {node}" for i, node in enumerate(_bomb())) + "}\n" + body
    else:
        text = body.split("grid:")[0] + "\ngrid:\n  train.lr: [" + ", ".join(_bomb()) + "]\n"
    spec = tmp_path / "bomb.yaml"
    spec.write_text(text)
    result = subprocess.run(
        [sys.executable, "-m", "suite.cli", "run", str(spec), "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"],
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=_limited_memory,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip().splitlines() == [
        f"error: {spec}: YAML aliases expand to more than {MAX_NODES:,} values (an alias bomb?); write the spec out without nested anchors"
    ]
    assert not (tmp_path / "mlflow.db").exists()


# -- 5. data paths the OS refuses -----------------------------------------------------------


def _recbole_run(tmp_path: Path, data_path: Path):
    return _invoke(
        "run",
        str(RUNS / "sasrec-ml100k.yaml"),
        "-o",
        f"scenario.path={data_path}",
        "--tracking-uri",
        f"sqlite:///{tmp_path / 'mlflow.db'}",
    )


def test_a_symlink_loop_as_the_dataset_path(tmp_path: Path) -> None:
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    _one_line_exit_2(_recbole_run(tmp_path, tmp_path / "loop"), f"{tmp_path / 'loop'}: cannot resolve the path")
    assert not (tmp_path / "mlflow.db").exists()


def test_an_unreadable_interaction_file(tmp_path: Path) -> None:
    """A real PermissionError for any user, root included: a write-only kernel file as the ``.inter``."""
    folder = tmp_path / "unreadable"
    folder.mkdir()
    (folder / "unreadable.inter").symlink_to("/proc/sys/vm/drop_caches")  # mode 0200: nobody may read it
    _one_line_exit_2(_recbole_run(tmp_path, folder), "unreadable.inter: cannot read the interaction file (Permission denied)")
    assert not (tmp_path / "mlflow.db").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason=ROOT_NOTE)
def test_an_unreadable_dataset_folder(tmp_path: Path) -> None:
    folder = tmp_path / "locked"
    folder.mkdir()
    (folder / "locked.inter").write_text("user_id:token\titem_id:token\ttimestamp:float\n")
    folder.chmod(0)
    try:
        _one_line_exit_2(_recbole_run(tmp_path, folder), "Permission denied")
    finally:
        folder.chmod(0o755)
    assert not (tmp_path / "mlflow.db").exists()


# -- 5. tracking URIs -----------------------------------------------------------------------


def test_a_tracking_uri_mlflow_cannot_use(toy_distribution, toy_spec: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    _one_line_exit_2(_invoke("run", str(toy_spec), "--tracking-uri", "foo://bar"), "tracking URI foo://bar: MLflow cannot use it")
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "mlartifacts").exists()


def test_a_sqlite_store_in_a_folder_that_does_not_exist(toy_distribution, toy_spec: Path, tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'no' / 'such' / 'x.db'}"
    _one_line_exit_2(_invoke("run", str(toy_spec), "--tracking-uri", uri), f"folder {tmp_path / 'no' / 'such'} does not exist")
    assert not (tmp_path / "no").exists()


@pytest.mark.parametrize("command", [["report", "toy-exp"], ["runs"], ["resume", "0123456789abcdef"]])
def test_reading_commands_never_create_a_store(tmp_path: Path, command: list[str]) -> None:
    db = tmp_path / "missing.db"
    _one_line_exit_2(_invoke(*command, "--tracking-uri", f"sqlite:///{db}"), f"no MLflow store at {db}")
    assert not db.exists()


def test_the_notebook_reader_never_creates_a_store(tmp_path: Path) -> None:
    from suite.results import launch_results

    with pytest.raises(TrackingError, match="no MLflow store at"):
        launch_results("toy-exp", tracking_uri=f"sqlite:///{tmp_path / 'missing.db'}")
    assert not (tmp_path / "missing.db").exists()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def test_an_http_server_that_is_not_mlflow(toy_distribution, toy_spec: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "health").write_text("OK")  # answers the old /health probe like MLflow does
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(tmp_path / "www")))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        uri = f"http://127.0.0.1:{server.server_address[1]}"
        result = _invoke("run", str(toy_spec), "--tracking-uri", uri)
    finally:
        server.shutdown()
    _one_line_exit_2(result, f"tracking server {uri} answers HTTP but not as an MLflow tracking server")
    assert not (tmp_path / "mlflow.db").exists()


@pytest.mark.slow
def test_a_real_mlflow_server_passes_the_probe(tmp_path: Path) -> None:
    """The probe must not refuse the real thing: `mlflow server` on a fresh SQLite store."""
    from suite.tracking import open_store

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                open_store(f"http://127.0.0.1:{port}")
                break
            except TrackingError as error:
                assert "unreachable" in str(error), error  # starting up: not answering yet, never "not MLflow"
                assert time.monotonic() < deadline, "mlflow server did not answer in 120 s"
                time.sleep(1)
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)


# -- 5. values ------------------------------------------------------------------------------


@pytest.mark.parametrize("seeds", ["[99999999999999999999]", "[0, -1]", "4294967296"])
def test_seeds_outside_numpys_range(toy_distribution, toy_spec: Path, tmp_path: Path, seeds: str) -> None:
    result = _invoke("run", str(toy_spec), "-o", f"seeds={seeds}", "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}")
    _one_line_exit_2(result, "seeds: seeds must be integers from 0 to 2**32 - 1")
    assert not (tmp_path / "mlflow.db").exists()


@pytest.mark.parametrize(
    ("spec", "override"),
    [
        ("spoken-replay.yaml", "train.lr=.inf"),
        ("spoken-coconut.yaml", "method.nspt.weight=.nan"),
        ("mclrec-ml100k.yaml", "model.cl2_weight=-.inf"),
        ("sasrec-ml100k.yaml", "train.learning_rate=.nan"),
    ],
)
def test_non_finite_floats_are_refused(tmp_path: Path, spec: str, override: str) -> None:
    result = _invoke("run", str(RUNS / spec), "-o", override, "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}")
    _one_line_exit_2(result, f"override '{override}'", "input should be a finite number")
    assert not (tmp_path / "mlflow.db").exists()
