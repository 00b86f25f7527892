"""Small SLU corpora synthesized with the suite's own eSpeak NG synthesizer, built once per session.

* ``fsc_root``: 5 intents x 2 phrasings x 5 speakers (3/1/1) in the Fluent Speech Commands
  layout, written by the spoken-commands synthesizer itself.
* ``slurp_root``: 4 scenarios x 2 sentences, jsonl + FLAC in the SLURP layout, one test
  recording stored at 22,050 Hz to exercise resampling.

``conftest.py`` registers this module as a pytest plugin; the builders cache their
result in this module so several modules share one corpus.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from scenarios.slu.audio import resample, to_pcm16
from scenarios.slu.espeak import SAMPLE_RATE, SynthJob, synthesize
from scenarios.slu.spoken_commands import CorpusSpec, synthesize_corpus
from suite.api import BuildContext

torch.set_num_threads(1)

TINY_SPEC = CorpusSpec(seed=0, speakers=5, valid_speakers=1, test_speakers=1, phrasings_per_intent=2, intents=5)

SLURP_SENTENCES = {
    "iot": [("iot_hue_lightson", "turn on the lights"), ("iot_hue_lightsoff", "switch off the lights")],
    "music": [("play_music", "play some jazz music"), ("music_likeness", "i like this song")],
    "weather": [("weather_query", "what is the weather today"), ("weather_query", "will it rain tomorrow")],
    "alarm": [("alarm_set", "wake me up at seven"), ("alarm_remove", "cancel my alarm")],
}
SLURP_SPEAKERS = {"train": ["en-us+m1", "en+f1"], "valid": ["en-GB-x-rp+m3"], "test": ["en-029+f4"]}
SLURP_FILES = {"train": "train.jsonl", "valid": "devel.jsonl", "test": "test.jsonl"}
RESAMPLED_FILE = "test-16-0.flac"  # the first test recording (ids 0-7 train, 8-15 devel), stored at 22,050 Hz

_BUILT: dict[str, Path] = {}


def build_fsc_corpus(folder: Path, spec: CorpusSpec = TINY_SPEC) -> Path:
    synthesize_corpus(folder, spec)
    return folder


def build_slurp_corpus(folder: Path) -> Path:
    """SLURP layout: {train,devel,test}.jsonl and slurp_real/*.flac (one file at 22,050 Hz)."""
    entries, jobs, names = _slurp_plan()
    audio = folder / "slurp_real"
    audio.mkdir(parents=True)
    for index, samples in synthesize(jobs):
        _write_flac(audio / names[index], samples, native=names[index] == RESAMPLED_FILE)
    for split, lines in entries.items():
        (folder / SLURP_FILES[split]).write_text("".join(json.dumps(line) + "\n" for line in lines))
    return folder


def _slurp_plan():
    entries: dict[str, list[dict]] = {split: [] for split in SLURP_FILES}
    jobs, names = [], []
    slurp_id = 0
    for split, voices in SLURP_SPEAKERS.items():
        for scenario, sentences in SLURP_SENTENCES.items():
            for intent, sentence in sentences:
                recordings = []
                for v, voice in enumerate(voices):
                    name = f"{split}-{slurp_id}-{v}.flac"
                    jobs.append(SynthJob(sentence, voice, 50, 170, slurp_id * 10 + v))
                    names.append(name)
                    recordings.append({"file": name, "wer": 0.0, "ent_wer": 0.0, "status": "correct"})
                entries[split].append(
                    {
                        "slurp_id": slurp_id,
                        "sentence": sentence,
                        "sentence_annotation": sentence,
                        "intent": intent,
                        "action": intent.split("_", 1)[1],
                        "scenario": scenario,
                        "tokens": [],
                        "recordings": recordings,
                        "entities": [],
                    }
                )
                slurp_id += 1
    return entries, jobs, names


def _write_flac(path: Path, samples: np.ndarray, native: bool) -> None:
    if native:
        soundfile.write(str(path), samples, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
        return
    waveform = resample(torch.from_numpy(samples.astype(np.float32) / 32768.0), SAMPLE_RATE, 16000)
    soundfile.write(str(path), to_pcm16(waveform), 16000, format="FLAC", subtype="PCM_16")


def _once(name: str, factory: pytest.TempPathFactory, builder) -> Path:
    if name not in _BUILT or not _BUILT[name].exists():
        _BUILT[name] = builder(factory.mktemp(name) / "corpus")
    return _BUILT[name]


@pytest.fixture(scope="session")
def fsc_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny corpus in the FSC layout (read-only: copy it before damaging it)."""
    return _once("fsc", tmp_path_factory, build_fsc_corpus)


@pytest.fixture(scope="session")
def slurp_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny corpus in the SLURP layout (read-only: copy it before damaging it)."""
    return _once("slurp", tmp_path_factory, build_slurp_corpus)


@pytest.fixture
def ctx(tmp_path: Path) -> BuildContext:
    """A build context whose cache and run folders are private to the test."""
    return BuildContext(seed=0, cache_dir=tmp_path / "cache", run_dir=tmp_path / "run", quiet=True)


def copy_corpus(root: Path, target: Path) -> Path:
    shutil.copytree(root, target)
    return target
