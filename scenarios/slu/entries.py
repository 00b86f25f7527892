"""The three SLU scenario plugins: ``spoken-commands`` (embedded), ``fsc`` and ``slurp``.

Each turns its corpus into an :class:`~scenarios.slu.streams.SLUBenchmark`: cached log-mel
features, a tokenizer built from the training transcripts, and class-incremental Avalanche
streams whose class order comes from the spec or from the run seed.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from scenarios.slu.options import FSCOptions, SLUOptions, SLURPOptions, SpokenCommandsOptions
from suite.api import BuildContext, FeatureOptions, ScenarioEntry
from suite.paths import cache_root

if TYPE_CHECKING:
    from scenarios.slu.corpus import Corpus
    from scenarios.slu.corpus_spec import CorpusSpec
    from scenarios.slu.streams import SLUBenchmark

__all__ = ["FSC", "SLURP", "SPOKEN_COMMANDS", "FSCOptions", "FeatureOptions", "SLUOptions", "SLURPOptions", "SpokenCommandsOptions"]


def resolve_cache(options: SLUOptions, ctx: BuildContext) -> Path:
    """The spec's cache_dir if set, else the launcher's (``$SUITE_CACHE`` or ``~/.cache/suite``)."""
    return cache_root(options.cache_dir) if options.cache_dir else Path(ctx.cache_dir)


def build_benchmark(corpus: Corpus, options: SLUOptions, ctx: BuildContext, corpus_dir: Path | None = None) -> SLUBenchmark:
    """Corpus -> checked class order and split -> cached features -> tokenizer -> streams."""
    from scenarios.slu.features import load_or_compute
    from scenarios.slu.protocol import resolve_class_order, split_sizes
    from scenarios.slu.streams import SLUBenchmark, build_streams, collate
    from scenarios.slu.tokenizer import Tokenizer

    check_corpus(corpus, options)
    classes = corpus.classes()
    order = resolve_class_order(classes, options.class_order, ctx.seed)
    sizes = split_sizes(len(classes), options.experiences, options.classes_per_exp)
    features = load_or_compute(corpus, options.features, resolve_cache(options, ctx), options.skip_bad_audio, ctx.quiet)
    train = [corpus.splits["train"][int(k)] for k in features.splits["train"].kept]
    tokenizer = Tokenizer.build(classes, [u.transcript for u in train])
    benchmark, train_size = build_streams(corpus, features, classes, order, sizes, tokenizer)
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
        skipped_files=sorted(features.skipped),
        skipped_reasons=dict(sorted(features.skipped.items())),
    )


def corpus_spec(options: SpokenCommandsOptions) -> CorpusSpec:
    """The synthesis recipe named by the options (everything that decides the corpus's bytes)."""
    from scenarios.slu.corpus_spec import CorpusSpec

    return CorpusSpec(
        seed=options.corpus_seed,
        speakers=options.speakers,
        valid_speakers=options.valid_speakers,
        test_speakers=options.test_speakers,
        phrasings_per_intent=options.phrasings_per_intent,
        intents=options.intents,
    )


def build_spoken_commands(options: SpokenCommandsOptions, ctx: BuildContext) -> SLUBenchmark:
    """Synthesize the corpus on first use (reused while its manifest holds), then read it as FSC."""
    from scenarios.slu.fsc import load_fsc
    from scenarios.slu.spoken_commands import ensure_corpus

    directory, manifest = ensure_corpus(resolve_cache(options, ctx), corpus_spec(options), workers=options.synth_workers, quiet=ctx.quiet)
    corpus = load_fsc(directory, checksum=manifest["checksum"], name="spoken-commands")
    return build_benchmark(corpus, options, ctx, corpus_dir=directory)


def build_fsc(options: FSCOptions, ctx: BuildContext) -> SLUBenchmark:
    """FSC-3/6/10: ``num_experiences`` 3, 6 or 10 (31 intents; the remainder goes to the first experience)."""
    from scenarios.slu.fsc import load_fsc

    return build_benchmark(load_fsc(options.root), options, ctx)


def build_slurp(options: SLURPOptions, ctx: BuildContext) -> SLUBenchmark:
    """SLURP-3/6: scenarios (or intents, ``label: intent``) split into ``num_experiences``."""
    return build_benchmark(_load_slurp(options), options, ctx)


def _load_slurp(options: SLURPOptions) -> Corpus:
    from scenarios.slu.slurp import load_slurp

    return load_slurp(options.root, label=options.label, use_synthetic=options.use_synthetic, audio_dir=options.audio_dir)


# ------------------------------------------------------------------ pre-flight checks
# They run while the launch is planned, before any MLflow run exists, and read only metadata:
# the CSV/jsonl files are parsed and every audio file is stat'ed, no audio is decoded.


def check_corpus(corpus: Corpus, options: SLUOptions) -> None:
    """Audio files present (unless they may be skipped), classes consistent across splits, protocol fits."""
    from scenarios.slu.corpus import require_audio
    from scenarios.slu.protocol import check_protocol

    if not options.skip_bad_audio:
        require_audio(corpus)
    check_protocol(corpus.classes(), options)


def check_spoken_commands(options: SpokenCommandsOptions) -> None:
    """Pre-flight without the corpus (it may not be synthesized yet): the grammar gives the classes."""
    from scenarios.slu import grammar
    from scenarios.slu.protocol import check_protocol

    corpus_spec(options).check()
    check_protocol([intent.label for intent in grammar.intents(options.intents)], options)


def check_fsc(options: FSCOptions) -> None:
    """Pre-flight: layout, CSVs, audio files present, classes and experiences (no audio decoded)."""
    from scenarios.slu.fsc import load_fsc

    check_corpus(load_fsc(options.root), options)


def check_slurp(options: SLURPOptions) -> None:
    """Pre-flight: either layout, jsonl files, audio files present, classes and experiences (no audio decoded)."""
    check_corpus(_load_slurp(options), options)


SPOKEN_COMMANDS = ScenarioEntry(
    name="spoken-commands",
    family="continual",
    options=SpokenCommandsOptions,
    build=build_spoken_commands,
    check=check_spoken_commands,
    description="Embedded smart-home commands synthesized with eSpeak NG (32 intents; 12 speakers by default, up to 40), class-incremental",
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
    description="SLURP (18 scenarios) from a clone of its repository or a flat copy; SLURP-3/6 via num_experiences",
)
