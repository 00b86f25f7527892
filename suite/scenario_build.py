"""Build a run's scenario and hand each family's runner a finished one, whatever contract the plugin chose.

``build_scenario(ctx)`` calls the entry's ``build()``, checks the result against its family's
contract (``suite.contracts``) and turns plain data into a finished scenario: a
``SpeechCorpus`` into the suite's SLU benchmark (features, tokenizer, streams), an
``InteractionTable`` into a RecBole atomic dataset with the leave-one-out protocol.
``preflight_build(point)`` does the same for a scenario from another distribution while the
launch is planned, stopping short of the expensive part (features), so a plugin that returns
the wrong shape or unusable data is exit 2 before any MLflow run exists.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from suite.api import BuildContext, RunContext, ScenarioEntry
from suite.contracts import InteractionTable, SpeechCorpus, check_built
from suite.paths import cache_root
from suite.seeding import seed_everything


def build_scenario(ctx: RunContext) -> Any:
    """The run's scenario, checked and finished (a ``ContinualScenario`` or a ``SequentialScenario``)."""
    built = ctx.build_scenario()
    return finish(ctx.scenario_entry, built, ctx.scenario_options, ctx.build_context)


def finish(entry: ScenarioEntry, built: Any, options: Any, ctx: BuildContext) -> Any:
    """Check ``built`` against the family's contracts; make the finished scenario out of plain data."""
    check_built(entry.name, entry.family, built, options)
    if isinstance(built, SpeechCorpus):
        from scenarios.slu.entries import build_benchmark, resolve_cache
        from scenarios.slu.speech_corpus import corpus_from_speech

        return build_benchmark(corpus_from_speech(built, resolve_cache(options, ctx)), options, ctx)
    if isinstance(built, InteractionTable):
        from scenarios.recsys.table import scenario_from_table

        return scenario_from_table(built, options, ctx)
    return built


def preflight_build(entry: ScenarioEntry, options: Any, seed: int) -> None:
    """Build a third-party scenario once (the point's first seed) and check what it returns, before any run exists.

    A ``SpeechCorpus`` is checked as far as the data goes without decoding audio (files present,
    classes fit the experiences); an ``InteractionTable`` is written and filtered as the run will.
    """
    with tempfile.TemporaryDirectory(prefix="suite-preflight-") as run_dir:
        ctx = BuildContext(seed=seed, cache_dir=cache_root(), run_dir=Path(run_dir), quiet=True)
        seed_everything(seed)
        built = entry.build(options, ctx)
        check_built(entry.name, entry.family, built, options)
        if isinstance(built, SpeechCorpus):
            from scenarios.slu.entries import check_corpus, resolve_cache
            from scenarios.slu.speech_corpus import corpus_from_speech

            check_corpus(corpus_from_speech(built, resolve_cache(options, ctx)), options)
        elif isinstance(built, InteractionTable):
            from scenarios.recsys.table import scenario_from_table

            scenario_from_table(built, options, ctx)
