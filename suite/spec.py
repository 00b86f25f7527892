"""Run specs: YAML files validated into typed objects, with dotted overrides from the CLI.

A spec is the single source of truth for an experiment. The top level is fixed
(``RunSpec``); the ``scenario``, ``model``, ``method`` and ``train`` sections are validated
by the options classes of the plugins they name, so a typo anywhere is caught before any
run starts, with the file, the key and a did-you-mean in one line.
"""

from __future__ import annotations

import copy
import difflib
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from suite import registry
from suite.errors import SpecError, SuiteError

SECTIONS = ("scenario", "model", "method")


class PluginSection(BaseModel):
    """A section that names a plugin; its other keys are that plugin's options."""

    model_config = ConfigDict(extra="allow")
    name: str


class ReportOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    metrics: list[str] | None = None


class RunSpec(BaseModel):
    """The fixed top level of a spec."""

    model_config = ConfigDict(extra="forbid")
    description: str = ""
    experiment: str | None = None
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    scenario: PluginSection
    model: PluginSection
    method: PluginSection
    train: dict[str, Any] = Field(default_factory=dict)
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    report: ReportOptions = Field(default_factory=ReportOptions)

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, seeds: list[int]) -> list[int]:
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
    """A validated spec: the plugins it names and their typed options."""

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
    tree: dict[str, Any] = field(default_factory=dict)

    @property
    def family(self) -> str:
        return self.method.family

    def to_dict(self) -> dict[str, Any]:
        """The fully resolved spec, every default filled in; loading it gives this spec back."""
        return copy.deepcopy(self.tree)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


@dataclass
class Override:
    """One ``-o dotted.path=value`` from the command line."""

    text: str
    path: tuple[str, ...]
    value: Any

    @classmethod
    def parse(cls, text: str) -> Override:
        key, sep, raw = text.partition("=")
        if not sep or not key.strip():
            raise SpecError(f"override '{text}': expected KEY=VALUE, e.g. train.epochs=3")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as error:
            raise SpecError(f"override '{text}': value is not valid YAML ({_first_line(error)})") from error
        path = tuple(part.strip() for part in key.strip().split("."))
        if any(not part for part in path):
            raise SpecError(f"override '{text}': empty component in key '{key}'")
        return cls(text=text, path=path, value=value)


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
    """Read a spec file with a safe loader; missing file or bad YAML is a SpecError."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"{path}: spec file not found")
    try:
        tree = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise SpecError(f"{path}: invalid YAML: {_first_line(error)}") from error
    if not isinstance(tree, dict):
        raise SpecError(f"{path}: expected a mapping of sections (scenario, model, method, ...), got {type(tree).__name__}")
    return tree


def apply_overrides(tree: dict[str, Any], overrides: Iterable[Override], source: str) -> dict[str, Any]:
    """Set each dotted path in a copy of ``tree``; a path through a non-section is an error."""
    tree = copy.deepcopy(tree)
    for override in overrides:
        node = tree
        for depth, part in enumerate(override.path[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                walked = ".".join(override.path[: depth + 1])
                raise SpecError(f"{source}: override '{override.text}': '{walked}' is a value, not a section")
            node = child
        node[override.path[-1]] = override.value
    return tree


def resolve(tree: dict[str, Any], source: str, overrides: Iterable[Override] = ()) -> ResolvedSpec:
    """Validate a spec tree into a ResolvedSpec (top level, then each plugin's own options)."""
    overrides = list(overrides)
    tree = apply_overrides(tree, overrides, source)
    try:
        top = RunSpec.model_validate(tree)
    except ValidationError as error:
        raise SpecError(_describe(error, RunSpec, (), source, overrides)) from None
    plugins = {kind: _plugin(kind, getattr(top, kind).name, source) for kind in SECTIONS}
    _check_families(plugins, source)
    options = {kind: _validate_section(kind, plugins[kind], getattr(top, kind), source, overrides) for kind in SECTIONS}
    train = _validate(plugins["method"].train_options, top.train, ("train",), source, overrides)
    resolved_tree = _resolved_tree(top, options, train)
    return ResolvedSpec(
        source=source,
        experiment=top.experiment or Path(source).stem,
        description=top.description,
        seeds=top.seeds,
        scenario=plugins["scenario"],
        scenario_options=options["scenario"],
        model=plugins["model"],
        model_options=options["model"],
        method=plugins["method"],
        method_options=options["method"],
        train_options=train,
        report_metrics=top.report.metrics,
        tree=resolved_tree,
    )


def plan(path: str | Path, overrides: Iterable[str] = (), extra_grid: Iterable[str] = (), check_data: bool = True) -> LaunchPlan:
    """Load, override and validate a spec and every point of its grid, before anything runs."""
    source = str(path)
    parsed = [Override.parse(text) for text in overrides]
    tree = apply_overrides(load_tree(path), parsed, source)
    grid = dict(tree.get("grid") or {})
    for text in extra_grid:
        axis = Override.parse(text)
        values = axis.value if isinstance(axis.value, list) else [axis.value]
        grid[".".join(axis.path)] = values
    tree["grid"] = grid
    base = resolve(tree, source, parsed)
    points = [(label, resolve(tree, source, parsed + point)) for label, point in grid_points(grid, source)]
    points = points or [(base.method.name, base)]
    for _, point in points:
        if check_data:
            _preflight(point)
    return LaunchPlan(source=source, base=base, points=points)


def _preflight(point: ResolvedSpec) -> None:
    """Let the scenario reject missing data now, before a single run is opened."""
    if point.scenario.check is not None:
        try:
            point.scenario.check(point.scenario_options)
        except SuiteError as error:
            raise type(error)(f"{point.source}: {error}") from None


def grid_points(grid: dict[str, list[Any]], source: str) -> list[tuple[str, list[Override]]]:
    """The cartesian product of the grid axes, each point a label and its overrides."""
    if not grid:
        return []
    axes = list(grid.items())
    points = []
    for values in itertools.product(*(axis_values for _, axis_values in axes)):
        overrides = [Override(text=f"grid {path}", path=tuple(path.split(".")), value=value) for (path, _), value in zip(axes, values)]
        label = " ".join(_point_label(path, value) for (path, _), value in zip(axes, values))
        points.append((label, overrides))
    return points


def _point_label(path: str, value: Any) -> str:
    if isinstance(value, dict) and "name" in value:
        return f"{path}={value['name']}"
    return f"{path}={value}"


def _plugin(kind: str, name: str, source: str) -> Any:
    try:
        return registry.get(kind, name)
    except SpecError as error:
        raise SpecError(f"{source}: {kind}.name: {error}") from None


def _check_families(plugins: dict[str, Any], source: str) -> None:
    families = {kind: plugin.family for kind, plugin in plugins.items()}
    if len(set(families.values())) > 1:
        described = ", ".join(f"{kind} '{plugins[kind].name}' is {family}" for kind, family in families.items())
        raise SpecError(f"{source}: scenario, model and method must belong to one family: {described}")


def _validate_section(kind: str, plugin: Any, section: PluginSection, source: str, overrides: list[Override]) -> Any:
    values = dict(section.model_extra or {})
    return _validate(plugin.options, values, (kind,), source, overrides)


def _validate(options_class: type[BaseModel], values: Any, prefix: tuple[str, ...], source: str, overrides: list[Override]) -> Any:
    try:
        return options_class.model_validate(values or {})
    except ValidationError as error:
        raise SpecError(_describe(error, options_class, prefix, source, overrides)) from None


def _resolved_tree(top: RunSpec, options: dict[str, BaseModel], train: BaseModel) -> dict[str, Any]:
    tree: dict[str, Any] = {"description": top.description, "experiment": top.experiment, "seeds": list(top.seeds)}
    for kind in SECTIONS:
        tree[kind] = {"name": getattr(top, kind).name, **options[kind].model_dump(mode="json")}
    tree["train"] = train.model_dump(mode="json")
    if top.grid:
        tree["grid"] = top.grid
    if top.report.metrics is not None:
        tree["report"] = {"metrics": top.report.metrics}
    return tree


def _describe(error: ValidationError, model: type[BaseModel], prefix: tuple[str, ...], source: str, overrides: list[Override]) -> str:
    """One readable line for the first problem pydantic found."""
    problems = error.errors()
    first = problems[0]
    loc = prefix + tuple(str(part) for part in first["loc"])
    key = ".".join(loc)
    origin = _override_for(loc, overrides)
    where = f"{source}: override '{origin.text}'" if origin else source
    if first["type"] == "extra_forbidden":
        known = _field_names(model, tuple(first["loc"][:-1]))
        message = f"{where}: unknown key '{key}'{_did_you_mean(loc[-1], known)}"
    elif first["type"] == "missing":
        message = f"{where}: missing required key '{key}'"
    else:
        message = f"{where}: {key}: {first['msg'].lower()}, got {first.get('input')!r}"
    if len(problems) > 1:
        message += f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''})"
    return message


def _override_for(loc: tuple[str, ...], overrides: list[Override]) -> Override | None:
    for override in reversed(overrides):
        if tuple(loc[: len(override.path)]) == override.path or override.path[: len(loc)] == loc:
            return override
    return None


def _did_you_mean(word: str, known: list[str]) -> str:
    close = difflib.get_close_matches(word, known, n=1)
    if close:
        return f" (did you mean '{close[0]}'?)"
    return f"; expected one of: {', '.join(known)}" if known else ""


def _field_names(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The field names of the (nested) pydantic model at ``loc``, for suggestions."""
    current: Any = model
    for part in loc:
        fields = getattr(current, "model_fields", None)
        if not fields or part not in fields:
            return []
        current = _model_in(fields[part].annotation)
        if current is None:
            return []
    return list(getattr(current, "model_fields", {}))


def _model_in(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in getattr(annotation, "__args__", ()) or ():
        found = _model_in(argument)
        if found is not None:
            return found
    return None


def _first_line(error: Exception) -> str:
    return " ".join(str(error).split())
