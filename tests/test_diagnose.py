"""diagnose(): each mistake switch is flagged by its probe and only its probe, the fixed GPT
(the default config, learned positions that refuse clearly past block_size, or RoPE or
sinusoidal positions) passes everything, the lab's wrong models are flagged, a hand-written
transformer's planted mistakes are found, unsupported probes are skipped with reasons, and the
model comes back bit for bit."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from tinygrad_gpt import GPT, GPTConfig, Tensor, nn
from tinygrad_gpt.cli import main
from tinygrad_gpt.diagnostics import ProbeResult, Report, diagnose
from tinygrad_gpt.model.config import parse_overrides

ROOT = Path(__file__).resolve().parents[1]
BASE = dict(vocab_size=65, block_size=16, n_layer=4, n_head=2, n_embd=16)
FIXED = dict(BASE)      # every fix on: the defaults (learned positions with a clear limit)


def gpt(**overrides) -> GPT:
    return GPT(GPTConfig(**{**FIXED, **overrides}), seed=0)


def _load_example(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------------------- the GPT's switches

@pytest.mark.parametrize("pos", ["learned", "rope", "sinusoidal", "alibi"])
def test_fixed_gpt_passes_every_probe(pos):
    report = diagnose(gpt(pos_encoding=pos))
    assert [p.status for p in report] == ["pass"] * len(report.probes), report.table()
    assert report.ok and report.flagged == set()
    assert report["gradient_flow"].details["skips_per_layer"] == {0: 2, 1: 2, 2: 2, 3: 2}
    assert report["ffn_width"].value == 4.0
    assert abs(report["final_norm"].details["init_loss"] - np.log(65)) < 0.1
    # learned positions stop at block_size with an error naming it; the others run past it
    assert report["position_range"].details["runs"] is (pos != "learned")


def test_default_config_passes_every_probe():
    report = diagnose(GPT(GPTConfig(), seed=0))
    assert report.ok and report.flagged == set() and not report.skipped, report.table()


SWITCHES = [
    (1, "norm_placement", dict(norm_placement="post")),
    (1, "norm_placement", dict(norm_placement="mixed")),
    (2, "gradient_flow", dict(residual=False)),
    (3, "ffn_width", dict(ffn_hidden=16)),
    (4, "tied_embeddings", dict(tie_weights=False)),
    (5, "batch_independence", dict(ln_axis=0)),
    (6, "final_norm", dict(final_norm=False)),
    (8, "padding_invariance", dict(mask_padding=False)),
    (11, "kv_cache", dict(kv_cache_update=False)),
]


@pytest.mark.parametrize("number, probe, switch", SWITCHES,
                         ids=[f"{n}-{next(iter(s.items()))}" for n, _, s in SWITCHES])
def test_each_switch_is_flagged_by_its_probe_only(number, probe, switch):
    report = diagnose(gpt(**switch))
    assert report[probe].failed, report.table()
    assert report.flagged == {number}, report.table()
    assert report[probe].fix and report[probe].measured


def test_mixed_norm_names_the_post_norm_layers():
    report = diagnose(gpt(norm_placement="mixed"))
    assert "mixed" in report["norm_placement"].measured
    post = {layer for layer, kind in report["norm_placement"].details["sequence"]
            if kind == "post"}
    assert post == {1, 3}          # odd layers are post-norm in the mixed model


def test_learned_positions_refuse_clearly_and_the_numbers_are_reported():
    probe = diagnose(gpt(pos_encoding="learned"))["position_range"]
    assert probe.passed and probe.details["clear_error"]
    assert probe.details["error_type"] == "ValueError"
    assert "at 17 tokens it refuses with a clear error" in probe.measured
    assert "block_size 16" in probe.details["error"]


@pytest.mark.parametrize("lookup", ["raw", "clip"])
def test_handwritten_learned_lookup_is_flagged_for_7_only(lookup):
    from tinygrad_gpt.lab.m07_positions import HandwrittenPositionsGPT
    report = diagnose(HandwrittenPositionsGPT(GPTConfig(**BASE), lookup=lookup))
    probe = report["position_range"]
    assert probe.failed and report.flagged == {7}, report.table()
    if lookup == "raw":            # numpy's out-of-bounds error from inside the forward pass
        assert probe.details["error_type"] == "IndexError" and not probe.details["clear_error"]
        assert "at 17 tokens it crashes with IndexError" in probe.measured
    else:                          # runs, and the first 16 positions even agree: caught by the
        assert probe.details["consistent"]        # table read at more positions than rows
        assert probe.details["reused_tables"] == ["transformer.wpe.weight"]
        assert "reused silently" in probe.measured


class UnclearRefusal(nn.Module):
    """Refuses long inputs, but with errors that do not say what the limit is."""

    def __init__(self, kind: type, message: str):
        self.inner, self.kind, self.message = gpt(pos_encoding="rope"), kind, message

    def forward(self, idx):
        if np.asarray(idx).shape[1] > 16:
            raise self.kind(self.message)
        return self.inner(idx)[0]


@pytest.mark.parametrize("kind, message, clear", [
    (ValueError, "sequence length 17 exceeds block_size 16", True),
    (ValueError, "input too long: at most 16 positions", True),
    (ValueError, "operands could not be broadcast together with shapes (17,16) (16,16)", False),
    (ValueError, "bad input", False),
    (RuntimeError, "sequence length 17 exceeds block_size 16", False),
])
def test_only_a_value_error_that_names_the_limit_counts_as_clear(kind, message, clear):
    probe = diagnose(UnclearRefusal(kind, message), block_size=16)["position_range"]
    assert probe.details["clear_error"] is clear and probe.passed is clear, probe.measured


def test_untied_head_reports_the_parameters_it_costs():
    probe = diagnose(gpt(tie_weights=False))["tied_embeddings"]
    assert probe.details["extra_parameters"] == 65 * 16


def test_deep_model_without_residuals_has_no_skip_paths_in_any_layer():
    probe = diagnose(gpt(residual=False, n_layer=8))["gradient_flow"]
    assert probe.details["layers_without_skip"] == list(range(8))


# ---------------------------------------------------------------------------- the lab's models

@pytest.mark.parametrize("number", range(1, 12))
def test_lab_wrong_model_is_flagged_and_fixed_model_is_not(number):
    from tinygrad_gpt.lab import MISTAKES
    if number not in MISTAKES or MISTAKES[number].build is None:
        pytest.skip(f"lab module for mistake {number} has no build() yet")
    build = MISTAKES[number].build
    wrong, fixed = diagnose(build("wrong", 0)), diagnose(build("fixed", 0))
    assert wrong.flagged == {number}, wrong.table()
    assert fixed.flagged == set(), fixed.table()


# ---------------------------------------------------------------------------- any model

def test_handwritten_transformer_planted_mistakes_are_found():
    ex = _load_example("handwritten_transformer")
    planted = diagnose(ex.TinyTransformer(fixed=False))
    assert planted.flagged == {2, 5}, planted.table()
    fixed = diagnose(ex.TinyTransformer(fixed=True))
    assert fixed.ok, fixed.table()
    assert {p.key for p in fixed.skipped} == {"padding_invariance", "kv_cache"}


class BagOfWords:
    """Not an nn.Module, no mask, no generate, no block size; every position sees the mean of
    the whole sequence, so it is not causal."""

    def __init__(self, vocab: int = 70, dim: int = 8):
        rng = np.random.default_rng(0)
        self.table = Tensor(rng.normal(0, 0.02, (vocab, dim)).astype(np.float32),
                            requires_grad=True)

    def __call__(self, idx):
        x = self.table[np.asarray(idx)]                           # (B, T, C)
        return (x + x.mean(axis=1, keepdims=True)) @ self.table.T


def test_plain_callable_skips_what_it_cannot_support_with_reasons():
    model = BagOfWords()
    report = diagnose(model)
    assert report["causality"].failed
    assert report["causality"].details["leaking_positions"] == list(range(8))
    reasons = {p.key: p.reason for p in report.skipped}
    assert "attention_mask" in reasons["padding_invariance"]
    assert "generate" in reasons["kv_cache"]
    assert "block size unknown" in reasons["position_range"]
    assert "fewer than two layers" in reasons["gradient_flow"]
    assert report.info["parameters"] == 70 * 8        # found as a leaf of the graph
    assert report["tied_embeddings"].passed


class CutModel(nn.Module):
    """A tiny model whose gradient path is cut: by detach, and by a cast to integers."""

    def __init__(self, vocab: int = 70, dim: int = 8):
        rng = np.random.default_rng(0)
        self.wte = nn.Embedding(vocab, dim, rng=rng)
        self.frozen = nn.Linear(dim, dim, rng=rng)
        self.rounded = nn.Linear(dim, dim, rng=rng)
        self.out = nn.Linear(dim, vocab, rng=rng)

    def forward(self, idx):
        x = self.wte(np.asarray(idx))
        a = self.frozen(x).detach()
        b = (self.rounded(x) * 100).astype(np.int64).astype(np.float32)
        return self.out(x + a + b)


def test_parameters_without_gradient_name_the_op_that_cut_the_path():
    probe = diagnose(CutModel())["dead_parameters"]
    assert probe.failed and probe.value == 4.0
    dead = probe.details["dead"]
    assert set(dead) == {"frozen.weight", "frozen.bias", "rounded.weight", "rounded.bias"}
    assert "cut by detach" in dead["frozen.weight"] and "cut by detach" in dead["frozen.bias"]


def test_integer_cast_is_named_as_the_cut():
    dead = diagnose(CutModel())["dead_parameters"].details["dead"]
    assert "cut by astype(int64)" in dead["rounded.weight"]
    assert "cut by astype(int64)" in dead["rounded.bias"]


def test_loss_through_argmax_names_argmax():
    from tinygrad_gpt.lab.m09_argmax import NextTokenModel
    probe = diagnose(NextTokenModel(gpt(), "argmax"))["dead_parameters"]
    assert probe.failed and "the loss itself has no gradient path" in probe.measured
    assert probe.details["cut_ops"] == ["argmax"]
    assert set(probe.details["dead"].values()) == {"cut by argmax"}


# ---------------------------------------------------------------------------- side effects

def test_parameters_grads_and_mode_are_restored_bit_for_bit():
    model = gpt(dropout=0.1, kv_cache_update=False)
    _, loss = model(np.arange(8)[None] % 65, np.arange(1, 9)[None] % 65)
    loss.backward()
    model.train()
    model.transformer.h[1].train(False)                     # a mixed mode must come back too
    arrays = {n: p.data for n, p in model.named_parameters()}
    before = {n: p.data.copy() for n, p in model.named_parameters()}
    grads = {n: p.grad.copy() for n, p in model.named_parameters()}
    modes = {n: m.training for n, m in model.named_modules()}
    diagnose(model)
    for n, p in model.named_parameters():
        assert p.data is arrays[n]
        assert p.data.tobytes() == before[n].tobytes(), n
        assert p.grad.tobytes() == grads[n].tobytes(), n
    assert {n: m.training for n, m in model.named_modules()} == modes


def test_deterministic_for_a_seed():
    a, b = diagnose(gpt(), seed=3).to_dict(), diagnose(gpt(), seed=3).to_dict()
    a["info"].pop("seconds"), b["info"].pop("seconds")
    assert a == b


# ---------------------------------------------------------------------------- report and CLI

def test_report_table_dict_and_html_section(tmp_path):
    report = diagnose(gpt(residual=False))
    table = report.table()
    for p in report:
        assert p.key in table
    assert "fix: add the skip path" in table
    assert json.loads(json.dumps(report.to_dict()))["flagged"] == [2]
    viz = pytest.importorskip("tinygrad_gpt.viz")
    page = viz.Report("t")
    report.add_to(page)
    html = page.html()
    assert "gradient_flow" in html and "add the skip path" in html
    if importlib.util.find_spec("matplotlib") is not None:
        assert "data:image/png;base64," in html     # gradient norm by depth


def test_report_lookup_names_the_probes():
    report = Report("m", [ProbeResult("causality", "c", (), "pass")])
    assert report["causality"].passed and report.ok
    with pytest.raises(KeyError, match="no probe 'nope'.*causality"):
        report["nope"]


def test_parse_overrides():
    assert parse_overrides(["residual=False", "n_layer=8", "norm_placement=post",
                            "ffn_hidden=None"]) == {"residual": False, "n_layer": 8,
                                                    "norm_placement": "post",
                                                    "ffn_hidden": None}
    with pytest.raises(ValueError, match="unknown key 'depth'"):
        parse_overrides(["depth=3"])
    with pytest.raises(ValueError, match="expected key=value"):
        parse_overrides(["residual"])


def test_cli_config_overrides_flag_the_switch(capsys, tmp_path):
    rc = main(["diagnose", "--config", "residual=False", "n_layer=8",
               "--json", str(tmp_path / "r.json")])
    out = capsys.readouterr().out
    assert rc == 1
    assert "gradient_flow" in out and "skip paths per layer [0, 0, 0, 0, 0, 0, 0, 0]" in out
    data = json.loads((tmp_path / "r.json").read_text())
    assert 2 in data["flagged"]


def test_cli_passes_with_exit_0_and_rejects_bad_config(capsys):
    assert main(["diagnose"]) == 0                       # the default config is the fixed GPT
    assert main(["diagnose", "--config", "pos_encoding=rope"]) == 0
    assert main(["diagnose", "--config", "n_head=3"]) == 2
    assert "n_embd 32 is not divisible by n_head 3" in capsys.readouterr().err


def test_cli_checkpoint(tmp_path, capsys):
    ckpt = pytest.importorskip("tinygrad_gpt.checkpoint")
    model = GPT(GPTConfig(**BASE, norm_placement="post"), seed=1)
    ckpt.save_checkpoint(tmp_path / "ck", model)
    assert main(["diagnose", "--checkpoint", str(tmp_path / "ck")]) == 1
    out = capsys.readouterr().out
    assert "norm_placement      1        FAIL" in out
    # overrides apply on top of the checkpoint's config, keeping its weights
    assert main(["diagnose", "--checkpoint", str(tmp_path / "ck"), "--config",
                 "norm_placement=pre", "pos_encoding=rope"]) == 0
    out = capsys.readouterr().out
    assert "norm_placement      1        PASS" in out


def test_tokenizer_that_cannot_read_text_is_flagged():
    from tinygrad_gpt.diagnostics.probes import PROBE_CHARS
    from tinygrad_gpt.tokenizers import CharTokenizer
    narrow = CharTokenizer("hello world, the quick brown fox", unk="?")
    probe = diagnose(gpt(vocab_size=narrow.vocab_size), tokenizer=narrow)["vocabulary"]
    assert probe.failed and "Z" in probe.details["lost_characters"]
    assert narrow.unknown_count == 0                    # probed on a copy
    wide = CharTokenizer(PROBE_CHARS)
    probe = diagnose(gpt(vocab_size=wide.vocab_size), tokenizer=wide)["vocabulary"]
    assert probe.passed and probe.details["lost_characters"] == []


class NumpyModel:
    """Logits as a plain numpy array: behaviour can be probed, the graph cannot."""

    def __init__(self, vocab: int = 70):
        self.table = np.random.default_rng(0).normal(0, 0.02, (vocab, vocab)).astype(np.float32)

    def __call__(self, idx):
        return self.table[np.asarray(idx)]


def test_model_without_a_graph_skips_the_graph_probes_with_the_reason():
    report = diagnose(NumpyModel())
    assert report["causality"].passed and report["batch_independence"].passed
    for key in ("gradient_flow", "final_norm", "dead_parameters", "ffn_width"):
        assert report[key].skipped and "no autograd graph" in report[key].reason
    assert report["dead_parameters"].mistakes == (9,)


def test_generate_without_use_cache_is_skipped_with_the_reason():
    class NoCacheGPT(GPT):
        def generate(self, idx, max_new_tokens):
            return super().generate(idx, max_new_tokens, top_k=1, use_cache=False)

    report = diagnose(NoCacheGPT(GPTConfig(**FIXED)))
    assert report["kv_cache"].skipped and "use_cache" in report["kv_cache"].reason
    assert report.ok


class LearnedTable(nn.Module):
    """Learned positions of 40 rows and no block_size anywhere: the probe finds the limit."""

    def __init__(self, vocab: int = 70, dim: int = 8, rows: int = 40):
        rng = np.random.default_rng(0)
        self.tok = nn.Embedding(vocab, dim, rng=rng)
        self.pos = nn.Embedding(rows, dim, rng=rng)

    def forward(self, idx):
        ids = np.asarray(idx)
        x = self.tok(ids) + self.pos(np.arange(ids.shape[1]))
        return x @ self.tok.weight.T


def test_position_limit_is_found_without_a_block_size():
    probe = diagnose(LearnedTable())["position_range"]
    assert probe.failed and probe.details["error_type"] == "IndexError"
    assert "at 41 tokens it crashes with IndexError" in probe.measured


def test_a_model_that_cannot_take_ids_is_refused_with_the_reason():
    def floats_only(x):
        raise TypeError("expects float features")

    with pytest.raises(ValueError, match="floats_only|function.*TypeError: expects float"):
        diagnose(floats_only)
    with pytest.raises(TypeError, match="must be callable"):
        diagnose(42)


@pytest.fixture(scope="module")
def trained_char_model(tmp_path_factory):
    """The README's recipe, small: a character tokenizer built from the built-in corpus, a GPT
    trained 200 steps with Trainer, saved as a checkpoint."""
    from tinygrad_gpt.checkpoint import save_checkpoint
    from tinygrad_gpt.data import default_corpus
    from tinygrad_gpt.tokenizers import CharTokenizer
    from tinygrad_gpt.train import TrainConfig, Trainer
    _, text = default_corpus()
    text = text[:100_000]
    tok = CharTokenizer(text)
    ids = np.asarray(tok.encode(text), dtype=np.int64)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=32, n_layer=2, n_head=2,
                          n_embd=32), seed=0)
    trainer = Trainer(model, ids[:90_000], ids[90_000:],
                      TrainConfig(steps=200, batch_size=4, lr=3e-3, warmup=20, eval_interval=0,
                                  log_interval=1000), tokenizer=tok, progress=False)
    trainer.fit()
    path = save_checkpoint(tmp_path_factory.mktemp("trained") / "ck", model, tokenizer=tok)
    return model, tok, text, path


@pytest.mark.slow
def test_a_correctly_built_trained_model_is_not_flagged(trained_char_model, capsys):
    from tinygrad_gpt.diagnostics.weights import TRAINED
    model, tok, text, path = trained_char_model
    before = {n: p.data.copy() for n, p in model.named_parameters()}
    report = diagnose(model, tokenizer=tok)
    assert report.info["weights"] == TRAINED and "have moved" in report.info["weights_evidence"]
    assert report.ok, report.table()
    # the initialisation probes ran on a fresh copy, and say so; its first loss is ~ln(V)
    for key in ("final_norm", "gradient_flow"):
        assert report[key].measured.startswith("on a freshly initialised copy")
    assert abs(report["final_norm"].details["init_loss"] - np.log(tok.vocab_size)) < 0.2
    # on the trained weights the same check would fail: random targets after training cost
    # more than ln(V), which is why it must not be applied to them
    ids = np.random.default_rng(0).integers(0, tok.vocab_size, (4, 16))
    _, loss = model(ids, targets=np.random.default_rng(1).integers(0, tok.vocab_size, (4, 16)))
    assert loss.item() > np.log(tok.vocab_size) + 0.5
    # the closed character alphabet refuses probe characters loudly: not a mistake...
    vocab = report["vocabulary"]
    assert vocab.passed and vocab.details["silent_characters"] == []
    assert len(vocab.details["refused_characters"]) >= 5 and "closed alphabet" in vocab.measured
    # ...and it reads every character of its own training text
    assert diagnose(model, tokenizer=tok, text=text)["vocabulary"].passed
    assert not diagnose(model, tokenizer=tok, text=text + "\u00e9")["vocabulary"].passed
    assert all(np.array_equal(before[n], p.data) for n, p in model.named_parameters())
    # the same through the command line, from the checkpoint
    assert main(["diagnose", "--checkpoint", str(path)]) == 0, capsys.readouterr().out
    out = capsys.readouterr().out
    assert "0 failed" in out and "weights: trained" in out


def test_weights_at_init_are_told_from_trained_ones():
    from tinygrad_gpt.diagnostics.weights import INIT, TRAINED, UNKNOWN, weights_state
    model = gpt()
    params = list(model.named_parameters())
    state = weights_state(model, params)
    assert state.state == INIT and state.fresh is not None
    name, p = next((n, p) for n, p in params if n.endswith("ln_1.weight"))
    p.data = p.data + np.linspace(0, 1e-3, p.data.size, dtype=p.data.dtype)   # one step moved it
    state = weights_state(model, params)
    assert state.state == TRAINED and name in state.why
    # a model that cannot be rebuilt from its config: constants still there mean init
    plain = object()                                       # no config to rebuild from
    named = [("a", Tensor(np.ones((2, 2), np.float32))), ("b", Tensor(np.eye(2)))]
    assert weights_state(plain, named).state == INIT
    assert weights_state(plain, named[1:]).state == UNKNOWN


def test_tokenizer_that_collapses_text_silently_is_flagged_with_text():
    from tinygrad_gpt.tokenizers import CharTokenizer
    strict = CharTokenizer("hello world")                 # refuses what it has not seen
    probe = diagnose(gpt(vocab_size=strict.vocab_size), tokenizer=strict)["vocabulary"]
    assert probe.passed and "Z" in probe.details["refused_characters"]
    probe = diagnose(gpt(vocab_size=strict.vocab_size), tokenizer=strict,
                     text="hello Zak")["vocabulary"]
    assert probe.failed and probe.details["refused_characters"] == ["Z", "a", "k"]
    assert "3 refused with an error (Zak)" in probe.measured
