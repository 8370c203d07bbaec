"""Mistake 10: a vocabulary too small for the text. A character vocabulary built from part of the
corpus meets characters it has never seen; byte-level BPE never does. We compare them on unknowns,
characters per token, the embedding's share of the parameters, and bits per byte after equal
training, so that losses measured in different units become comparable."""
from __future__ import annotations

import math
import re
from collections import Counter

from pathlib import Path

import numpy as np

from ..model import GPT
from ..tokenizers import BPETokenizer, CharTokenizer, Tokenizer
from .base import (Deep, Figure, Measured, Mistake, Published,
                   Verdict, register)
from .common import (LAB_MODEL, LabData, check_side, evaluate, evidence, lab_data, model_sizes,
                     small_config, train)
from .plotting import figure, label_axes

EXPLANATION = """\
A tokenizer can only give ids to what its vocabulary holds. Build a character vocabulary from a
sample of the text and the rest of the text soon brings characters the sample never had (a
'?', a 'K', a dash, an accented letter); they all collapse into one <unk> id, and whatever they
said is gone: the model cannot read them and can never write them. (Word vocabularies are far
worse.) Byte-level BPE starts from the 256 byte values, so every string encodes and decodes
back exactly, and its learned merges make tokens longer, so a context of T tokens covers more
text. The price is the embedding table: vocab x width parameters, which for a small model can be
most of the model. And losses measured per token are not comparable across tokenizers (a longer
token is harder to predict but carries more text), so we convert them to bits per byte: total
nats over the validation text / (ln 2 x its UTF-8 bytes), after the same number of training
steps on the same block size. A model whose unknowns were collapsed also looks better than it
is, because predicting '<unk>' is easier than predicting which character it hid."""

UNK = "\ufffd"
# training steps, BPE vocabulary sizes (512 is the "fixed" side), validation batches
TIERS = {"quick": dict(**LAB_MODEL["quick"], steps=40, bpe_sizes=[320, 512, 768],
                       eval_batches=4),
         "full": dict(**LAB_MODEL["full"], steps=80, bpe_sizes=[320, 512, 768, 1280],
                      eval_batches=8)}


def tokens_data(name: str, tok: Tokenizer, train_text: str, val_text: str) -> LabData:
    """Train and validation text as `tok`'s ids, in a LabData the lab's training loop reads."""
    tr = np.asarray(tok.encode(train_text), dtype=np.int64)
    va = np.asarray(tok.encode(val_text), dtype=np.int64)
    itos = [tok.token_str(i) for i in range(tok.vocab_size)]
    return LabData(name, train_text + val_text, {}, itos, tr, va)


def _round_trip_unknowns(tok: Tokenizer, text: str) -> int:
    """Characters of `text` that do not come back from decode(encode(text))."""
    back = tok.decode(tok.encode(text))
    if len(back) != len(text):
        return abs(len(back) - len(text)) + sum(a != b for a, b in zip(back, text))
    return sum(a != b for a, b in zip(back, text))


def _measure(tok: Tokenizer, data: LabData, val_text: str, settings: dict, seed: int) -> dict:
    cfg = small_config(tok.vocab_size, True, **model_sizes(settings))
    model = GPT(cfg, seed=seed)
    steps = settings["steps"]
    log = train(model, data, steps, seed=seed, what=data.name)
    val_loss = evaluate(model, data, 8, settings["eval_batches"], seed + 1)
    n_bytes = len(val_text.encode("utf-8"))
    n_tok = len(data.val)
    emb = tok.vocab_size * cfg.n_embd
    return {"vocab_size": tok.vocab_size,
            "chars_per_token": len(val_text) / n_tok,
            "embedding_params": emb,
            "params": model.num_parameters(),
            "embedding_share": emb / model.num_parameters(),
            "val_loss_per_token": val_loss,
            "bits_per_byte": val_loss * n_tok / (math.log(2) * n_bytes),
            "bytes_seen_in_training": int(steps * 8 * cfg.block_size * n_bytes / n_tok),
            "train_loss_end": float(np.mean(log.loss[-10:]))}


def _draw(r: dict, path: Path) -> Path:
    metrics = r["metrics"]
    names = list(metrics)
    panels = [("chars_per_token", "characters per token"),
              ("embedding_share", "embedding share of parameters"),
              ("bits_per_byte", "validation bits per byte"),
              ("unknown_rate", "unknown characters (share)")]
    colors = ["#c0392b" if n == "wrong" else "#2e86c1" for n in names]
    labels = [f"{n}\nV={metrics[n]['vocab_size']}" for n in names]

    def draw(fig) -> None:
        for k, (key, title) in enumerate(panels):
            ax = fig.add_subplot(1, len(panels), k + 1)
            ax.bar(range(len(names)), [metrics[n][key] for n in names], color=colors)
            ax.set_xticks(range(len(names)), labels, fontsize=7)
            ax.set_title(title, fontsize=9)
            ax.grid(True, axis="y", alpha=0.3)
        fig.suptitle("character vocabulary from 5% of the corpus vs byte-level BPE")
    return figure(path, draw, 10.0, 3.6)


def _caption(r: dict) -> str:
    return (f"Red: characters of the first {r['facts']['sample_chars']:,} characters plus "
            f"<unk>; blue: byte-level BPE trained on the same sample. Bits per byte after the "
            f"same {r['settings']['steps']} training steps of the same model size.")


FIGURES = (Figure("m10_vocabulary.png", _draw, _caption),)


def measure(settings: dict, seed: int, data: LabData) -> Measured:
    text = data.text
    part = text[:max(1000, len(text) // 20)]         # the sample the vocabularies are built from
    rest = text[len(part):]
    split = int(len(text) * 0.9)
    train_text, val_text = text[:split], text[split:]
    metrics: dict = {}

    char = CharTokenizer(part, unk=UNK)
    char.encode(rest)
    unknowns, unknown_chars = char.unknown_count, len(char.unknown_chars)
    char.reset_unknown_counts()
    m = _measure(char, tokens_data("char", char, train_text, val_text), val_text, settings,
                 seed)
    m.update(unknown_count=unknowns, unknown_rate=unknowns / len(rest),
             distinct_unknown_chars=unknown_chars,
             unknown_examples="".join(sorted(char.unknown_chars)[:12]),
             round_trip_unknowns=_round_trip_unknowns(char, rest))
    metrics["wrong"] = m

    for size in settings["bpe_sizes"]:
        bpe = BPETokenizer().train(part, size)
        lost = _round_trip_unknowns(bpe, rest)
        m = _measure(bpe, tokens_data(f"bpe{size}", bpe, train_text, val_text), val_text,
                     settings, seed)
        m.update(unknown_count=lost, unknown_rate=lost / len(rest), round_trip_unknowns=lost)
        metrics["fixed" if size == 512 else f"bpe_{size}"] = m
    series = {k: {"vocab_size": v["vocab_size"], "bits_per_byte": v["bits_per_byte"]}
              for k, v in metrics.items()}
    return Measured(metrics, series, facts={"sample_chars": len(part)})


# the harm named by the mistake is "many <unk>": more than this share of the text unreadable
UNKNOWN_HARM = 0.01


def verdict(metrics: dict, context: dict) -> Verdict:
    w, f = metrics["wrong"], metrics["fixed"]
    bpe_sides = [k for k in metrics if k != "wrong"]
    shown = bool(w["unknown_count"] > 0 and w["round_trip_unknowns"] > 0
                 and all(metrics[k]["unknown_count"] == 0 for k in bpe_sides))
    kind = evidence(shown and w["unknown_rate"] > UNKNOWN_HARM, shown)
    words = (f"{100 * w['unknown_rate']:.2f}% of the text unknown to a character vocabulary "
             f"({w['unknown_count']:,} characters lost in a round trip), none with BPE")
    per = ", ".join(f"V={metrics[k]['vocab_size']}: {metrics[k]['chars_per_token']:.2f} "
                    f"chars/token, {metrics[k]['bits_per_byte']:.2f} bits/byte"
                    for k in bpe_sides)
    return Verdict(kind, words,
        f"a character vocabulary from the first {context['sample_chars']:,} characters leaves "
        f"{w['unknown_count']:,} unknown characters ({100 * w['unknown_rate']:.2f}%, "
        f"{w['distinct_unknown_chars']} distinct) in the rest; byte-level BPE leaves none "
        f"({per}; the embedding is {100 * f['embedding_share']:.0f}% of the parameters at "
        f"V={f['vocab_size']}); the char model reaches {w['bits_per_byte']:.2f} bits/byte "
        f"after the same {context['steps']} steps")


class TokenizedGPT(GPT):
    """A GPT that carries the tokenizer it was built for and that tokenizer's unknown rate on
    the rest of the corpus."""

    tokenizer: Tokenizer
    unknown_rate: float


def build(side: str, seed: int = 0) -> GPT:
    """Tiny untrained model: a character vocabulary from 5% of the lab corpus with one <unk>
    id (wrong), or byte-level BPE with 512 tokens (fixed). `model.tokenizer` is its tokenizer
    and `model.unknown_rate` the share of the rest of the corpus that it cannot read."""
    check_side(side)
    text = lab_data().text
    part = text[:max(1000, len(text) // 20)]
    tok: Tokenizer
    if side == "wrong":
        tok = CharTokenizer(part, unk=UNK)
        tok.encode(text[len(part):])
        rate = tok.unknown_count / max(1, len(text) - len(part))
        tok.reset_unknown_counts()
    else:
        tok = BPETokenizer().train(part, 512)
        rate = 0.0
    model = TokenizedGPT(small_config(tok.vocab_size, True), seed=seed)
    model.tokenizer = tok
    model.unknown_rate = rate
    return model


# ---------------------------------------------------------------------------------------------
# The deep tier (`lab --deep`): the seed's "many <UNK>" with a word vocabulary, and bits per byte
# against vocabulary size at equal training compute.
#
# Words: the 1,000 most frequent words (and punctuation marks) of the first `word_sample` of
# the text, counted on the rest. Bits per byte: one model size, the same steps, batch and block
# of tokens for every vocabulary, so the transformer blocks do the same work per step (the
# embedding and the head grow with the vocabulary, and a longer token carries more text); BPE
# vocabularies are trained on the training text, characters come from the whole corpus (no
# unknowns, the most favourable character vocabulary).

WORD = re.compile(r"\w+|[^\w\s]")
DEEP_SETTINGS = dict(word_vocab=1000, word_sample=0.2, block_size=32, n_layer=2, n_head=2,
                     n_embd=32, steps=300, eval_batches=8,
                     bpe_sizes=[256, 512, 1024, 2048, 4096, 8192], fixed_size=512)
DEEP_PUBLISHED = Published(
    "Sennrich, Haddow & Birch 2016, Neural Machine Translation of Rare Words with Subword "
    "Units", "the introduction",
    "a fixed word vocabulary (30,000-50,000 words) leaves rare and unseen words as <UNK>; "
    "byte pair encoding covers an open vocabulary with a fixed-size vocabulary of subwords")
_BPE: dict = {}


def word_unknowns(text: str, vocab_size: int, sample: float) -> dict:
    """A word vocabulary of the `vocab_size` most frequent words (and punctuation marks) of the
    first `sample` share of `text`: its unknown rate on the rest, in words and in characters."""
    cut = int(len(text) * sample)
    counts = Counter(WORD.findall(text[:cut]))
    vocab = {w for w, _ in counts.most_common(vocab_size)}
    rest = WORD.findall(text[cut:])
    unknown = [w for w in rest if w not in vocab]
    common = Counter(unknown).most_common(8)
    return {"vocab_size": len(vocab), "sample_chars": cut, "words_in_rest": len(rest),
            "unknown_words": len(unknown), "unknown_rate": len(unknown) / max(1, len(rest)),
            "unknown_char_rate": sum(map(len, unknown)) / max(1, sum(map(len, rest))),
            "distinct_unknown_words": len(set(unknown)),
            "unknown_examples": " ".join(w for w, _ in common)}


def _bpe(train_text: str, size: int) -> BPETokenizer:
    key = (len(train_text), hash(train_text[:1000]), size)
    if key not in _BPE:
        _BPE[key] = BPETokenizer().train(train_text, size)
    return _BPE[key]


def deep_measure(settings: dict, seed: int, data: LabData) -> Measured:
    text = data.text
    words = word_unknowns(text, settings["word_vocab"], settings["word_sample"])
    split = int(len(text) * 0.9)
    train_text, val_text = text[:split], text[split:]
    metrics: dict = {"wrong": {**words, "kind": "words"}}
    toks: dict = {"chars": CharTokenizer(text)}
    for size in settings["bpe_sizes"]:
        toks["fixed" if size == settings["fixed_size"] else f"bpe_{size}"] = \
            _bpe(train_text, size)
    for name, tok in toks.items():
        m = _measure(tok, tokens_data(name, tok, train_text, val_text), val_text, settings, seed)
        # what a round trip through the tokenizer loses of the validation text (none here)
        m["unknown_rate"] = _round_trip_unknowns(tok, val_text) / len(val_text)
        metrics[name] = {**m, "kind": name}
    sizes = [k for k in metrics if k != "wrong"]
    best = min(sizes, key=lambda k: metrics[k]["bits_per_byte"])
    series = {"vocab_size": [metrics[k]["vocab_size"] for k in sizes],
              "bits_per_byte": [metrics[k]["bits_per_byte"] for k in sizes],
              "labels": sizes}
    return Measured(metrics, series, facts={"best": best}, notes=(
        "Equal training compute: the same model (width, depth, block of tokens), batch and "
        "steps for every vocabulary, so the transformer blocks do the same work; the embedding "
        "and head grow with the vocabulary, and a BPE block covers more bytes of text (bytes "
        "seen in training are in the metrics)."))


# "many <UNK>": more than this share of the words in the rest of the text unknown
WORD_UNKNOWN_HARM = 0.05


def deep_verdict(metrics: dict, context: dict) -> Verdict:
    w = metrics["wrong"]
    sizes = [k for k in metrics if k != "wrong"]
    kind = evidence(w["unknown_rate"] > WORD_UNKNOWN_HARM and metrics["fixed"]["unknown_rate"] == 0)
    words = (f"{100 * w['unknown_rate']:.1f}% of the words unknown to a "
             f"{w['vocab_size']:,}-word vocabulary")
    per = ", ".join(f"{'chars' if k == 'chars' else metrics[k]['vocab_size']}: "
                    f"{metrics[k]['bits_per_byte']:.2f}" for k in sizes)
    return Verdict(kind, words, (
        f"the {w['vocab_size']:,} most frequent words of the first {w['sample_chars']:,} "
        f"characters leave {w['unknown_words']:,} of the {w['words_in_rest']:,} words of the "
        f"rest unknown ({100 * w['unknown_rate']:.1f}%, {w['distinct_unknown_words']:,} "
        f"distinct, {100 * w['unknown_char_rate']:.1f}% of their characters); bits per byte "
        f"after the same {context['steps']} steps of the same model, by vocabulary: {per}; "
        f"lowest at {metrics[context['best']]['vocab_size']:,} "
        f"{'characters' if context['best'] == 'chars' else 'BPE tokens'}; byte-level BPE "
        f"loses {100 * metrics['fixed']['unknown_rate']:.1f}% of the text in a round trip"))


def _draw_deep(r: dict, path: Path) -> Path:
    s = r["series"]

    def draw(fig) -> None:
        ax = fig.add_subplot()
        ax.semilogx(s["vocab_size"], s["bits_per_byte"], marker="o", lw=1.4)
        for v, b, k in zip(s["vocab_size"], s["bits_per_byte"], s["labels"]):
            ax.annotate("chars" if k == "chars" else str(v), (v, b), fontsize=7,
                        textcoords="offset points", xytext=(3, 4))
        label_axes(ax, "vocabulary size", "validation bits per byte",
                   f"same model, same {r['settings']['steps']} steps: bits per byte by vocabulary",
                   legend=False, published=DEEP_PUBLISHED)

    return figure(path, draw, 7.0, 4.5)


DEEP = Deep(settings=DEEP_SETTINGS, measure=deep_measure, verdict=deep_verdict,
            symptom="unknown_rate",
            figures=(Figure("m10_deep_bits_per_byte.png", _draw_deep,
                            "Validation bits per byte against vocabulary size (characters, "
                            "then byte-level BPE), one model size and the same training "
                            "steps for each."),),
            published=DEEP_PUBLISHED)


MISTAKE = register(Mistake(
    number=10, slug="vocabulary", title="Vocabulary too small for the text",
    explanation=EXPLANATION,
    wrong={"tokenizer": "characters of the first 5% of the corpus, plus <unk>"},
    fixed={"tokenizer": "byte-level BPE (256 bytes + merges), sizes 320, 512, 768 (+1280)"},
    tiers=TIERS, measure=measure, verdict=verdict, symptom="unknown_rate", figures=FIGURES,
    deep=DEEP,
    build=build))
