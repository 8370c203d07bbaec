"""`tinygrad-gpt train` and `tinygrad-gpt sample`: what they write, what they print, resuming
through the command line, and their error messages."""
import json
import re

import numpy as np
import pytest
from safetensors.numpy import load_file

from tinygrad_gpt.checkpoint import load_checkpoint
from tinygrad_gpt.cli import main
from tinygrad_gpt.sample import sample_text
from tinygrad_gpt.cli.train import parse_config_overrides

TEXT = "to be or not to be, that is the question.\n" * 60
SMALL = ["--config", "n_layer=1", "n_head=2", "n_embd=16", "block_size=16",
         "--batch-size", "4", "--eval-batches", "1", "--no-progress"]


@pytest.fixture
def corpus(tmp_path):
    p = tmp_path / "corpus.txt"
    p.write_text(TEXT, encoding="utf-8")
    return p


def train(corpus, out, *extra):
    return main(["train", "--corpus", str(corpus), "--out", str(out), *SMALL, *extra])


def test_train_writes_a_checkpoint_with_the_requested_config(corpus, tmp_path, capsys):
    out = tmp_path / "ckpt"
    assert train(corpus, out, "--steps", "3", "--config", "pos_encoding=rope",
                 "ffn_hidden=24") == 0
    ckpt = load_checkpoint(out)
    assert (ckpt.config.n_layer, ckpt.config.n_embd, ckpt.config.block_size) == (1, 16, 16)
    assert ckpt.config.pos_encoding == "rope" and ckpt.config.ffn_hidden == 24
    assert ckpt.config.vocab_size == len(set(TEXT)) == ckpt.tokenizer.vocab_size
    assert ckpt.state["step"] == 3 and ckpt.optimizer_state["step_count"] == 3
    assert json.loads((ckpt.path / "config.json").read_text())["n_head"] == 2
    assert capsys.readouterr().out == ""                  # --no-progress: silent


def test_sample_prints_the_prompt_and_its_continuation(corpus, tmp_path, capsys):
    out = tmp_path / "ckpt"
    assert train(corpus, out, "--steps", "2") == 0
    args = ["sample", "--checkpoint", str(out), "--prompt", "to be", "--max-new-tokens", "30",
            "--seed", "3"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("to be") and len(printed) == len("to be") + 30 + 1
    assert main(args) == 0
    assert capsys.readouterr().out == printed              # same seed, same text
    ckpt = load_checkpoint(out)
    assert sample_text(ckpt.model, ckpt.tokenizer, "to be", 30, seed=3)[0] + "\n" == printed
    assert main(args + ["--no-cache"]) == 0
    assert capsys.readouterr().out == printed              # the cache changes nothing


def test_sample_several_and_greedy(corpus, tmp_path, capsys):
    out = tmp_path / "ckpt"
    assert train(corpus, out, "--steps", "2") == 0
    assert main(["sample", "--checkpoint", str(out), "--num-samples", "2",
                 "--temperature", "0", "--max-new-tokens", "10"]) == 0
    lines = capsys.readouterr().out.split("\n")
    assert lines[0] == "--- sample 1 ---"
    assert "--- sample 2 ---" in lines
    first = "\n".join(lines[1:lines.index("--- sample 2 ---")])
    second = "\n".join(lines[lines.index("--- sample 2 ---") + 1:]).rstrip("\n")
    assert first == second and len(first) == 10           # greedy rows agree; no prompt echo


def test_resume_from_the_command_line_is_bit_exact(corpus, tmp_path, capsys):
    straight, split = tmp_path / "a", tmp_path / "b"
    flags = ["--lr", "5e-3", "--warmup", "1", "--seed", "4", "--grad-clip", "0"]
    assert train(corpus, straight, "--steps", "6", *flags) == 0
    assert train(corpus, split, "--steps", "6", "--until", "3", *flags) == 0
    assert load_checkpoint(split).state["step"] == 3
    # the settings come back from the checkpoint
    assert main(["train", "--corpus", str(corpus), "--out", str(split), "--resume",
                 "--no-progress"]) == 0
    assert load_checkpoint(split).state["train_config"] == \
        load_checkpoint(straight).state["train_config"]
    a = load_file(load_checkpoint(straight).path / "model.safetensors")
    b = load_file(load_checkpoint(split).path / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert main(["train", "--corpus", str(corpus), "--out", str(split), "--steps", "8",
                 "--resume", "--seed", "5", "--no-progress"]) == 2
    assert "--resume: --seed cannot change when resuming" in capsys.readouterr().err


def test_progress_output_names_the_corpus_and_the_result(corpus, tmp_path, capsys):
    assert main(["train", "--corpus", str(corpus), "--out", str(tmp_path / "c"), "--steps", "2",
                 *SMALL[:-1]]) == 0
    captured = capsys.readouterr()
    assert re.search(r"^corpus corpus\.txt: 2,520 characters, 2,520 tokens, vocab 16; model "
                     r"[\d,]+ parameters$", captured.out, re.M)
    assert re.search(r"^saved .*c at step 2: val loss \d\.\d{4}$", captured.out, re.M)


@pytest.mark.parametrize("extra, message", [
    (["--config", "n_layers=2"], "--config: unknown key 'n_layers' (known: vocab_size, "),
    (["--config", "n_layer=two"], "--config n_layer=two: expected int"),
    (["--config", "bias=maybe"], "--config bias=maybe: expected bool"),
    (["--config", "ffn_hidden=x"], "--config ffn_hidden=x: expected int or None"),
    (["--config", "vocab_size=10"], "--config: vocab_size is set by the tokenizer"),
    (["--config", "n_layer"], "--config: expected key=value, got 'n_layer'"),
    (["--config", "n_head=3"], "GPTConfig: n_embd 16 is not divisible by n_head 3"),
    (["--steps", "0"], "--steps must be a positive integer, got 0"),
    (["--seed", "-1"], "--seed must be an integer >= 0, got -1"),
    (["--min-lr", "nan"], "--min-lr must be a finite number in [0, inf), got nan"),
    (["--min-lr", "-1"], "--min-lr must be a finite number in [0, inf), got -1.0"),
    (["--weight-decay", "nan"], "--weight-decay must be a finite number in [0, inf), got nan"),
    (["--weight-decay", "-0.1"], "--weight-decay must be a finite number in [0, inf), got -0.1"),
    (["--lr", "inf"], "--lr must be a finite number in (0, inf), got inf"),
    (["--beta2", "1"], "--beta2 must be a finite number in [0, 1), got 1.0"),
    (["--eps", "0"], "--eps must be a finite number in (0, inf), got 0.0"),
    (["--grad-clip", "nan"], "--grad-clip must be a finite number in (0, inf), got nan"),
    (["--config", "layer_norm_eps=inf"], "GPTConfig: layer_norm_eps must be a finite number > 0,"
                                         " got inf"),
    (["--out", ""], "--out: the path is empty"),
    (["--steps", "5", "--until", "6"], "--until 6: must be after the current step 0 and at "
                                       "most --steps 5"),
])
def test_train_argument_errors(corpus, tmp_path, capsys, extra, message):
    assert train(corpus, tmp_path / "c", *extra) == 2
    err = capsys.readouterr().err
    assert err.startswith("tinygrad-gpt train: error: ") and message in err
    assert not (tmp_path / "c").exists()


def test_train_refuses_to_overwrite_and_resume_needs_a_checkpoint(corpus, tmp_path, capsys):
    out = tmp_path / "c"
    assert train(corpus, out, "--steps", "1") == 0
    assert train(corpus, out, "--steps", "1") == 2
    assert (f"tinygrad-gpt train: error: {out} already holds a checkpoint: pass --resume to "
            "continue it, or choose another --out") in capsys.readouterr().err
    assert main(["train", "--corpus", str(corpus), "--out", str(tmp_path / "none"),
                 "--resume", "--no-progress"]) == 2
    assert f"--resume: {tmp_path / 'none'} holds no checkpoint" in capsys.readouterr().err
    assert main(["train", "--corpus", str(tmp_path / "missing.txt"), "--out",
                 str(tmp_path / "d")]) == 2
    assert "load_corpus: no file at" in capsys.readouterr().err


def test_sample_errors(corpus, tmp_path, capsys):
    assert main(["sample", "--checkpoint", str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err == (f"tinygrad-gpt sample: error: load_checkpoint: no "
                                       f"checkpoint directory at {tmp_path / 'nope'}\n")
    out = tmp_path / "c"
    assert train(corpus, out, "--steps", "1") == 0
    assert main(["sample", "--checkpoint", str(out), "--prompt", "TO BE"]) == 2
    err = capsys.readouterr().err
    assert err == ("tinygrad-gpt sample: error: --prompt: the character 'T' (U+0054) at position "
                   "0 is not in this checkpoint's vocabulary of 16 characters (those of its "
                   "training corpus); use only those characters in --prompt\n")
    assert main(["sample", "--checkpoint", str(out), "--top-k", "99"]) == 2
    assert "generate: top_k must be in 1..16, got 99" in capsys.readouterr().err


def test_parse_config_overrides_types():
    assert parse_config_overrides(["n_layer=3", "dropout=0.1", "tie_weights=false",
                                   "ffn_hidden=None", "norm_placement=post", "ln_axis=0"]) == {
        "n_layer": 3, "dropout": 0.1, "tie_weights": False, "ffn_hidden": None,
        "norm_placement": "post", "ln_axis": 0}


def _example(name: str):
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parent.parent / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"example_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_the_shakespeare_example_trains_saves_and_samples(corpus, tmp_path, capsys):
    out = tmp_path / "run"
    assert _example("train_shakespeare").main(["--corpus", str(corpus), "--steps", "3",
                                               "--out", str(out), "--prompt", "to be",
                                               "--sample-tokens", "20"]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"^3 steps in \d+ s: validation loss \d\.\d{3} \([\d.]+ perplexity\)$",
                     printed, re.M)
    sample = printed.rstrip("\n").split("--- sample ---\n")[1]
    assert sample.startswith("to be") and len(sample) == len("to be") + 20
    assert load_checkpoint(out).state["step"] == 3


def test_the_autograd_example_gets_the_hand_derived_gradients(capsys):
    module = _example("autograd_basics")
    module.chain_rule()
    module.broadcasting()
    module.hooks()
    out = capsys.readouterr().out
    assert "dy/da = 32 (by hand 32); dy/db = -64 (by hand -64)" in out
    assert "bias.grad = [4. 4. 4.]" in out and "d/dh = [10.  0. 10.]" in out
