"""Class-incremental streams, samples, batches and the feature cache, through the public plugins."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from slu_fixtures import flatten_slurp

from scenarios.slu.audio import read_audio
from scenarios.slu.entries import FSC, SLURP, SPOKEN_COMMANDS
from scenarios.slu.features import ARRAYS, fbank, file_digest
from scenarios.slu.protocol import split_sizes
from scenarios.slu.streams import collate
from scenarios.slu.tokenizer import Tokenizer
from suite import registry
from suite.api import FeatureOptions
from suite.errors import SpecError

STREAMS = ("train_stream", "valid_stream", "test_stream")


def build_fsc(root: Path, context, **options):
    """The FSC plugin on a fixture corpus; 5 experiences (one per class) unless told otherwise."""
    if "classes_per_exp" not in options:
        options.setdefault("num_experiences", 5)
    return FSC.build(FSC.options(root=str(root), **options), context)


def stream_classes(result, stream: str) -> list[set[str]]:
    return [{result.classes[y] for y in exp.dataset.targets.uniques} for exp in getattr(result.benchmark, stream)]


def test_plugins_are_registered_under_their_names() -> None:
    for name, plugin in (("spoken-commands", SPOKEN_COMMANDS), ("fsc", FSC), ("slurp", SLURP)):
        assert plugin.name == name and plugin.family == "continual"
        assert registry.get("scenario", name) is plugin


def test_default_splits_give_the_remainder_to_the_first_experience() -> None:
    assert split_sizes(31, 10) == [4] + [3] * 9
    assert split_sizes(31, 6) == [6, 5, 5, 5, 5, 5]
    assert split_sizes(31, 3) == [11, 10, 10]
    assert split_sizes(18, 6) == [3] * 6
    assert sum(split_sizes(32, 6)) == 32


def test_experiences_hold_the_same_classes_in_every_stream(fsc_root: Path, ctx) -> None:
    result = build_fsc(fsc_root, ctx, num_experiences=2)
    assert result.classes_per_exp == [3, 2]
    expected = [set(group) for group in result.experience_classes]
    for stream in STREAMS:
        assert stream_classes(result, stream) == expected
    assert sorted(result.class_order) == result.classes
    assert result.train_size == 30 and result.skipped_audio == 0
    assert all(exp.task_label == 0 for exp in result.benchmark.train_stream)


def test_uneven_split_loses_no_class(fsc_root: Path, ctx) -> None:
    result = build_fsc(fsc_root, ctx, classes_per_exp=[1, 3, 1])
    assert [len(c) for c in stream_classes(result, "train_stream")] == [1, 3, 1]
    seen = set().union(*stream_classes(result, "train_stream"))
    assert seen == set(result.classes)
    assert sum(len(exp.dataset) for exp in result.benchmark.train_stream) == result.train_size


def test_class_order_from_the_spec_is_followed(fsc_root: Path, ctx) -> None:
    order = sorted(build_fsc(fsc_root, ctx).classes, reverse=True)
    result = build_fsc(fsc_root, ctx, num_experiences=5, class_order=order)
    assert [c.pop() for c in stream_classes(result, "test_stream")] == order


def test_class_order_is_drawn_from_the_run_seed(fsc_root: Path, ctx) -> None:
    first = build_fsc(fsc_root, ctx).class_order
    assert build_fsc(fsc_root, ctx).class_order == first
    others = {tuple(build_fsc(fsc_root, replace(ctx, seed=seed)).class_order) for seed in range(1, 6)}
    assert len(others | {tuple(first)}) > 1


@pytest.mark.parametrize(
    "bad, message",
    [
        (lambda c: c[:-1], "missing"),
        (lambda c: c[:-1] + ["turn_on_nothing_none"], "unknown: turn_on_nothing_none"),
        (lambda c: c[:-1] + c[:1], "repeated"),
    ],
)
def test_class_order_that_is_not_a_permutation_is_refused(fsc_root: Path, ctx, bad, message) -> None:
    classes = build_fsc(fsc_root, ctx).classes
    with pytest.raises(SpecError, match=f"class_order is not a permutation.*{message}"):
        build_fsc(fsc_root, ctx, class_order=bad(classes))


@pytest.mark.parametrize("sizes", [[2, 2], [3, 3], [2, 2, 2]])
def test_split_that_does_not_cover_the_classes_is_refused(fsc_root: Path, ctx, sizes) -> None:
    with pytest.raises(SpecError, match=r"classes_per_exp .* corpus has 5 classes"):
        build_fsc(fsc_root, ctx, classes_per_exp=sizes)


def test_bad_experience_options_are_refused_at_validation() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="num_experiences=3 but classes_per_exp has 2"):
        FSC.options(root="x", num_experiences=3, classes_per_exp=[2, 3])
    with pytest.raises(ValidationError):
        FSC.options(root="x", num_experiences=0)
    with pytest.raises(SpecError, match="num_experiences=6"):
        split_sizes(5, 6)


def test_samples_and_batches_have_the_documented_format(fsc_root: Path, ctx) -> None:
    result = build_fsc(fsc_root, ctx, num_experiences=2)
    dataset = result.benchmark.train_stream[0].dataset
    feats, intent, tokens, task = dataset[0]
    assert feats.dtype == torch.float32 and feats.shape[1] == result.n_mels == 80
    assert isinstance(intent, int) and task == 0 and tokens.dtype == torch.long
    label, transcript = result.tokenizer.decode(tokens)
    assert label == result.classes[intent] and transcript
    assert tokens[0] == result.tokenizer.bos_id and tokens[2] == result.tokenizer.sep_id and tokens[-1] == result.tokenizer.eos_id

    samples = [dataset[i] for i in range(4)]
    x, y, x_lens, toks, t = result.collate_fn(samples)
    assert x.shape == (4, int(x_lens.max()), 80) and y.tolist() == [s[1] for s in samples]
    assert x_lens.tolist() == [s[0].shape[0] for s in samples]
    shortest = int(x_lens.argmin())
    assert torch.all(x[shortest, x_lens[shortest] :] == 0)
    assert toks.shape[1] == max(len(s[2]) for s in samples) and t.tolist() == [0] * 4
    assert (toks == 0).sum() == toks.numel() - sum(len(s[2]) for s in samples)
    assert dataset.collate_fn is collate


def test_concat_and_subset_keep_samples_and_targets(fsc_root: Path, ctx) -> None:
    result = build_fsc(fsc_root, ctx, num_experiences=2)
    first, second = (exp.dataset for exp in result.benchmark.train_stream)
    mixed = first.concat(second).subset([0, len(first), len(first) + len(second) - 1])
    assert list(mixed.targets) == [first.targets[0], second.targets[0], second.targets[len(second) - 1]]
    assert [mixed[i][1] for i in range(3)] == list(mixed.targets)
    assert mixed.collate_fn is collate
    loader = torch.utils.data.DataLoader(mixed, batch_size=3, collate_fn=mixed.collate_fn)
    _x, y, _x_lens, _tokens, t = next(iter(loader))
    assert y.tolist() == list(mixed.targets) and t.tolist() == [0, 0, 0]


def test_avalanche_strategy_with_replay_trains_and_evaluates_on_the_streams(fsc_root: Path, ctx) -> None:
    """Avalanche's own loaders (task-balanced train loader, replay loader, eval loader) batch our samples."""
    from avalanche.training.plugins import ReplayPlugin
    from avalanche.training.supervised import Naive

    class MeanPool(torch.nn.Module):
        def __init__(self, n_mels: int, n_classes: int) -> None:
            super().__init__()
            self.head = torch.nn.Linear(n_mels, n_classes)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(x.mean(dim=1))

    result = build_fsc(fsc_root, ctx, num_experiences=2)
    model = MeanPool(result.n_mels, len(result.classes))
    seen: list[tuple] = []

    class Spy(ReplayPlugin):
        def before_forward(self, strategy, **kwargs):
            seen.append((strategy.mb_x.shape, set(strategy.mb_y.tolist()), strategy.experience.current_experience))

    strategy = Naive(
        model=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        train_mb_size=8,
        train_epochs=1,
        eval_mb_size=8,
        evaluator=None,
        plugins=[Spy(mem_size=6)],
    )
    for experience in result.benchmark.train_stream:
        strategy.train(experience)
    strategy.eval(result.benchmark.test_stream)
    assert all(len(shape) == 3 and shape[2] == result.n_mels for shape, _, _ in seen)
    first_classes = set(result.benchmark.train_stream[0].dataset.targets.uniques)
    replayed = set().union(*(labels for _, labels, exp in seen if exp == 1))
    assert replayed & first_classes  # rehearsal samples from experience 0 reached experience 1's batches


def test_features_are_cached_and_reused(fsc_root: Path, ctx) -> None:
    first = build_fsc(fsc_root, ctx)
    assert not first.features_from_cache and first.feature_cache_dir.is_dir()
    assert str(first.feature_cache_dir).startswith(str(ctx.cache_dir))
    second = build_fsc(fsc_root, ctx, num_experiences=2)
    assert second.features_from_cache and second.feature_cache_dir == first.feature_cache_dir
    other = build_fsc(fsc_root, ctx, features={"n_mels": 40})
    assert not other.features_from_cache and other.n_mels == 40
    assert other.benchmark.train_stream[0].dataset[0][0].shape[1] == 40


def test_features_are_normalized_with_train_statistics(fsc_root: Path, ctx) -> None:
    result = build_fsc(fsc_root, ctx, num_experiences=1)
    train = torch.cat([result.benchmark.train_stream[0].dataset[i][0] for i in range(result.train_size)])
    assert torch.allclose(train.mean(0), torch.zeros(80), atol=1e-3)
    assert torch.allclose(train.std(0), torch.ones(80), atol=1e-2)


def test_two_builds_from_empty_caches_give_identical_arrays(fsc_root: Path, ctx, tmp_path: Path) -> None:
    one = build_fsc(fsc_root, ctx, num_experiences=1)
    two = build_fsc(fsc_root, replace(ctx, cache_dir=tmp_path / "other-cache"), num_experiences=1)
    assert one.feature_cache_dir != two.feature_cache_dir
    for split in ("train", "valid", "test"):
        a = np.load(one.feature_cache_dir / f"{split}.npy")
        b = np.load(two.feature_cache_dir / f"{split}.npy")
        assert a.shape[0] > 0 and np.array_equal(a, b)
    assert one.tokenizer == two.tokenizer


def test_cache_dir_option_overrides_the_context(fsc_root: Path, ctx, tmp_path: Path) -> None:
    result = build_fsc(fsc_root, ctx, cache_dir=str(tmp_path / "spec-cache"))
    assert str(result.feature_cache_dir).startswith(str(tmp_path / "spec-cache"))


def test_raw_filterbank_matches_the_options(fsc_root: Path) -> None:
    wav = next((fsc_root / "wavs").rglob("*.wav"))
    waveform = read_audio(wav)
    feats = fbank(waveform, FeatureOptions(n_mels=64, win_ms=25.0, hop_ms=10.0))
    assert feats.shape == (1 + (len(waveform) - 400) // 160, 64)


def test_the_tokenizer_survives_a_save_and_load(fsc_root: Path, ctx) -> None:
    result = build_fsc(fsc_root, ctx)
    assert Tokenizer.load(result.tokenizer.save(ctx.run_dir / "tokenizer.json")) == result.tokenizer


def test_spoken_commands_plugin_builds_and_reuses_its_corpus(ctx) -> None:
    options = SPOKEN_COMMANDS.options(intents=3, phrasings_per_intent=1, speakers=3, valid_speakers=1, test_speakers=1, num_experiences=2)
    first = SPOKEN_COMMANDS.build(options, ctx)
    assert first.corpus_dir.is_relative_to(ctx.cache_dir) and (first.corpus_dir / "manifest.json").is_file()
    assert first.classes_per_exp == [2, 1] and first.train_size == 3
    second = SPOKEN_COMMANDS.build(options, ctx)
    assert second.features_from_cache and second.corpus_dir == first.corpus_dir


def test_slurp_classes_are_scenarios(slurp_root: Path, ctx) -> None:
    result = SLURP.build(SLURP.options(root=str(slurp_root), num_experiences=2), ctx)
    assert result.classes == ["alarm", "iot", "music", "weather"]
    assert result.classes_per_exp == [2, 2] and result.train_size == 16
    for stream in STREAMS:
        assert stream_classes(result, stream) == [set(g) for g in result.experience_classes]
    _feats, intent, tokens, _ = result.benchmark.test_stream[0].dataset[0]
    assert result.tokenizer.decode(tokens)[0] == result.classes[intent]


def test_slurp_can_label_by_intent(slurp_root: Path, ctx) -> None:
    result = SLURP.build(SLURP.options(root=str(slurp_root), label="intent", num_experiences=1), ctx)
    assert "alarm_set" in result.classes and len(result.classes) == 7


def test_slurp_repository_and_flat_layouts_give_the_same_scenario(slurp_root: Path, tmp_path: Path, ctx) -> None:
    """A clone of the SLURP repository with its audio extracted, and the flat layout, load the same utterances."""
    repository = SLURP.build(SLURP.options(root=str(slurp_root), num_experiences=2), ctx)
    assert any(Path(path).name.startswith("audio--") for path in (slurp_root / "audio" / "slurp_real").iterdir())
    flat_root = flatten_slurp(slurp_root, tmp_path / "flat")
    flat = SLURP.build(SLURP.options(root=str(flat_root), num_experiences=2), ctx)
    assert flat.classes == repository.classes and flat.class_order == repository.class_order
    for stream in STREAMS:
        ours, theirs = getattr(repository.benchmark, stream), getattr(flat.benchmark, stream)
        assert [len(e.dataset) for e in ours] == [len(e.dataset) for e in theirs]
        assert torch.equal(ours[0].dataset[0][0], theirs[0].dataset[0][0])
    elsewhere = tmp_path / "audio-elsewhere"
    shutil.move(flat_root / "slurp_real", elsewhere / "slurp_real")
    moved = SLURP.build(SLURP.options(root=str(flat_root), audio_dir=str(elsewhere), num_experiences=2), ctx)
    assert moved.train_size == repository.train_size == 16


def test_slurp_synthetic_recordings_join_training_on_request(slurp_root: Path, ctx) -> None:
    real = SLURP.build(SLURP.options(root=str(slurp_root), num_experiences=1), ctx)
    both = SLURP.build(SLURP.options(root=str(slurp_root), num_experiences=1, use_synthetic=True), ctx)
    assert both.train_size == real.train_size + 4
    assert [len(e.dataset) for e in both.benchmark.test_stream] == [len(e.dataset) for e in real.benchmark.test_stream]


@pytest.mark.parametrize("keep_header", [True, False], ids=["data-overwritten", "whole-file-overwritten"])
def test_corrupt_feature_cache_is_detected_and_rebuilt(fsc_root: Path, ctx, capsys, keep_header: bool) -> None:
    """Same-size random bytes in a cached array: the next build notices, rebuilds, and gets the first build's arrays."""
    first = build_fsc(fsc_root, ctx, num_experiences=1)
    originals = {name: np.load(first.feature_cache_dir / name) for name in ARRAYS}
    target = first.feature_cache_dir / "train.npy"
    size = target.stat().st_size
    header = len(target.read_bytes()) - originals["train.npy"].nbytes if keep_header else 0
    with open(target, "r+b") as handle:
        handle.seek(header)
        handle.write(np.random.default_rng(0).bytes(size - header))
    assert target.stat().st_size == size
    if keep_header:  # still a loadable array of the same shape: only the checksum can tell
        assert np.load(target).shape == originals["train.npy"].shape
    capsys.readouterr()
    second = build_fsc(fsc_root, ctx, num_experiences=1)
    assert "train.npy does not match the checksum recorded when it was written; rebuilding the features" in capsys.readouterr().err
    assert not second.features_from_cache and second.feature_cache_dir == first.feature_cache_dir
    for name, array in originals.items():
        assert np.array_equal(np.load(second.feature_cache_dir / name), array), name
    start, end = originals["train_offsets.npy"][:2]
    assert torch.equal(second.benchmark.train_stream[0].dataset[0][0], torch.from_numpy(originals["train.npy"][start:end]))
    third = build_fsc(fsc_root, ctx, num_experiences=1)
    assert third.features_from_cache  # the rebuilt entry verifies


def test_feature_cache_records_a_checksum_per_array(fsc_root: Path, ctx) -> None:
    result = build_fsc(fsc_root, ctx, num_experiences=1)
    meta = json.loads((result.feature_cache_dir / "meta.json").read_text())
    assert sorted(meta["checksums"]) == sorted(ARRAYS)
    assert all(meta["checksums"][name] == file_digest(result.feature_cache_dir / name) for name in ARRAYS)
    assert meta["checksums"]["train.npy"].startswith("xxh3_128:")
