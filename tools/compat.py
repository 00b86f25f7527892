"""Check the dependency ranges of setup.cfg against the registry (used by `make compat`).

Two commands, standard library only, so they run with any Python 3.11 before an environment exists:

- ``lower-bounds`` prints one ``name==version`` line per requirement of ``install_requires`` and
  the ``test`` extra, at its lower bound: `make compat` installs with it as a constraints file,
  so the second environment holds the oldest release of every direct dependency the ranges admit.
- ``keeps-newer-torch`` shows that ``pip install -e .`` leaves a newer torch alone. It builds a
  throwaway environment holding the *metadata* of torch 2.15.0 (default), the torchvision and
  torchaudio pip pairs with it and everything they require, exactly as pip's resolver reports them
  (no wheel is downloaded: the registry serves each wheel's metadata on its own), then asks pip
  for a dry run of the editable install and reads its ``--report``. It needs the registry.

  pip's configuration files are ignored for both pip runs (``PIP_CONFIG_FILE`` set to the null
  device, this process only): this machine's /etc/xdg/pip caps torch at 2.14.1, which would
  itself force a downgrade; a researcher's pip has no such cap.
"""

from __future__ import annotations

import argparse
import configparser
import json
import os
import re
import subprocess
import sys
import tempfile
import venv
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TORCH_SET = ("torch", "torchvision", "torchaudio")
_NAME = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(.*)")
_LOWER = re.compile(r"(?:>=|==|~=)\s*([^,;\s]+)")


def requirements(setup_cfg: Path, extras: tuple[str, ...] = ("test",)) -> list[str]:
    """``install_requires`` plus the named extras, as written (comment lines dropped)."""
    config = configparser.ConfigParser()
    config.read(setup_cfg)
    blocks = [config["options"]["install_requires"], *(config["options.extras_require"][extra] for extra in extras)]
    lines = (line.strip() for block in blocks for line in block.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def canonical(name: str) -> str:
    """PEP 503 name: ``Avalanche_Lib`` and ``avalanche-lib`` are one project."""
    return re.sub(r"[-_.]+", "-", name).lower()


def lower_bound(requirement: str) -> tuple[str, str]:
    """(name, oldest admitted version) of one requirement; a requirement without one is an error."""
    match = _NAME.fullmatch(requirement)
    if not match:
        raise ValueError(f"setup.cfg: cannot read requirement {requirement!r}")
    name, specifiers = match.group(1), match.group(3).split(";")[0]
    found = _LOWER.search(specifiers)
    if not found:
        raise ValueError(f"setup.cfg: requirement {requirement!r} has no lower bound (>=, == or ~=)")
    return canonical(name), found.group(1)


def lower_bound_constraints(setup_cfg: Path) -> list[str]:
    """One ``name==version`` pin per requirement, at its lower bound."""
    return [f"{name}=={version}" for name, version in map(lower_bound, requirements(setup_cfg))]


def _pip(python: Path | str, args: list[str]) -> str:
    """Run pip for ``python``'s environment with no configuration file (see the module docstring); its stdout."""
    command = [sys.executable, "-m", "pip", "--python", str(python), "--disable-pip-version-check", *args]
    env = {**os.environ, "PIP_CONFIG_FILE": os.devnull}
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    return done.stdout


def dry_run(python: Path | str, args: list[str], report: Path) -> list[dict]:
    """What ``pip install`` would install into ``python``'s environment: the report's ``install`` items."""
    _pip(python, ["install", "--dry-run", "--quiet", "--report", str(report), *args])
    return json.loads(report.read_text())["install"]


def _metadata_lines(metadata: dict) -> Iterator[str]:
    """Core-metadata headers back from the JSON form pip's report gives (PEP 566)."""
    yield "Metadata-Version: 2.1"
    for key, value in metadata.items():
        header = "-".join(part.capitalize() for part in key.split("_"))
        if key in ("name", "version", "requires_python"):
            yield f"{header}: {value}"
        elif key in ("requires_dist", "provides_extra"):
            yield from (f"{header}: {item}" for item in value)


def write_installed_metadata(site_packages: Path, metadata: dict) -> None:
    """A ``.dist-info`` folder with METADATA only: enough for pip to list the project as installed."""
    folder = site_packages / f"{metadata['name'].replace('-', '_')}-{metadata['version']}.dist-info"
    folder.mkdir(parents=True)
    (folder / "METADATA").write_text("\n".join(_metadata_lines(metadata)) + "\n")
    (folder / "INSTALLER").write_text("cl-suite-compat\n")


def _site_packages(python: Path) -> Path:
    query = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    return Path(subprocess.run([str(python), "-c", query], check=True, capture_output=True, text=True).stdout.strip())


def newer_torch_environment(folder: Path, torch_version: str) -> dict[str, str]:
    """An environment whose installed metadata is torch ``torch_version``'s stack; returns {name: version}."""
    stack = dry_run(sys.executable, ["--ignore-installed", f"torch=={torch_version}", "torchvision", "torchaudio"], folder / "stack.json")
    venv.create(folder / "env", with_pip=False)
    python = folder / "env" / "bin" / "python"
    site_packages = _site_packages(python)
    for item in stack:
        write_installed_metadata(site_packages, item["metadata"])
    return {canonical(item["metadata"]["name"]): item["metadata"]["version"] for item in stack}


def installed(python: Path) -> dict[str, str]:
    """What pip itself lists as installed in ``python``'s environment."""
    return {canonical(item["name"]): item["version"] for item in json.loads(_pip(python, ["list", "--format", "json"]))}


def keeps_newer_torch(project: Path, torch_version: str) -> bool:
    """Dry-run ``pip install -e project`` over a torch ``torch_version`` stack; print and return whether torch stays."""
    with tempfile.TemporaryDirectory(prefix="cl-suite-newer-torch-") as tmp:
        folder = Path(tmp)
        stack = newer_torch_environment(folder, torch_version)
        python = folder / "env" / "bin" / "python"
        listed = installed(python)
        kept_set = ", ".join(f"{name} {listed.get(name, 'missing')}" for name in TORCH_SET)
        print(f"target environment, as pip lists it: {kept_set} (+ {len(listed) - len(TORCH_SET)} packages they require)")
        if listed.get("torch") != torch_version:
            raise RuntimeError(f"pip does not list torch {torch_version} as installed in {folder / 'env'}: the check would prove nothing")
        plan = dry_run(python, ["-e", str(project)], folder / "suite.json")
    would = {canonical(item["metadata"]["name"]): item["metadata"]["version"] for item in plan}
    changed = sorted(name for name in stack if name in would)
    for name in changed:
        print(f"pip would replace {name} {stack[name]} with {would[name]}")
    print(f"pip would add {len(set(would) - set(stack))} packages the suite needs beside them")
    if would.get("torch"):
        print(f"torch {torch_version} replaced by {would['torch']}")
        return False
    print(f"torch {torch_version} kept")
    return not any(name in would for name in TORCH_SET)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    lower = commands.add_parser("lower-bounds", help="print name==version at every requirement's lower bound")
    lower.add_argument("--setup-cfg", type=Path, default=ROOT / "setup.cfg")
    keeps = commands.add_parser("keeps-newer-torch", help="dry-run pip install -e over a newer torch; exit 1 if it is replaced")
    keeps.add_argument("--project", type=Path, default=ROOT, help="the checkout to install (default: this one)")
    keeps.add_argument("--torch", default="2.15.0", help="the newer torch the environment holds")
    args = parser.parse_args(argv)
    if args.command == "lower-bounds":
        print("\n".join(lower_bound_constraints(args.setup_cfg)))
        return 0
    return 0 if keeps_newer_torch(args.project.resolve(), args.torch) else 1


if __name__ == "__main__":
    sys.exit(main())
