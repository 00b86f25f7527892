"""setup.cfg states ranges, constraints.txt the lock inside them; tools/compat.py reads both as pip would."""

from __future__ import annotations

import importlib.util
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("compat", ROOT / "tools" / "compat.py")
compat = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(compat)

REQUIREMENTS = [Requirement(line) for line in compat.requirements(ROOT / "setup.cfg")]


def lock() -> dict[str, str]:
    lines = (line.strip() for line in (ROOT / "constraints.txt").read_text().splitlines())
    pins = (line.split("==") for line in lines if line and not line.startswith("#"))
    return {canonicalize_name(name): version for name, version in pins}


@pytest.mark.parametrize("requirement", REQUIREMENTS, ids=str)
def test_every_requirement_is_a_range_with_both_bounds(requirement):
    operators = {spec.operator for spec in requirement.specifier}
    assert operators & {">=", "==", "~="}, f"{requirement}: no lower bound"
    assert operators & {"<", "<=", "==", "~="}, f"{requirement}: no upper bound"


@pytest.mark.parametrize("requirement", REQUIREMENTS, ids=str)
def test_the_lock_lies_inside_each_range(requirement):
    pinned = lock().get(canonicalize_name(requirement.name))
    assert pinned is not None, f"constraints.txt does not pin {requirement.name}"
    assert requirement.specifier.contains(pinned, prereleases=True), (
        f"constraints.txt pins {requirement.name}=={pinned}, outside {requirement}"
    )


def test_lower_bounds_match_packagings_reading_of_setup_cfg():
    expected = []
    for requirement in REQUIREMENTS:
        lowest = next(spec.version for spec in requirement.specifier if spec.operator in (">=", "==", "~="))
        expected.append(f"{canonicalize_name(requirement.name)}=={lowest}")
    assert compat.lower_bound_constraints(ROOT / "setup.cfg") == expected
    assert "torch==2.2.2" in expected and "mlflow==3.11.1" in expected


def test_a_requirement_without_lower_bound_is_refused():
    with pytest.raises(ValueError, match="'numpy<2' has no lower bound"):
        compat.lower_bound("numpy<2")
    assert compat.lower_bound("Avalanche_Lib[extra] >= 0.6.0, <0.7 ; python_version >= '3.11'") == ("avalanche-lib", "0.6.0")


def test_written_metadata_reads_back_as_an_installed_distribution(tmp_path):
    reported = {
        "metadata_version": "2.4",
        "name": "torch",
        "version": "2.15.0",
        "requires_python": ">=3.10",
        "requires_dist": ["filelock", 'triton~=3.9.0; platform_system == "Linux"', 'numpy; extra == "numpy"'],
        "provides_extra": ["numpy"],
        "summary": "not copied",
    }
    compat.write_installed_metadata(tmp_path, reported)
    (dist,) = metadata.distributions(path=[str(tmp_path)])
    assert (dist.metadata["Name"], dist.version, dist.metadata["Requires-Python"]) == ("torch", "2.15.0", ">=3.10")
    assert dist.requires == reported["requires_dist"]
    assert dist.metadata.get_all("Provides-Extra") == ["numpy"]
