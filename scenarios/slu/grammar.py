"""The smart-home command grammar of the embedded spoken-commands corpus, and its speakers.

Intents follow Fluent Speech Commands: an intent is ``action`` + ``object`` + ``location``
(``none`` when a field does not apply), and its class name is ``action_object_location``.
Every intent has at least six distinct phrasings; every speaker is an eSpeak NG voice with a
variant, a pitch and a speaking rate drawn from the corpus seed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

GRAMMAR_VERSION = 2

LOCATIONS = ("none", "kitchen", "bedroom", "washroom")
VOICES = ("en", "en-us", "en-029", "en-GB-scotland", "en-GB-x-rp", "en-US-nyc")
VARIANTS = ("f1", "f2", "f3", "f4", "f5", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8")
# eSpeak NG's named voice variants (female, then male, as their files declare), for speakers 21-40.
# Chosen for sounding like people: no whisper, croak, robot or echo variants.
NAMED_FEMALE = ("Annie", "Andrea", "anika", "belinda", "steph")
NAMED_MALE = ("Andy", "Marco", "travis", "Denis", "antonio")
FIRST_ROUND = 2 * 2 * sum(variant.startswith("f") for variant in VARIANTS)  # 20: pairs alternate f/m, one pair per variant
MAX_SPEAKERS = FIRST_ROUND + 2 * 2 * min(len(NAMED_FEMALE), len(NAMED_MALE))  # 40


@dataclass(frozen=True)
class Intent:
    action: str
    object: str
    location: str

    @property
    def label(self) -> str:
        return f"{self.action}_{self.object}_{self.location}"


@dataclass(frozen=True)
class Speaker:
    speaker_id: str
    voice: str
    pitch: int
    rate: int
    female: bool


def _where(location: str) -> tuple[str, str]:
    """(" in the kitchen", "kitchen ") or ("", "") for no location."""
    if location == "none":
        return "", ""
    return f" in the {location}", f"{location} "


def _switchable(action: str, thing: str, location: str) -> list[str]:
    on = "on" if action == "activate" else "off"
    start = "start" if action == "activate" else "stop"
    tail, pre = _where(location)
    return [
        f"turn {on} the {thing}{tail}",
        f"switch {on} the {pre}{thing}",
        f"turn the {pre}{thing} {on}",
        f"switch the {thing} {on}{tail}",
        f"{pre}{thing} {on}",
        f"please turn {on} the {pre}{thing}",
        f"could you switch {on} the {thing}{tail}",
        f"{start} the {pre}{thing}",
    ]


def _adjustable(action: str, thing: str, location: str) -> list[str]:
    up, more = ("up", "increase") if action == "increase" else ("down", "decrease")
    feel = {"heat": ("warmer", "cooler"), "volume": ("louder", "quieter")}[thing][0 if up == "up" else 1]
    tail, pre = _where(location)
    word = "heating" if thing == "heat" else "volume"
    return [
        f"turn the {word} {up}{tail}",
        f"turn {up} the {pre}{word}",
        f"{more} the {pre}{word}",
        f"{pre}{word} {up}",
        f"please {more} the {thing}{tail}",
        f"make it {feel}{tail}",
        f"i want it {feel}{tail}",
        f"could you turn the {pre}{word} {up}",
    ]


def _fetchable(thing: str) -> list[str]:
    return [
        f"bring me the {thing}",
        f"bring the {thing}",
        f"get me the {thing}",
        f"fetch the {thing}",
        f"i need the {thing}",
        f"please bring my {thing}",
        f"could you get my {thing}",
        f"go get the {thing}",
    ]


def _language(language: str) -> list[str]:
    return [
        f"change the language to {language}",
        f"switch the language to {language}",
        f"set the language to {language}",
        f"use {language}",
        f"speak {language}",
        f"{language} please",
        f"i want to use {language}",
        f"change language to {language}",
    ]


def _build() -> dict[Intent, list[str]]:
    table: dict[Intent, list[str]] = {}
    for action in ("activate", "deactivate"):
        for location in LOCATIONS:
            table[Intent(action, "lights", location)] = _switchable(action, "lights", location)
        for thing in ("music", "lamp", "fan"):
            table[Intent(action, thing, "none")] = _switchable(action, thing, "none")
    for action in ("increase", "decrease"):
        for location in LOCATIONS:
            table[Intent(action, "heat", location)] = _adjustable(action, "heat", location)
        table[Intent(action, "volume", "none")] = _adjustable(action, "volume", "none")
    for thing in ("newspaper", "juice", "socks", "shoes"):
        table[Intent("bring", thing, "none")] = _fetchable(thing)
    for language in ("english", "german", "chinese", "korean"):
        table[Intent("change_language", language, "none")] = _language(language)
    return table


GRAMMAR: dict[Intent, list[str]] = _build()


def intents(limit: int | None = None) -> list[Intent]:
    """The grammar's intents in a fixed order; ``limit`` keeps the first ones (tiny test corpora)."""
    found = list(GRAMMAR)
    return found if limit is None else found[:limit]


def phrasings(intent: Intent, count: int) -> list[str]:
    """The first ``count`` phrasings of an intent (all distinct)."""
    return GRAMMAR[intent][:count]


def speakers(count: int, seed: int) -> list[Speaker]:
    """``count`` distinct synthetic speakers in pairs that share an eSpeak variant (timbre).

    Speakers ``2k`` and ``2k + 1`` use the same variant with a different accent, pitch and
    rate; pairs alternate female and male variants. ``held_out_order`` puts one speaker of
    each pair in valid/test, so the held-out speakers are new people whose kind of voice the
    model has heard, and both genders are on each side of the split.

    The first 20 speakers use the numbered variants (f1-f5, m1-m8) and speakers 21-40 the
    named ones; speaker ``i`` is the same whatever ``count`` is, so a larger corpus extends a
    smaller one and the corpora cached before speakers 21-40 existed stay valid.
    """
    if count > MAX_SPEAKERS:
        raise ValueError(f"at most {MAX_SPEAKERS} speakers are available, asked for {count}")
    rng = random.Random(f"speakers-{seed}")
    female = [v for v in VARIANTS if v.startswith("f")]
    male = [v for v in VARIANTS if v.startswith("m")]
    rng.shuffle(female)
    rng.shuffle(male)
    voices = list(VOICES)
    rng.shuffle(voices)
    named = random.Random(f"named-speakers-{seed}")  # its own stream: the first 20 speakers' draws stay as they were
    female += named.sample(NAMED_FEMALE, len(NAMED_FEMALE))
    male = male[: FIRST_ROUND // 4] + named.sample(NAMED_MALE, len(NAMED_MALE))
    found = []
    for index in range(count):
        pair = index // 2
        is_female = pair % 2 == 0
        voice, variant = voices[index % len(voices)], (female if is_female else male)[pair // 2]
        pitch = rng.randint(25, 75)
        rate = rng.randint(135, 195)
        speaker_id = f"spk{index:02d}{voice.replace('-', '').lower()}{variant.lower()}"
        found.append(Speaker(speaker_id, f"{voice}+{variant}", pitch, rate, is_female))
    return found


def held_out_order(found: list[Speaker]) -> list[Speaker]:
    """Speakers in the order valid/test draw them: first of each pair, then the partners."""
    return found[0::2] + found[1::2]


def check() -> None:
    """The grammar's promises: >= 30 intents, >= 6 distinct phrasings each, no phrase shared."""
    if len(GRAMMAR) < 30:
        raise AssertionError(f"grammar has {len(GRAMMAR)} intents, expected >= 30")
    owner: dict[str, Intent] = {}
    for intent, texts in GRAMMAR.items():
        if len(set(texts)) < 6:
            raise AssertionError(f"{intent.label} has {len(set(texts))} distinct phrasings, expected >= 6")
        for text in texts:
            if owner.setdefault(text, intent) != intent:
                raise AssertionError(f"phrase '{text}' is used by {owner[text].label} and {intent.label}")
