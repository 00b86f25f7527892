"""The three SLU scenario plugins: ``spoken-commands`` (embedded), ``fsc`` and ``slurp``.

Each turns its corpus into an :class:`~scenarios.slu.streams.SLUBenchmark`: cached log-mel
features, a tokenizer built from the training transcripts, and class-incremental Avalanche
streams whose class order comes from the spec or from the run seed.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from scenarios.slu.options import FeatureOptions, FSCOptions, SLUOptions, SLURPOptions, SpokenCommandsOptions
from suite.api import BuildContext, ScenarioEntry
from suite.paths import cache_root

if TYPE_CHECKING:
    from scenarios.slu.corpus import Corpus
    from scenarios.slu.streams import SLUBenchmark

__all__ = ["FSC", "SLURP", "SPOKEN_COMMANDS", "FSCOptions", "FeatureOptions", "SLUOptions", "SLURPOptions", "SpokenCommandsOptions"]


def resolve_cache(options: SLUOptions, ctx: BuildContext) -> Path:
    """The spec's cache_dir if set, else the launcher's (``$SUITE_CACHE`` or ``~/.cache/suite``)."""
    return cache_root(options.cache_dir) if options.cache_dir else Path(ctx.cache_dir)


def build_benchmark(corpus: Corpus, options: SLUOptions, ctx: BuildContext, corpus_dir: Path | None = None) -> SLUBenchmark:
    """Corpus -> checked class order and split -> cached features -> tokenizer -> streams."""
    from scenarios.slu.features import load_or_compute
    from scenarios.slu.streams import SLUBenchmark, build_streams, collate, resolve_class_order, split_sizes
    from scenarios.slu.tokenizer import Tokenizer

    classes = corpus.classes()
    order = resolve_class_order(classes, options.class_order, ctx.seed)
    sizes = split_sizes(len(classes), options.experiences, options.classes_per_exp)
    features = load_or_compute(corpus, options.features, resolve_cache(options, ctx), options.skip_bad_audio)
    train = [corpus.splits["train"][int(k)] for k in features.splits["train"].kept]
    tokenizer = Tokenizer.build(classes, [u.transcript for u in train])
    benchmark, train_size = build_streams(corpus, features, classes, order, sizes, tokenizer)
    tokenizer_path = tokenizer.save(Path(ctx.run_dir) / "tokenizer.json") if ctx.run_dir else None
    return SLUBenchmark(
        benchmark=benchmark,
        tokenizer=tokenizer,
        classes=classes,
        class_order=order,
        classes_per_exp=sizes,
        n_mels=options.features.n_mels,
        collate_fn=collate,
        train_size=train_size,
        skipped_audio=len(features.skipped),
        corpus_dir=corpus_dir or corpus.root,
        feature_cache_dir=features.cache_dir,
        features_from_cache=features.from_cache,
        tokenizer_path=tokenizer_path,
        skipped_files=sorted(features.skipped),
    )


def build_spoken_commands(options: SpokenCommandsOptions, ctx: BuildContext) -> SLUBenchmark:
    """Synthesize the corpus on first use (reused while its manifest holds), then read it as FSC."""
    from scenarios.slu.fsc import load_fsc
    from scenarios.slu.spoken_commands import CorpusSpec, ensure_corpus

    spec = CorpusSpec(
        seed=options.corpus_seed,
        speakers=options.speakers,
        valid_speakers=options.valid_speakers,
        test_speakers=options.test_speakers,
        phrasings_per_intent=options.phrasings_per_intent,
        intents=options.intents,
    )
    directory, manifest = ensure_corpus(resolve_cache(options, ctx), spec, workers=options.synth_workers)
    corpus = load_fsc(directory, fingerprint=manifest["checksum"], name="spoken-commands")
    return build_benchmark(corpus, options, ctx, corpus_dir=directory)


def build_fsc(options: FSCOptions, ctx: BuildContext) -> SLUBenchmark:
    """FSC-3/6/10: ``num_experiences`` 3, 6 or 10 (31 intents; the remainder goes to the first experience)."""
    from scenarios.slu.fsc import load_fsc

    return build_benchmark(load_fsc(options.root), options, ctx)


def build_slurp(options: SLURPOptions, ctx: BuildContext) -> SLUBenchmark:
    """SLURP-3/6: scenarios (or intents, ``label: intent``) split into ``num_experiences``."""
    from scenarios.slu.slurp import load_slurp

    corpus = load_slurp(options.root, label=options.label, use_synthetic=options.use_synthetic, audio_dir=options.audio_dir)
    return build_benchmark(corpus, options, ctx)


def check_fsc(options: FSCOptions) -> None:
    """Pre-flight: a missing or malformed FSC copy fails before any MLflow run is created."""
    from scenarios.slu.fsc import check_layout

    check_layout(options.root)


def check_slurp(options: SLURPOptions) -> None:
    """Pre-flight: a missing or malformed SLURP copy fails before any MLflow run is created."""
    from scenarios.slu.slurp import check_layout

    root = Path(options.root).expanduser().resolve()
    audio = Path(options.audio_dir).expanduser().resolve() if options.audio_dir else root
    check_layout(root, audio, options.use_synthetic)


SPOKEN_COMMANDS = ScenarioEntry(
    name="spoken-commands",
    family="continual",
    options=SpokenCommandsOptions,
    build=build_spoken_commands,
    description="Embedded smart-home commands synthesized with eSpeak NG (32 intents, 12 speakers), class-incremental",
)
FSC = ScenarioEntry(
    name="fsc",
    family="continual",
    options=FSCOptions,
    build=build_fsc,
    check=check_fsc,
    description="Fluent Speech Commands (31 intents) from a local copy; FSC-3/6/10 via num_experiences",
)
SLURP = ScenarioEntry(
    name="slurp",
    family="continual",
    options=SLURPOptions,
    build=build_slurp,
    check=check_slurp,
    description="SLURP (18 scenarios) from a local copy; SLURP-3/6 via num_experiences",
)
