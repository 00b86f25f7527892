"""Every bad input gives one clear error: missing roots, wrong layouts, corrupt audio, other rates."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
import torchaudio.functional
from slu_fixtures import RESAMPLED_FILE, copy_corpus

from scenarios.slu.audio import read_audio
from scenarios.slu.entries import FSC, SLURP
from scenarios.slu.tokenizer import Tokenizer
from suite.errors import DataError


def build_fsc(root: Path, context, **options):
    """The FSC plugin on a fixture corpus; 5 experiences (one per class) unless told otherwise."""
    if "classes_per_exp" not in options:
        options.setdefault("num_experiences", 5)
    return FSC.build(FSC.options(root=str(root), **options), context)


def build_slurp(root: Path, context, **options):
    options.setdefault("num_experiences", 2)
    return SLURP.build(SLURP.options(root=str(root), **options), context)


def first_wav(root: Path) -> Path:
    return sorted((root / "wavs" / "speakers").rglob("*.wav"))[0]


def test_missing_fsc_root_says_what_and_where(tmp_path: Path, ctx) -> None:
    with pytest.raises(DataError) as error:
        build_fsc(tmp_path / "nowhere", ctx)
    message = str(error.value)
    assert "nowhere" in message and "does not exist" in message
    assert "data/{train,valid,test}_data.csv" in message and "wavs/speakers" in message
    assert "fluent.ai" in message and "\n" not in message


@pytest.mark.parametrize(
    "damage, piece",
    [
        (lambda root: (root / "data" / "valid_data.csv").unlink(), "missing data/valid_data.csv"),
        (lambda root: shutil.rmtree(root / "wavs"), "missing folder wavs/speakers/"),
        (lambda root: shutil.rmtree(root / "data"), "missing folder data/"),
    ],
)
def test_wrong_fsc_layout_names_the_missing_piece(fsc_root: Path, tmp_path: Path, ctx, damage, piece) -> None:
    root = copy_corpus(fsc_root, tmp_path / "fsc")
    damage(root)
    with pytest.raises(DataError, match=piece) as error:
        build_fsc(root, ctx)
    assert "expected <root>/data/" in str(error.value) and "fluent.ai" in str(error.value)


def test_fsc_csv_without_the_expected_columns_is_refused(fsc_root: Path, tmp_path: Path, ctx) -> None:
    root = copy_corpus(fsc_root, tmp_path / "fsc")
    csv_path = root / "data" / "test_data.csv"
    csv_path.write_text(csv_path.read_text().replace("speakerId", "speaker", 1))
    with pytest.raises(DataError, match=r"test_data.csv lacks column\(s\) speakerId"):
        build_fsc(root, ctx)


def test_fsc_label_keeps_spaces_and_fills_empty_fields_with_none(fsc_root: Path, tmp_path: Path, ctx) -> None:
    """Real FSC has actions like 'change language' and writes 'none' for unused fields."""
    root = copy_corpus(fsc_root, tmp_path / "fsc")
    for split in ("train", "valid", "test"):
        path = root / "data" / f"{split}_data.csv"
        path.write_text(path.read_text().replace(",activate,music,none", ",change language,,"))
    result = build_fsc(root, ctx)
    assert "change language_none_none" in result.classes and "activate_music_none" not in result.classes
    assert len(result.classes) == 5


def test_missing_slurp_pieces_are_named(slurp_root: Path, tmp_path: Path, ctx) -> None:
    with pytest.raises(DataError, match="does not exist.*github.com/pswietojanski/slurp"):
        build_slurp(tmp_path / "nowhere", ctx)
    root = copy_corpus(slurp_root, tmp_path / "slurp")
    (root / "devel.jsonl").unlink()
    with pytest.raises(DataError, match=r"missing devel.jsonl; expected <root>/\{train,devel,test\}.jsonl"):
        build_slurp(root, ctx)
    with pytest.raises(DataError, match="missing train_synthetic.jsonl"):
        build_slurp(slurp_root, ctx, use_synthetic=True)
    shutil.rmtree(root / "slurp_real")
    (root / "devel.jsonl").write_text((slurp_root / "devel.jsonl").read_text())
    with pytest.raises(DataError, match="missing audio folder .*slurp_real/"):
        build_slurp(root, ctx)


def test_malformed_slurp_lines_are_located(slurp_root: Path, tmp_path: Path, ctx) -> None:
    root = copy_corpus(slurp_root, tmp_path / "slurp")
    lines = (root / "test.jsonl").read_text().splitlines()
    entry = json.loads(lines[2])
    del entry["scenario"]
    (root / "test.jsonl").write_text("\n".join(lines[:2] + [json.dumps(entry)] + lines[3:]) + "\n")
    with pytest.raises(DataError, match=r"test.jsonl:3: missing field\(s\) scenario"):
        build_slurp(root, ctx)
    (root / "test.jsonl").write_text("{not json\n")
    with pytest.raises(DataError, match=r"test.jsonl:1: not valid JSON"):
        build_slurp(root, ctx)


def test_corrupt_audio_names_the_file(fsc_root: Path, tmp_path: Path, ctx) -> None:
    root = copy_corpus(fsc_root, tmp_path / "fsc")
    bad = first_wav(root)
    bad.write_bytes(b"RIFF0000WAVEfmt garbage" * 3)
    with pytest.raises(DataError) as error:
        build_fsc(root, ctx)
    assert str(bad) in str(error.value) and "skip_bad_audio" in str(error.value)


def test_corrupt_audio_is_skipped_and_counted_on_request(fsc_root: Path, tmp_path: Path, ctx) -> None:
    root = copy_corpus(fsc_root, tmp_path / "fsc")
    wavs = sorted((root / "wavs" / "speakers").rglob("*.wav"))
    wavs[0].write_bytes(b"not audio at all")
    wavs[-1].unlink()
    result = build_fsc(root, ctx, skip_bad_audio=True)
    assert result.skipped_audio == 2 and sorted(result.skipped_files) == sorted([str(wavs[0]), str(wavs[-1])])
    total = sum(len(exp.dataset) for stream in ("train_stream", "valid_stream", "test_stream") for exp in getattr(result.benchmark, stream))
    assert total == 48
    again = build_fsc(root, ctx, skip_bad_audio=True)
    assert again.features_from_cache and again.skipped_audio == 2
    with pytest.raises(DataError, match="2 unreadable audio file"):
        build_fsc(root, ctx)  # the cache remembers the bad files; without the option it still refuses


def test_empty_audio_file_is_bad_audio(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    soundfile.write(str(path), np.zeros(0, np.int16), 16000, subtype="PCM_16")
    with pytest.raises(DataError, match=f"{path}: audio file holds no samples"):
        read_audio(path)


def test_audio_at_another_rate_is_resampled(slurp_root: Path, ctx) -> None:
    path = slurp_root / "slurp_real" / RESAMPLED_FILE
    native = soundfile.info(str(path))
    assert native.samplerate == 22050
    waveform = read_audio(path)
    assert abs(len(waveform) - native.frames * 16000 / 22050) <= 1
    raw, _ = soundfile.read(str(path), dtype="float32")
    reference = torchaudio.functional.resample(torch.from_numpy(raw), 22050, 16000)
    assert torch.allclose(waveform, reference, atol=1e-4)
    result = build_slurp(slurp_root, ctx, num_experiences=1)
    assert result.skipped_audio == 0  # the 22,050 Hz file went in like the others


def test_audio_at_8k_is_upsampled(tmp_path: Path) -> None:
    path = tmp_path / "tone.wav"
    t = np.arange(8000) / 8000
    soundfile.write(str(path), (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 8000, subtype="PCM_16")
    waveform = read_audio(path)
    assert len(waveform) == 16000
    spectrum = np.abs(np.fft.rfft(waveform.numpy()))
    assert abs(int(spectrum.argmax()) - 440) <= 1  # same tone, twice the samples


def test_stereo_audio_is_mixed_down(tmp_path: Path) -> None:
    path = tmp_path / "stereo.flac"
    soundfile.write(str(path), np.stack([np.full(1600, 0.25), np.full(1600, -0.25)], axis=1), 16000, format="FLAC")
    assert read_audio(path).abs().max() < 1e-3


def test_tokenizer_file_that_is_not_one_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "tok.json"
    path.write_text("[1, 2]")
    with pytest.raises(DataError, match="not a tokenizer file"):
        Tokenizer.load(path)
