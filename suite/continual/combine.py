"""Combine: several continual methods trained together, their plugins sharing one replay buffer.

The COCONUT paper's last claim is that COCONUT combines with decoder-side distillation (SKD).
Rather than one flag per pairing, this method lists the methods it combines, each with its
own options (the keys that method takes, less ``replay``):

    method:
      name: combine
      replay: {size: 0.01, batch_size_mem: 16}     # the one buffer every part rehearses from
      parts:                                       # method name -> its options, in plugin order
        coconut: {nspt: {weight: 0.3}, mm: {weight: 0.3}}
        skd: {skd: {weight: 1.0}}

The strategy gets the shared replay plugin, then each part's own plugins in the order the
parts are listed (each part's factory runs as it would alone; its replay plugin is left out).
Each plugin adds its named loss term through the template's ``add_loss``, so the total is the
seq2seq loss plus the parts' weighted terms (``tests/test_continual_combine.py`` shows it on
one batch). A part is named by the same key in dotted overrides and grid axes:
``-o method.parts.skd.skd.weight=0.5``.

Checked with the spec, before any MLflow run (exit 2): at least two parts; each a continual
method made of plugins (``continual_method``), never ``combine`` itself; no part sets
``replay`` (there is one buffer: ``method.replay``, filled with replay's defaults when a part
rehearses and none is given); no loss term added by two parts (an option section with a
positive ``weight`` in two parts, e.g. COCONUT's own ``skd`` and an ``skd`` part). When the
plugins are built, no two may be of one type.

Resuming: the plugin list is the same in every process that builds it, so the run checkpoint
restores each plugin's state in order, as for any method (``resume.py``).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator

from suite import registry
from suite.api import MethodEntry, Options
from suite.continual.entries import MethodSetup, continual_method, plugin_factory
from suite.continual.replay import ReplayOptions, Seq2SeqReplayPlugin, replay_plugin
from suite.errors import SpecError

NAME = "combine"
MIN_PARTS = 2


class CombineOptions(Options):
    """The methods to train together (name -> that method's options without ``replay``) and their shared buffer."""

    replay: ReplayOptions | None = Field(None, description="the one rehearsal buffer (default, when a part rehearses: replay's defaults)")
    parts: dict[str, dict[str, Any] | None] = Field(description="method name -> its own options (no replay), in plugin order")

    @model_validator(mode="before")
    @classmethod
    def _one_buffer_when_a_part_rehearses(cls, data: Any) -> Any:
        parts = data.get("parts") if isinstance(data, dict) else None
        if isinstance(parts, dict) and data.get("replay") is None and any(_rehearses_by_name(name) for name in parts):
            data = {**data, "replay": {}}
        return data

    @field_validator("parts")
    @classmethod
    def _parts_fit_together(cls, parts: dict[str, dict[str, Any] | None], info: ValidationInfo) -> dict[str, dict[str, Any]]:
        if len(parts) < MIN_PARTS:
            raise ValueError(f"list at least {MIN_PARTS} methods to combine (one method runs as itself); got {list(parts)}")
        replay = info.data.get("replay")
        normalized = {}
        for name, values in parts.items():
            options = part_options(part_entry(name), values, replay)
            normalized[name] = options.model_dump(mode="json", exclude={"replay"})
        _check_loss_terms(normalized)
        return normalized

    @model_validator(mode="after")
    def _buffer_has_a_user(self) -> CombineOptions:
        if self.replay is not None and not any(_rehearses_by_name(name) for name in self.parts):
            raise ValueError(f"replay is set but no part rehearses ({', '.join(self.parts)}): remove method.replay")
        return self


def part_entry(name: str) -> MethodEntry:
    """The registry entry of a part: a continual method made of plugins, not ``combine``."""
    if name == NAME:
        raise ValueError("a combine cannot hold another combine: list its parts here")
    try:
        entry = registry.get("method", name)
    except SpecError as error:
        raise ValueError(f"part '{name}': {error}") from None
    if entry.family != "continual" or plugin_factory(entry) is None:
        raise ValueError(f"part '{name}' is not a continual method made of Avalanche plugins (continual_method), so it cannot combine")
    return entry


def part_options(entry: MethodEntry, values: dict[str, Any] | None, replay: ReplayOptions | None) -> Options:
    """A part's own options validated by its method, the shared buffer in place of its ``replay``."""
    values = dict(values or {})
    if "replay" in values:
        raise ValueError(f"part '{entry.name}' sets its own replay; the parts share one buffer: set method.replay instead")
    if rehearses(entry) and replay is not None:
        values["replay"] = replay.model_dump()
    try:
        return entry.options.model_validate(values)
    except ValidationError as error:
        first = error.errors()[0]
        key = ".".join(str(part) for part in first["loc"])
        raise ValueError(f"part '{entry.name}': {key}: {first['msg']}") from None


def rehearses(entry: MethodEntry) -> bool:
    """Whether a method trains from a replay buffer (its options have a ``replay`` section)."""
    return "replay" in entry.options.model_fields


def combined_parts(options: CombineOptions) -> list[tuple[MethodEntry, Options]]:
    """Each part's entry and its validated options (with the shared buffer), in plugin order."""
    entries = [part_entry(name) for name in options.parts]
    return [(entry, part_options(entry, values, options.replay)) for entry, values in zip(entries, options.parts.values())]


def make_plugins(options: CombineOptions, setup: MethodSetup) -> list[Any]:
    """The shared replay plugin, then every part's plugins as its own factory builds them (their replay left out)."""
    plugins: list[Any] = [replay_plugin(options.replay, setup)] if options.replay is not None else []
    for entry, own_options in combined_parts(options):
        made = plugin_factory(entry)(own_options, setup)
        plugins += [plugin for plugin in made if not isinstance(plugin, Seq2SeqReplayPlugin)]
    twice = [kind for kind, count in Counter(type(plugin).__name__ for plugin in plugins).items() if count > 1]
    if twice:
        raise SpecError(f"method.parts ({', '.join(options.parts)}): two parts add a {twice[0]}; each plugin may come from one part")
    return plugins


def _rehearses_by_name(name: Any) -> bool:
    try:
        return rehearses(registry.get("method", name))
    except (SpecError, TypeError):
        return False  # an unknown part is reported by the parts' validator


def _check_loss_terms(parts: dict[str, dict[str, Any]]) -> None:
    """No loss term from two parts: an option section with a positive ``weight`` names the term a part adds."""
    adders: dict[str, list[str]] = defaultdict(list)
    for name, values in parts.items():
        for section, value in values.items():
            if isinstance(value, dict) and (value.get("weight") or 0) > 0:
                adders[section].append(name)
    for term, names in adders.items():
        if len(names) > 1:
            raise ValueError(f"parts {' and '.join(repr(name) for name in names)} both add the loss term '{term}': keep it in one part")


COMBINE = continual_method(NAME, CombineOptions, make_plugins, "several continual methods trained together, one shared replay buffer")
