"""Every spec shipped in runs/ plans: a spec that an option's rename or a new check breaks fails here, not in a researcher's first run."""

from pathlib import Path

import pytest

from suite import spec

pytest.importorskip("scenarios.slu.entries")
pytest.importorskip("recbole")

SPECS = sorted((Path(__file__).resolve().parents[1] / "runs").glob("*.yaml"))


def test_runs_holds_the_specs_the_readme_cites():
    names = {path.name for path in SPECS}
    assert {"quickstart.yaml", "study-coconut.yaml", "study-coconut-2pct.yaml", "mclrec-ml100k.yaml"} <= names


@pytest.mark.parametrize("path", SPECS, ids=lambda path: path.name)
def test_spec_plans_with_every_seed_and_point(path: Path):
    plan = spec.plan(path, check_data=False)  # the real corpora are not on every machine
    assert plan.points, f"{path.name}: no grid point"
    assert plan.base.seeds, f"{path.name}: no seed"
    assert len({label for label, _ in plan.points}) == len(plan.points), f"{path.name}: two points share a label"
