"""Sweeps on a real multi-node Ray cluster (``ray.cluster_utils.Cluster``: nodes with their own resources on
this machine) logging to a real ``mlflow server`` over HTTP: trials spread over the nodes, a node removed
mid-sweep and its trial continued on another, exactly one FINISHED run per child; fake GPUs: trials wait
for a free one and see the one Ray assigned."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from suite.dashboard import stop_process_group
from suite.ray_launch import import_ray

PAUSE_ENV = "SUITE_TOY_PAUSE_AT_STEP"
RELEASE_ENV = "SUITE_TOY_RELEASE_FILE"
FAST_NODE_DEATH = {"health_check_initial_delay_ms": 1000, "health_check_period_ms": 1000, "health_check_failure_threshold": 3}

pytestmark = [pytest.mark.cluster, pytest.mark.xdist_group("ray")]  # make test runs these alone, after the rest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.5)
    raise AssertionError(f"{what}: not within {timeout:.0f} s")


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[str]:
    """``mlflow server`` on a SQLite file, in its own process group, as a team would run one (HTTP, proxied artifacts)."""
    port = free_port()
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}"]
    command += ["--artifacts-destination", str(tmp_path / "server-artifacts"), "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    env.pop("MLFLOW_TRACKING_URI", None)
    with open(tmp_path / "server.log", "w") as log:  # the child keeps its own copy of the descriptor
        server = subprocess.Popen(command, env=env, cwd=tmp_path, start_new_session=True, stdout=log, stderr=subprocess.STDOUT)
    uri = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        assert server.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2):
                return True
        except OSError:
            return False

    try:
        wait_until(healthy, 120, "mlflow server answering /health")
        yield uri
    finally:
        stop_process_group(server)


@pytest.fixture
def ray_cluster(toy_distribution: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., object]]:
    """A factory of test clusters: a head without CPUs (it only hosts the driver) and the worker nodes asked for.

    Each worker node gets its own loopback address (127.0.0.2, 127.0.0.3, ...), as separate machines would have
    their own. A driver connects to a raylet at its own IP address; had the workers shared the head's, Ray
    could pick a worker's raylet for the driver (it did: the first one registered), and removing that node
    would kill the driver with it, not just the trial the test means to lose.
    The nodes' worker processes inherit this environment: the toy plugin on PYTHONPATH, and whatever the test set.
    """
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(toy_distribution), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    import_ray()
    from ray.cluster_utils import Cluster

    made = []

    def make(*nodes: dict) -> tuple[Cluster, list]:
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "_system_config": FAST_NODE_DEATH})
        made.append(cluster)
        added = [cluster.add_node(node_ip_address=f"127.0.0.{index + 2}", **node) for index, node in enumerate(nodes)]
        cluster.wait_for_nodes()
        return cluster, added

    yield make
    for cluster in made:
        cluster.shutdown()


def node_id(cluster, resource: str) -> str:
    """The Ray node id (what a task reads from its runtime context) of the node holding a custom resource."""
    (entry,) = [entry for entry in cluster.global_state.node_table() if resource in entry["Resources"]]
    return entry["NodeID"]


def sweep(spec: Path, uri: str, address: str, *args: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "suite.cli", "sweep", str(spec), "-q", "--address", address, "--tracking-uri", uri, *args]
    return subprocess.Popen(command, env=dict(os.environ), cwd=spec.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def child_runs(client: MlflowClient, experiment: str) -> list:
    found = client.get_experiment_by_name(experiment)
    return client.search_runs([found.experiment_id], "tags.`suite.kind` = 'child'") if found else []


@pytest.mark.slow
def test_a_sweep_spreads_over_the_nodes_and_survives_losing_one(ray_cluster, mlflow_server, toy_spec, tmp_path, monkeypatch) -> None:
    """Four trials on two one-CPU nodes: the first two run one per node and wait at step 2; node A is removed
    under its trial, Ray retries the task on node B, which continues the same run from its step-2 checkpoint."""
    release = tmp_path / "release"
    monkeypatch.setenv(PAUSE_ENV, "2")
    monkeypatch.setenv(RELEASE_ENV, str(release))
    cluster, (node_a, _) = ray_cluster({"num_cpus": 1, "resources": {"node_a": 1}}, {"num_cpus": 1, "resources": {"node_b": 1}})
    nodes = {"node_a": node_id(cluster, "node_a"), "node_b": node_id(cluster, "node_b")}
    client = MlflowClient(mlflow_server)
    steps = 6
    grid = ["-o", "seeds=[0,1]", "-o", f"method.steps={steps}", "-g", "train.lr=[0.01,0.02]"]
    driver = sweep(toy_spec, mlflow_server, cluster.address, *grid)
    try:

        def both_paused() -> list:
            running = [run for run in child_runs(client, "toy-exp") if run.info.status == "RUNNING"]
            paused = [run for run in running if [m.step for m in client.get_metric_history(run.info.run_id, "loss")] == [0, 1, 2]]
            assert driver.poll() is None, driver.communicate()[1][-3000:]
            return paused if len(paused) == 2 else []

        first = wait_until(both_paused, 240, "two trials paused at step 2")
        assert {run.data.tags["suite.ray_node"] for run in first} == {nodes["node_a"], nodes["node_b"]}  # one per node
        (victim,) = [run for run in first if run.data.tags["suite.ray_node"] == nodes["node_a"]]
        cluster.remove_node(node_a)
        release.touch()
        _, stderr = driver.communicate(timeout=600)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 0, stderr[-3000:]

    runs = child_runs(client, "toy-exp")
    keys = sorted((run.data.tags["suite.point"], run.data.tags["suite.seed"]) for run in runs)
    assert keys == sorted({(f"train.lr={lr}", seed) for lr in ("0.01", "0.02") for seed in ("0", "1")})  # no duplicate run
    assert all(run.info.status == "FINISHED" for run in runs)
    retried = client.get_run(victim.info.run_id)
    assert retried.data.tags["suite.ray_nodes"] == f"{nodes['node_a']},{nodes['node_b']}"
    assert retried.data.tags["suite.ray_node"] == nodes["node_b"] and retried.data.tags["suite.ray_attempts"] == "2"
    assert [m.step for m in client.get_metric_history(victim.info.run_id, "loss")] == list(range(steps))  # continued, not restarted
    others = [run for run in runs if run.info.run_id != victim.info.run_id]
    assert all(run.data.tags["suite.ray_nodes"] == run.data.tags["suite.ray_node"] for run in others)  # one attempt each
    assert {run.data.tags["suite.ray_node"] for run in others} == {nodes["node_b"]}  # node A was gone
    parents = client.search_runs([runs[0].info.experiment_id], "tags.`suite.kind` = 'parent'")
    assert [parent.info.status for parent in parents] == ["FINISHED"]


@pytest.mark.slow
def test_trials_wait_for_a_free_gpu_and_see_the_one_ray_assigned(ray_cluster, mlflow_server, toy_spec) -> None:
    """Three trials of one GPU each on a node with two (fake) GPUs: never more than two at once, the third
    waits for a free one, and each trial's CUDA_VISIBLE_DEVICES is the GPU Ray assigned it."""
    cluster, _ = ray_cluster({"num_cpus": 3, "num_gpus": 2, "resources": {"node_gpu": 1}})
    client = MlflowClient(mlflow_server)
    driver = sweep(toy_spec, mlflow_server, cluster.address, "-o", "seeds=[0,1,2]", "-o", "method.steps=6", "--gpus-per-trial", "1")
    _, stderr = driver.communicate(timeout=600)
    assert driver.returncode == 0, stderr[-3000:]
    runs = sorted(child_runs(client, "toy-exp"), key=lambda run: run.info.start_time)
    assert len(runs) == 3 and all(run.info.status == "FINISHED" for run in runs)
    for run in runs:
        assert run.data.tags["suite.ray_gpus"] in ("0", "1")
        assert run.data.tags["toy.cuda_visible"] == run.data.tags["suite.ray_gpus"]  # what `cuda` means inside the trial
    spans = [(run.info.start_time, run.info.end_time, run.data.tags["suite.ray_gpus"]) for run in runs]
    for start, _, _ in spans:
        at_once = [other for other in spans if other[0] <= start < other[1]]
        assert len(at_once) <= 2 and len({other[2] for other in at_once}) == len(at_once)  # two GPUs, never shared
    assert spans[2][0] >= min(spans[0][1], spans[1][1])  # the third started once a GPU was free
