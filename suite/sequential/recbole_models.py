"""Every RecBole 1.2.1 sequential recommender that runs on the suite's data, one registered model each.

``gru4rec``, ``caser``, ``bert4rec``, ... name RecBole's own classes; the generic ``recbole``
entry takes any of them by class name (``model: {name: recbole, class: GRU4Rec, ...}``) and
names the reason when a class cannot run. Each model's options are derived from RecBole's own
defaults file (``recbole/properties/model/<Class>.yaml``): its keys are the known keys, each
typed by its default (``0.5`` a float, ``[..]`` a list, ``'gelu'`` a word), so an unknown key
or a wrong type is exit 2 before anything runs, and a string must pass the grammar of
``suite.sequential.recbole_strings`` (RecBole ``eval``s config strings; ``guard_config``
checks them again before ``Config``). The suite passes every key explicitly, so a run
records the whole model configuration.

The suite's ``recbole`` scenario loads interactions (user, item, time); S3Rec adds its item
attribute column (ml-100k's ``class``) and pre-trains first (``suite.sequential.pretraining``).
Models that read more are refused with the reason (``REFUSED``): item feature fields for a
whole model (GRU4RecF, SASRecF, FDSA), a knowledge graph, or CTR labels.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import ConfigDict, Field, ValidationError, create_model, model_validator

from models.defaults import read_defaults, recbole_model_file
from suite.api import ModelEntry, Options
from suite.sequential.recbole_strings import grammar_of

FAMILY = "sequential"

SUPPORTED: dict[str, str] = {
    "GRU4Rec": "GRU4Rec (Hidasi et al., 2016): a GRU over the item sequence",
    "Caser": "Caser (Tang & Wang, 2018): horizontal and vertical convolutions over the last items",
    "NARM": "NARM (Li et al., 2017): GRU with attention over the session",
    "STAMP": "STAMP (Liu et al., 2018): short-term attention/memory priority",
    "NextItNet": "NextItNet (Yuan et al., 2019): dilated residual convolutions",
    "SRGNN": "SR-GNN (Wu et al., 2019): gated GNN over the session graph",
    "GCSAN": "GC-SAN (Xu et al., 2019): session graph GNN + self-attention",
    "BERT4Rec": "BERT4Rec (Sun et al., 2019): bidirectional Transformer, masked item prediction",
    "S3Rec": "S3-Rec (Zhou et al., 2020): self-supervised pre-training on item attributes, then fine-tuning",
    "LightSANs": "LightSANs (Fan et al., 2021): low-rank decomposed self-attention",
    "CORE": "CORE (Hou et al., 2022): consistent representation space, transformer encoder",
    "FEARec": "FEARec (Du et al., 2023): frequency-enhanced attention + DuoRec-style contrast",
    "SASRecCPR": "SASRec with the softmax-CPR output layer (Chang et al., 2023)",
    "GRU4RecCPR": "GRU4Rec with the softmax-CPR output layer (Chang et al., 2023)",
    "FPMC": "FPMC (Rendle et al., 2010): factorized personalized Markov chains (BPR, negative sampling)",
    "TransRec": "TransRec (He et al., 2017): translation-based (BPR, negative sampling)",
    "FOSSIL": "FOSSIL (He & McAuley, 2016): similarity model + high-order Markov chains",
    "HRM": "HRM (Wang et al., 2015): hierarchical representation model",
    "SHAN": "SHAN (Ying et al., 2018): sequential hierarchical attention",
    "HGN": "HGN (Ma et al., 2019): hierarchical gating network",
    "NPE": "NPE (Nguyen et al., 2018): neural personalized embedding",
    "RepeatNet": "RepeatNet (Ren et al., 2019): repeat-explore mechanism",
    "SINE": "SINE (Tan et al., 2021): sparse-interest network",
}
"""RecBole 1.2.1's sequential models that train on interactions alone (SASRec is the ``sasrec`` entry)."""

REFUSED: dict[str, str] = {
    "GRU4RecF": "needs item feature fields (selected_features, e.g. ml-100k's 'class'); the recbole scenario loads interactions only",
    "SASRecF": "needs item feature fields (selected_features, e.g. ml-100k's 'class'); the recbole scenario loads interactions only",
    "FDSA": "needs item feature fields (selected_features, e.g. ml-100k's 'class'); the recbole scenario loads interactions only",
    "KSR": "needs a knowledge graph (.kg, .link and pretrained entity embeddings)",
    "GRU4RecKG": "needs a knowledge graph (.kg, .link and pretrained entity embeddings)",
    "DIN": "is a CTR model: needs labelled (clicked/not clicked) interactions and RecBole's context data pipeline",
    "DIEN": "is a CTR model: needs labelled (clicked/not clicked) interactions and RecBole's context data pipeline",
    "SASRec": "is the suite's 'sasrec' model (encoder: recbole is RecBole's own class)",
}
"""RecBole 1.2.1's other sequential models, with what they need that the suite's sequential data lacks."""

NEGATIVE_SAMPLING = {"distribution": "uniform", "sample_num": 1, "alpha": 1.0, "dynamic": False, "candidate_num": 0}
"""RecBole's default ``train_neg_sample_args``: one uniform negative per positive, for pairwise (BPR) losses."""
PAIRWISE_ONLY = frozenset({"TransRec"})
SUITE_DRIVEN: dict[str, frozenset[str]] = {"S3Rec": frozenset({"train_stage", "save_step", "pre_model_path"})}
"""Keys the suite sets itself (``suite.sequential.pretraining``: S3Rec's two stages), so no spec key."""
ITEM_COLUMNS: dict[str, str] = {"S3Rec": "item_attribute"}
"""Models that read an item column of the dataset's ``.item`` file, and the key that names it."""
"""Models that always train with a pairwise loss and have no ``loss_type`` key."""


def recbole_class(name: str) -> type:
    import recbole.model.sequential_recommender as sequential

    return getattr(sequential, name)


def recbole_defaults(name: str) -> dict[str, Any]:
    """A model's defaults file as RecBole reads it (``1e-12`` a float)."""
    return read_defaults([recbole_model_file(name)])


class RecBoleModelOptions(Options):
    """Base of the derived options: every string passes its RecBole key's grammar (exit 2 naming the key)."""

    @model_validator(mode="after")
    def _strings_pass_their_grammar(self) -> RecBoleModelOptions:
        for key, value in self:
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, str):
                    try:
                        grammar_of(key)(item)
                    except ValueError as error:
                        raise ValueError(f"{key} = {item!r}: {error}") from None
        return self


DECLARED_TYPES: dict[str, Any] = {
    "int": int,
    "float": float,
    "bool": bool,
    "str": str,
    "list of int": list[int],
    "list of float": list[float],
    "list of str": list[str],
}
DECLARED = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)[ \t]*:[^#\n]*#[ \t]*\(([a-z ]+)\)", re.M)
"""RecBole's model files declare each key's type in a comment: ``dropout_prob: 0.3  # (float) ...``."""


RANGE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)[ \t]*:[^#\n]*#[^\n]*Range in `*\[([^\]\n]*)\]", re.M)
"""... and the values a string key takes: ``loss_type: 'CE'  # (str) ... Range in ['BPR', 'CE'].``"""


def declared_types(name: str) -> dict[str, Any]:
    """The types a model's defaults file declares in its comments (``global_ratio: 1  # (float)`` is a float;
    a string with a declared range is one of its values: ``loss_type`` of FPMC is ``Literal['BPR']``)."""
    text = recbole_model_file(name).read_text(encoding="utf-8")
    types = {key: DECLARED_TYPES[kind] for key, kind in DECLARED.findall(text) if kind in DECLARED_TYPES}
    for key, values in RANGE.findall(text):
        choices = tuple(value.strip(" '\"") for value in values.split(","))
        if types.get(key, str) is str and all(choices):
            types[key] = Literal[choices]
    return types


def _field(value: Any, declared: Any = None) -> tuple[Any, Any]:
    """(annotation, default) of a key: the type its comment declares, else its default's type."""
    if value is None or value == "None":
        return (declared or str) | None, None
    if declared is str and not isinstance(value, str):
        return int | str, value  # reranker_CAN_NUM: 100 or "500,100,20"
    if isinstance(value, list):
        return declared or _list_type(value), Field(default_factory=lambda value=value: list(value))
    if declared in (int, float, bool):
        return declared, declared(value)  # use_proj_bias: 1  # (bool)
    if declared is not None:
        return declared, value
    if isinstance(value, bool):
        return bool, value
    if isinstance(value, int):
        return int, value
    if isinstance(value, float):
        return float, value
    return str, str(value)


def _list_type(value: list[Any]) -> Any:
    kinds = {type(item) for item in value}
    return list[float] if float in kinds else list[int] if kinds and kinds <= {int} else list[str]


def options_class(name: str) -> type[Options]:
    """The pydantic options of one RecBole model: the keys of its YAML, typed by their defaults."""
    declared = declared_types(name)
    driven = SUITE_DRIVEN.get(name, frozenset())
    fields = {key: _field(value, declared.get(key)) for key, value in recbole_defaults(name).items() if key not in driven}
    return create_model(f"{name}Options", __base__=RecBoleModelOptions, __doc__=SUPPORTED[name], **fields)


def recbole_fragment(name: str, options: Options) -> dict[str, Any]:
    """Every key of the model, plus the negative sampling a pairwise loss needs (``loss_type: CE`` needs none)."""
    fragment = options.model_dump()
    pairwise = name in PAIRWISE_ONLY or fragment.get("loss_type") == "BPR"
    fragment["train_neg_sample_args"] = dict(NEGATIVE_SAMPLING) if pairwise else None
    if name in ITEM_COLUMNS:
        fragment["load_col"] = {"item": [fragment[ITEM_COLUMNS[name]]]}
    return fragment


def model_entry(name: str) -> ModelEntry:
    """The registered entry of one supported RecBole model (its lower-case name)."""

    def build(options: Options) -> tuple[type, dict[str, Any]]:
        return recbole_class(name), recbole_fragment(name, options)

    return ModelEntry(name.lower(), FAMILY, options_class(name), build, f"RecBole's {SUPPORTED[name]}")


ENTRIES: dict[str, ModelEntry] = {name: model_entry(name) for name in SUPPORTED}


class AnyRecBoleModelOptions(Options):
    """``class``: a RecBole sequential model's class name; the other keys are that model's (validated as its entry's)."""

    model_config = ConfigDict(extra="allow", validate_assignment=False, populate_by_name=True, serialize_by_alias=True)
    class_: str = Field(alias="class", description="RecBole class name, e.g. GRU4Rec, Caser, BERT4Rec")

    @model_validator(mode="after")
    def _known_class_and_keys(self) -> AnyRecBoleModelOptions:
        entry = ENTRIES.get(self.class_)
        if entry is None:
            if self.class_ in REFUSED:
                raise ValueError(f"RecBole's {self.class_} {REFUSED[self.class_]}")
            raise ValueError(f"unknown RecBole sequential model {self.class_!r}; the suite runs {', '.join(SUPPORTED)}")
        extra = dict(self.__pydantic_extra__ or {})
        known = list(entry.options.model_fields)
        unknown = [key for key in extra if key not in known]
        if unknown:
            raise ValueError(f"unknown key {unknown[0]!r} for {self.class_}; its keys (RecBole's {self.class_}.yaml): {', '.join(known)}")
        try:
            self.__pydantic_extra__ = entry.options.model_validate(extra).model_dump()
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            message = first["msg"].removeprefix("Value error, ")
            if not where:  # a string refused by its grammar: the message names the key
                raise ValueError(f"{self.class_}: {message}") from None
            raise ValueError(f"{self.class_} {where}: {message.lower()}, got {first.get('input')!r}") from None
        return self


def build_any(options: AnyRecBoleModelOptions) -> tuple[type, dict[str, Any]]:
    entry = ENTRIES[options.class_]
    return entry.build(entry.options.model_validate(options.model_extra or {}))


ANY = ModelEntry("recbole", FAMILY, AnyRecBoleModelOptions, build_any, "any supported RecBole sequential model by its class name")
GRU4REC, CASER, NARM, STAMP = (ENTRIES[name] for name in ("GRU4Rec", "Caser", "NARM", "STAMP"))
NEXTITNET, SRGNN, GCSAN, BERT4REC = (ENTRIES[name] for name in ("NextItNet", "SRGNN", "GCSAN", "BERT4Rec"))
LIGHTSANS, CORE, FEAREC, SASRECCPR, GRU4RECCPR = (ENTRIES[name] for name in ("LightSANs", "CORE", "FEARec", "SASRecCPR", "GRU4RecCPR"))
FPMC, TRANSREC, FOSSIL, HRM, SHAN, HGN, NPE = (ENTRIES[name] for name in ("FPMC", "TransRec", "FOSSIL", "HRM", "SHAN", "HGN", "NPE"))
REPEATNET, SINE, S3REC = ENTRIES["RepeatNet"], ENTRIES["SINE"], ENTRIES["S3Rec"]
