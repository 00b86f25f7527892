"""Run specs: YAML files validated into typed objects, with dotted overrides from the CLI.

A spec is the single source of truth for an experiment. The top level is fixed
(``RunSpec``); the ``scenario``, ``model``, ``method`` and ``train`` sections are validated
by the options classes of the registry entries they name, so a typo anywhere is caught
before any run starts, with the file, the key and a did-you-mean in one line. Planning also
runs every entry's pre-flight check on every grid point: a launch that passes ``plan`` has
no input error left to find once its MLflow runs exist.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml
from mlflow.utils.validation import MAX_EXPERIMENT_NAME_LENGTH
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from suite import registry
from suite.bounded_yaml import safe_load_bounded
from suite.errors import DataError, SpecError, SuiteError
from suite.grid import grid_points, select_points
from suite.overrides import Override, apply_overrides, reject_unparsed, retype_overrides
from suite.spec_messages import describe_problem, first_line

SECTIONS = ("scenario", "model", "method")
SEED_LIMIT = 2**32  # NumPy's seeds are 0 <= seed < 2**32; torch and Python take these too


class EntrySection(BaseModel):
    """A section that names a registry entry; its other keys are that entry's options."""

    model_config = ConfigDict(extra="allow")
    name: str


class ReportOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    metrics: list[str] | None = None
    """The table's metric columns, in this order."""
    baseline: str | None = None
    """The grid point label that paired comparisons are made against."""


class RunSpec(BaseModel):
    """The fixed top level of a spec."""

    model_config = ConfigDict(extra="forbid")
    description: str = ""
    experiment: str | None = Field(None, min_length=1, max_length=MAX_EXPERIMENT_NAME_LENGTH)  # MLflow's own limit
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    scenario: EntrySection
    model: EntrySection
    method: EntrySection
    train: dict[str, Any] = Field(default_factory=dict)
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    report: ReportOptions = Field(default_factory=ReportOptions)

    @field_validator("seeds", mode="before")
    @classmethod
    def _one_seed_is_a_list(cls, seeds: Any) -> Any:
        return [seeds] if isinstance(seeds, int) and not isinstance(seeds, bool) else seeds

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, seeds: list[int]) -> list[int]:
        if any(not 0 <= seed < SEED_LIMIT for seed in seeds):
            raise ValueError("seeds must be integers from 0 to 2**32 - 1 (the range numpy seeds take)")
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds must be distinct, got {seeds}")
        return seeds

    @field_validator("grid")
    @classmethod
    def _non_empty_axes(cls, grid: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for path, values in grid.items():
            if not values:
                raise ValueError(f"grid axis '{path}' has no values")
        return grid


@dataclass
class ResolvedSpec:
    """A validated spec: the registry entries it names and their typed options."""

    source: str
    experiment: str
    description: str
    seeds: list[int]
    scenario: Any
    scenario_options: Any
    model: Any
    model_options: Any
    method: Any
    method_options: Any
    train_options: Any
    report_metrics: list[str] | None
    report_baseline: str | None = None
    tree: dict[str, Any] = field(default_factory=dict)

    @property
    def family(self) -> str:
        return self.method.family

    @property
    def name(self) -> str:
        """What a point without grid values is called: the model for trainers that serve many models, else the method."""
        return self.model.name if self.method.names_runs_after_model else self.method.name

    def to_dict(self) -> dict[str, Any]:
        """The fully resolved spec, every default filled in; loading it gives this spec back."""
        return copy.deepcopy(self.tree)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


@dataclass
class LaunchPlan:
    """Everything a launch will run: one resolved spec per grid point."""

    source: str
    base: ResolvedSpec
    points: list[tuple[str, ResolvedSpec]]

    @property
    def experiment(self) -> str:
        return self.base.experiment


def load_tree(path: str | Path) -> dict[str, Any]:
    """Read a spec file with a safe loader; a missing, unreadable or non-UTF-8 file or bad YAML is a SpecError."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"{path}: spec file not found")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        line = error.object[: error.start].count(b"\n") + 1
        raise SpecError(f"{path}: not UTF-8 text (byte 0x{error.object[error.start]:02x} on line {line}); save it as UTF-8") from None
    except OSError as error:
        raise SpecError(f"{path}: cannot read the spec file ({error.strerror})") from None
    try:
        tree = safe_load_bounded(text)
    except SpecError as error:
        raise SpecError(f"{path}: {error}") from None
    except yaml.YAMLError as error:
        raise SpecError(f"{path}: invalid YAML: {first_line(error)}") from error
    if not isinstance(tree, dict):
        raise SpecError(f"{path}: expected a mapping of sections (scenario, model, method, ...), got {type(tree).__name__}")
    return tree


def resolve(tree: dict[str, Any], source: str, overrides: Iterable[Override] = ()) -> ResolvedSpec:
    """Validate a spec tree into a ResolvedSpec (top level, then each entry's own options)."""
    overrides = list(overrides)
    tree = apply_overrides(tree, overrides, source)
    settled = retype_overrides(tree, overrides, RunSpec, ())
    reject_unparsed([o for o in overrides if o.path[0] not in (*SECTIONS, "train")], settled, source)
    top = _validate(RunSpec, tree, (), source, overrides)
    entries = {kind: _entry(kind, getattr(top, kind).name, source) for kind in SECTIONS}
    _check_families(entries, source)
    for kind in SECTIONS:
        settled |= retype_overrides(tree, overrides, entries[kind].options, (kind,))
    settled |= retype_overrides(tree, overrides, entries["method"].train_options, ("train",))
    reject_unparsed(overrides, settled, source)
    top = _validate(RunSpec, tree, (), source, overrides)  # again: string options may have taken their typed text
    options = {kind: _validate_section(kind, entries[kind], getattr(top, kind), source, overrides) for kind in SECTIONS}
    train = _validate(entries["method"].train_options, top.train, ("train",), source, overrides)
    return ResolvedSpec(
        source=source,
        experiment=top.experiment or Path(source).stem,
        description=top.description,
        seeds=top.seeds,
        scenario=entries["scenario"],
        scenario_options=options["scenario"],
        model=entries["model"],
        model_options=options["model"],
        method=entries["method"],
        method_options=options["method"],
        train_options=train,
        report_metrics=top.report.metrics,
        report_baseline=top.report.baseline,
        tree=_resolved_tree(top, options, train),
    )


def plan(
    path: str | Path,
    overrides: Iterable[str] = (),
    extra_grid: Iterable[str] = (),
    check_data: bool = True,
    only: Iterable[str] = (),
    skip: Iterable[str] = (),
) -> LaunchPlan:
    """Load, override and validate a spec and every point of its grid; keep the points ``only`` names, less
    those ``skip`` names (labels); with ``check_data``, run every pre-flight check on those kept.

    Everything that can reject the input happens here, before any MLflow run exists. A
    ``report.baseline`` left out by the selection leaves the launch's table without a paired column.
    """
    source = str(path)
    parsed = [Override.parse(text) for text in overrides]
    tree = apply_overrides(load_tree(path), parsed, source)
    grid = dict(tree.get("grid") or {})
    for text in extra_grid:
        axis = Override.parse(text)
        if axis.yaml_error:
            raise SpecError(f"{source}: grid axis '{text}': values are not valid YAML ({axis.yaml_error})")
        values = axis.value if isinstance(axis.value, list) else [axis.value]
        grid[".".join(axis.path)] = values
    tree["grid"] = grid
    base = resolve(tree, source, parsed)
    points = [(label, resolve(tree, source, parsed + _grid_overrides(point))) for label, point in grid_points(grid, source)]
    points = points or [(base.name, base)]
    _check_baseline(base, [label for label, _ in points], source)
    points = select_points(points, list(only), list(skip), source)
    if base.report_baseline is not None and base.report_baseline not in {label for label, _ in points}:
        base = replace(base, report_baseline=None, tree={**base.tree, "report": {**base.tree.get("report", {}), "baseline": None}})
    if check_data:
        built: set[tuple[str, str, int]] = set()
        for label, point in points:
            preflight(point, label if len(points) > 1 else None, built)
    return LaunchPlan(source=source, base=base, points=points)


def preflight(point: ResolvedSpec, label: str | None = None, built: set[tuple[str, str, int]] | None = None) -> None:
    """Run the scenario's and the method's own checks on one point (data on disk, a model the method can train).

    A scenario from another distribution is also built once per distinct options (with the
    point's first seed) and its result checked against its family's contract (``suite.contracts``);
    ``built`` remembers what was already built in this plan.
    """
    checks = [(point.scenario.check, point.scenario_options), (point.method.check, point)]
    key = (point.scenario.name, point.scenario_options.model_dump_json(), point.seeds[0])
    if not registry.is_builtin("scenario", point.scenario.name) and (built is None or key not in built):
        from suite.scenario_build import preflight_build

        checks.append((lambda options: preflight_build(point.scenario, options, point.seeds[0]), point.scenario_options))
        if built is not None:
            built.add(key)
    for check, target in checks:
        if check is None:
            continue
        where = f"{point.source} (grid point {label})" if label else point.source
        try:
            check(target)
        except SuiteError as error:
            raise type(error)(f"{where}: {error}") from None
        except OSError as error:  # the data on disk cannot be read (permissions, I/O): bad input, not a failed run
            raise DataError(f"{where}: {error.filename or 'data'}: cannot be read ({error.strerror or error})") from None


def _check_baseline(base: ResolvedSpec, labels: list[str], source: str) -> None:
    if base.report_baseline is not None and base.report_baseline not in labels:
        raise SpecError(f"{source}: report.baseline '{base.report_baseline}' is not a grid point; points: {', '.join(labels)}")


def _grid_overrides(settings: list[tuple[str, Any]]) -> list[Override]:
    return [Override(text=f"grid {path}", path=tuple(path.split(".")), value=value) for path, value in settings]


def _entry(kind: str, name: str, source: str) -> Any:
    try:
        return registry.get(kind, name)
    except SpecError as error:
        raise SpecError(f"{source}: {kind}.name: {error}") from None


def _check_families(entries: dict[str, Any], source: str) -> None:
    """Scenario and method share a family; the model is of the method's ``model_family`` (by default the same)."""
    method = entries["method"]
    expected = {"scenario": method.family, "model": method.model_family or method.family, "method": method.family}
    if any(entries[kind].family != family for kind, family in expected.items()):
        described = ", ".join(f"{kind} '{entry.name}' is {entry.family}" for kind, entry in entries.items())
        wanted = f"method '{method.name}' takes a {expected['scenario']} scenario and a {expected['model']} model"
        raise SpecError(f"{source}: scenario, model and method must fit together: {described}; {wanted}")


def _validate_section(kind: str, entry: Any, section: EntrySection, source: str, overrides: list[Override]) -> Any:
    values = dict(section.model_extra or {})
    return _validate(entry.options, values, (kind,), source, overrides)


def _validate(options_class: type[BaseModel], values: Any, prefix: tuple[str, ...], source: str, overrides: list[Override]) -> Any:
    try:
        return options_class.model_validate(values or {})
    except ValidationError as error:
        raise SpecError(describe_problem(error, options_class, prefix, source, overrides)) from None


def _resolved_tree(top: RunSpec, options: dict[str, BaseModel], train: BaseModel) -> dict[str, Any]:
    tree: dict[str, Any] = {"description": top.description, "experiment": top.experiment, "seeds": list(top.seeds)}
    for kind in SECTIONS:
        tree[kind] = {"name": getattr(top, kind).name, **options[kind].model_dump(mode="json")}
    tree["train"] = train.model_dump(mode="json")
    if top.grid:
        tree["grid"] = top.grid
    report = top.report.model_dump(exclude_none=True)
    if report:
        tree["report"] = report
    return tree
