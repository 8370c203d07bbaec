"""Trainer (schedule, clipping, callbacks, evaluation, divergence) and checkpoints (round trip,
bit-exact resume, atomic replacement, errors that name the file)."""
import hashlib
import json
import math
import re
import sys

import numpy as np
import pytest

from tinygrad_gpt import GPT, GPTConfig, optim
from tinygrad_gpt.checkpoint import (CheckpointError, load_checkpoint, load_optimizer_state,
                                     resolve_checkpoint, save_checkpoint)
from tinygrad_gpt.tokenizers import CharTokenizer
from tinygrad_gpt.train import Callback, GradNormRecorder, Trainer, TrainConfig, grad_norm

TEXT = "the quick brown fox jumps over the lazy dog. " * 40


@pytest.fixture(scope="module")
def corpus():
    tok = CharTokenizer(TEXT)
    ids = np.asarray(tok.encode(TEXT), dtype=np.int64)
    return tok, ids[:1500], ids[1500:]


def tiny(vocab: int, **kw) -> GPTConfig:
    base = dict(vocab_size=vocab, block_size=16, n_layer=2, n_head=2, n_embd=16)
    base.update(kw)
    return GPTConfig(**base)


def tcfg(**kw) -> TrainConfig:
    base = dict(steps=8, batch_size=4, lr=3e-3, warmup=2, eval_interval=0, eval_batches=2)
    base.update(kw)
    return TrainConfig(**base)


def params_of(model: GPT) -> dict:
    return {k: v.copy() for k, v in model.state_dict().items()}


def assert_same_params(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def rewrite(ckpt_dir, name: str, data: bytes) -> None:
    """Replace one file of a checkpoint and fix its sha256 in the manifest, as a consistent
    but different checkpoint would be."""
    (ckpt_dir / name).write_bytes(data)
    manifest = json.loads((ckpt_dir / "checkpoint.json").read_text())
    manifest["files"][name] = hashlib.sha256(data).hexdigest()
    (ckpt_dir / "checkpoint.json").write_text(json.dumps(manifest))


# ---------------------------------------------------------------------------- Trainer
def test_trainer_learns_follows_the_schedule_and_records_history(corpus):
    tok, train, val = corpus
    model = GPT(tiny(tok.vocab_size))
    trainer = Trainer(model, train, val, tcfg(steps=40, lr=1e-2, warmup=5, min_lr=1e-3,
                                              eval_interval=20), progress=False)
    history = trainer.fit()
    assert trainer.step == 40 and len(history) == 40
    lrs = [h["lr"] for h in history]
    assert lrs == [optim.warmup_cosine(s, 1e-2, 5, 40, 1e-3) for s in range(40)]
    assert [s for s, _ in trainer.evals] == [20, 40]
    assert history[0]["loss"] > 2.5 and trainer.evals[-1][1] < 2.5
    assert all(h["tokens_per_s"] > 0 and h["grad_norm"] > 0 for h in history)


def test_on_step_sees_raw_gradients_before_clipping_and_before_the_update(corpus):
    tok, train, val = corpus
    model = GPT(tiny(tok.vocab_size))
    seen = []

    class Probe(Callback):
        def on_step(self, trainer, step, metrics):
            w = trainer.model.transformer.wte.weight
            seen.append((step, metrics["grad_norm"], grad_norm(trainer.model.parameters()),
                         w.data.copy()))

    after = []
    trainer = Trainer(model, train, val, tcfg(steps=3, grad_clip=1e-3), progress=False,
                      callbacks=[Probe(), lambda t, s, m: after.append(s)])
    before = model.transformer.wte.weight.data.copy()
    trainer.fit()
    assert [s for s, *_ in seen] == after == [0, 1, 2]
    for _, reported, measured, _ in seen:
        assert reported == pytest.approx(measured) and reported > 1e-2   # not yet clipped
    np.testing.assert_array_equal(seen[0][3], before)                   # not yet updated
    assert not np.array_equal(seen[1][3], before)


def test_grad_norm_recorder_groups_raw_gradients_by_block(corpus):
    tok, train, _ = corpus
    model = GPT(tiny(tok.vocab_size, n_layer=3, tie_weights=False))
    recorder = GradNormRecorder(every=2)
    manual = []

    def by_hand(trainer, step, metrics):
        h1 = [p.grad for n, p in trainer.model.named_parameters() if n.startswith(
            "transformer.h.1.")]
        manual.append(math.sqrt(sum(float((g.astype(np.float64) ** 2).sum()) for g in h1)))

    Trainer(model, train, None, tcfg(steps=5, grad_clip=1e-6), progress=False,
            callbacks=[recorder, by_hand]).fit()
    assert recorder.steps == [0, 2, 4]
    assert sorted(recorder.norms) == ["h.0", "h.1", "h.2", "lm_head", "ln_f", "wpe", "wte"]
    np.testing.assert_allclose(recorder.norms["h.1"], manual[::2], rtol=1e-5)
    assert min(recorder.norms["h.1"]) > 1e-4            # raw gradients, not clipped to 1e-6


def test_clipping_caps_the_update(corpus):
    tok, train, _ = corpus
    moved = {}
    for clip in (None, 1e-4):
        model = GPT(tiny(tok.vocab_size))
        start = params_of(model)
        Trainer(model, train, None, tcfg(steps=1, warmup=0, lr=1.0, grad_clip=clip),
                progress=False, optimizer=optim.SGD(model.parameters(), lr=1.0)).fit()
        end = params_of(model)
        moved[clip] = math.sqrt(sum(float(((end[k] - start[k]) ** 2).sum()) for k in start
                                    if k != "lm_head.weight"))
    assert moved[1e-4] == pytest.approx(1e-4, rel=1e-3)   # SGD lr 1: the step is the gradient
    assert moved[None] > 1e-2


def test_evaluating_does_not_change_training(corpus):
    tok, train, val = corpus
    runs = []
    for interval in (0, 1):
        model = GPT(tiny(tok.vocab_size, dropout=0.1))
        Trainer(model, train, val, tcfg(eval_interval=interval), progress=False).fit()
        runs.append(params_of(model))
    assert_same_params(*runs)


def test_evaluation_is_the_same_fixed_batches(corpus):
    tok, train, val = corpus
    trainer = Trainer(GPT(tiny(tok.vocab_size)), train, val, tcfg(), progress=False)
    assert trainer.evaluate() == trainer.evaluate()
    assert trainer.evaluate(3) != trainer.evaluate(2)


def test_a_callback_can_stop_training(corpus):
    tok, train, _ = corpus

    def stop_at_2(trainer, step, metrics):
        trainer.should_stop = step == 2

    trainer = Trainer(GPT(tiny(tok.vocab_size)), train, None, tcfg(), progress=False,
                      callbacks=[stop_at_2])
    trainer.fit()
    assert trainer.step == 3 and not trainer.diverged


def test_a_non_finite_gradient_stops_without_applying_the_step(corpus):
    tok, train, _ = corpus
    model = GPT(tiny(tok.vocab_size))

    def poison(trainer, step, metrics):
        if step == 2:
            trainer.model.transformer.wte.weight.grad[0, 0] = np.nan

    snapshots = []
    trainer = Trainer(model, train, None, tcfg(), progress=False,
                      callbacks=[poison, lambda t, s, m: snapshots.append(params_of(t.model))])
    trainer.fit()
    assert trainer.diverged and trainer.step == 2 and len(trainer.history) == 3
    assert_same_params(params_of(model), snapshots[2])
    assert all(np.isfinite(v).all() for v in params_of(model).values())


def test_data_errors_name_the_limit(corpus):
    tok, train, _ = corpus
    model = GPT(tiny(tok.vocab_size))
    with pytest.raises(ValueError, match=re.escape(
            "Trainer: val_data has 16 tokens, too few for block_size 16 (need more than 16)")):
        Trainer(model, train, train[:16])
    with pytest.raises(ValueError, match=re.escape(
            "Trainer: train_data must be a 1-D array of integer token ids, got shape (2, 750) "
            "dtype int64")):
        Trainer(model, train.reshape(2, -1))
    with pytest.raises(ValueError, match=re.escape(
            "TrainConfig: steps must be a positive integer, got 0")):
        TrainConfig(steps=0)


def test_progress_falls_back_to_plain_lines_without_tqdm(corpus, monkeypatch, capsys):
    tok, train, val = corpus
    monkeypatch.setitem(sys.modules, "tqdm", None)        # makes `import tqdm...` fail
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    trainer = Trainer(GPT(tiny(tok.vocab_size)), train, val,
                      tcfg(steps=4, eval_interval=2, eval_batches=1),
                      progress=True)
    trainer.config.log_interval = 2
    trainer.fit()
    out = capsys.readouterr().out
    assert re.search(r"^train 2/4 steps, \d+s elapsed, about \d+s left, loss \d\.\d+, lr "
                     r"0\.003$", out, re.M)
    assert re.search(r"^step 4: val loss \d\.\d{4}$", out, re.M)


# ---------------------------------------------------------------------------- checkpoints
def test_checkpoint_round_trip(corpus, tmp_path):
    tok, train, val = corpus
    model = GPT(tiny(tok.vocab_size, pos_encoding="rope", dropout=0.1), seed=3)
    trainer = Trainer(model, train, val, tcfg(steps=3), tokenizer=tok, progress=False)
    trainer.fit()
    path = trainer.save(tmp_path / "ckpt")
    ckpt = load_checkpoint(path)
    assert ckpt.config == model.config
    assert_same_params(params_of(ckpt.model), params_of(model))
    assert ckpt.model.lm_head.weight is ckpt.model.transformer.wte.weight
    assert ckpt.tokenizer.encode(TEXT[:50]) == tok.encode(TEXT[:50])
    assert ckpt.state["step"] == 3
    assert ckpt.optimizer_state["step_count"] == 3
    assert ckpt.optimizer_state["groups"][0]["betas"] == (0.9, 0.95)
    x = train[:16][None]
    np.testing.assert_array_equal(ckpt.model(x)[0].data, model(x)[0].data)
    assert sorted(p.name for p in path.iterdir()) == [
        "checkpoint.json", "config.json", "model.safetensors", "optimizer.safetensors",
        "state.json", "tokenizer.txt"]
    from safetensors.numpy import load_file
    assert set(load_file(path / "model.safetensors")) == set(model.state_dict())


@pytest.mark.parametrize("dropout", [0.0, 0.1])
def test_resume_continues_bit_for_bit(corpus, tmp_path, dropout):
    tok, train, val = corpus
    n = 4
    straight = Trainer(GPT(tiny(tok.vocab_size, dropout=dropout)), train, val,
                       tcfg(steps=2 * n, eval_interval=3), tokenizer=tok, progress=False)
    straight.fit()

    first = Trainer(GPT(tiny(tok.vocab_size, dropout=dropout)), train, val,
                    tcfg(steps=2 * n, eval_interval=3), tokenizer=tok, progress=False,
                    out_dir=tmp_path / "run")
    first.fit(n)
    assert first.step == n
    del first
    resumed = Trainer.resume(tmp_path / "run", train, val, progress=False)
    assert resumed.step == n and resumed.tokenizer.vocab_size == tok.vocab_size
    resumed.fit()
    assert resumed.step == 2 * n
    assert_same_params(params_of(resumed.model), params_of(straight.model))
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in straight.history]
    ours, theirs = resumed.optimizer.state_dict(), straight.optimizer.state_dict()
    for a, b in zip(ours["state"], theirs["state"]):
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])
    assert [s for s, _ in resumed.evals] == [3, 4, 6, 8]   # 4: where the first run ended


def test_saving_again_replaces_the_checkpoint_whole_and_leaves_no_temporaries(corpus, tmp_path):
    tok, train, _ = corpus
    model = GPT(tiny(tok.vocab_size))
    save_checkpoint(tmp_path / "c", model, tokenizer=tok)
    other = GPT(tiny(tok.vocab_size, n_embd=32), seed=1)
    save_checkpoint(tmp_path / "c", other)              # no tokenizer this time
    ckpt = load_checkpoint(tmp_path / "c")
    assert ckpt.config.n_embd == 32 and ckpt.tokenizer is None
    assert not (ckpt.path / "tokenizer.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == [
        "LATEST", "ckpt-000001", "ckpt-000002"]


def test_a_failed_save_keeps_the_old_checkpoint(corpus, tmp_path):
    tok, train, _ = corpus
    model = GPT(tiny(tok.vocab_size))
    save_checkpoint(tmp_path / "c", model, tokenizer=tok)

    class Broken:
        def save(self, path):
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path / "c", GPT(tiny(tok.vocab_size), seed=5), tokenizer=Broken())
    assert_same_params(params_of(load_checkpoint(tmp_path / "c").model), params_of(model))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == ["LATEST", "ckpt-000001"]


def test_refuses_to_replace_a_directory_that_is_not_a_checkpoint(corpus, tmp_path):
    tok, _, _ = corpus
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("keep me")
    with pytest.raises(CheckpointError, match=re.escape(
            f"{tmp_path / 'notes'} is a non-empty directory without a checkpoint; refusing to "
            "write into it (choose an empty or new directory)")):
        save_checkpoint(tmp_path / "notes", GPT(tiny(tok.vocab_size)))
    assert (tmp_path / "notes" / "todo.txt").read_text() == "keep me"


def test_load_errors_name_the_file(corpus, tmp_path):
    tok, _, _ = corpus
    c = tmp_path / "c"
    with pytest.raises(CheckpointError, match=re.escape(
            f"load_checkpoint: no checkpoint directory at {c}")):
        load_checkpoint(c)
    v = save_checkpoint(c, GPT(tiny(tok.vocab_size)), tokenizer=tok)

    data = bytearray((v / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (v / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=re.escape(
            f"{v / 'model.safetensors'}: contents do not match the sha256 in checkpoint.json")):
        load_checkpoint(c)

    v = save_checkpoint(c, GPT(tiny(tok.vocab_size)), tokenizer=tok)
    cfg = json.loads((v / "config.json").read_text())
    rewrite(v, "config.json", json.dumps({**cfg, "n_embd": 32}).encode())
    with pytest.raises(CheckpointError, match=re.escape(
            f"{v / 'config.json'}: vocab_size 28 and n_embd 32 need transformer.wte.weight of "
            "shape (28, 32), model.safetensors has (28, 16)")):
        load_checkpoint(c)
    rewrite(v, "config.json", json.dumps({**cfg, "final_norm": False}).encode())
    with pytest.raises(CheckpointError, match=re.escape(
            f"{v / 'model.safetensors'}: unexpected tensors ['transformer.ln_f.bias', "
            "'transformer.ln_f.weight'] that the model built from config.json does not have")):
        load_checkpoint(c)
    rewrite(v, "config.json", json.dumps({**cfg, "n_layer": 3}).encode())
    with pytest.raises(CheckpointError, match=re.escape(
            f"{v / 'config.json'}: n_layer 3, but model.safetensors holds 2 blocks (allowed: "
            "n_layer = 2)")):
        load_checkpoint(c)
    rewrite(v, "config.json", json.dumps({**cfg, "n_heads": 2}).encode())
    with pytest.raises(CheckpointError, match=re.escape(
            f"{v / 'config.json'}: GPTConfig: unknown fields ['n_heads']")):
        load_checkpoint(c)
    rewrite(v, "config.json", b"{not json")
    with pytest.raises(CheckpointError, match=re.escape(f"{v / 'config.json'}: not valid JSON")):
        load_checkpoint(c)
    (v / "config.json").unlink()
    with pytest.raises(CheckpointError, match=re.escape(
            f"{v / 'config.json'}: file is missing (listed in checkpoint.json)")):
        load_checkpoint(c)
    (v / "checkpoint.json").unlink()
    with pytest.raises(CheckpointError, match=re.escape(
            f"{c / 'LATEST'}: names ckpt-000002, which is missing or incomplete")):
        load_checkpoint(c)
    (c / "LATEST").unlink()     # no pointer: the newest complete version is found
    assert resolve_checkpoint(c) == c / "ckpt-000001"


def test_optimizer_state_that_does_not_fit_names_the_file(corpus, tmp_path):
    tok, train, _ = corpus
    trainer = Trainer(GPT(tiny(tok.vocab_size)), train, None, tcfg(steps=1), progress=False)
    trainer.fit()
    path = trainer.save(tmp_path / "c")
    ckpt = load_checkpoint(path)
    other = GPT(tiny(tok.vocab_size, n_layer=1))
    with pytest.raises(CheckpointError, match=re.escape(
            f"{path / 'optimizer.safetensors'}: optimizer.load_state_dict: state for")):
        load_optimizer_state(ckpt, optim.AdamW(optim.weight_decay_groups(other, 0.1)))
    bare = tmp_path / "bare"
    bare = save_checkpoint(bare, GPT(tiny(tok.vocab_size)))
    with pytest.raises(CheckpointError, match=re.escape(
            f"{bare}: has no trainer and optimizer state to resume from")):
        Trainer.resume(bare, train)


def test_without_safetensors_the_error_says_what_to_install(corpus, tmp_path, monkeypatch):
    tok, _, _ = corpus
    monkeypatch.setitem(sys.modules, "safetensors", None)
    monkeypatch.setitem(sys.modules, "safetensors.numpy", None)
    with pytest.raises(ImportError, match=re.escape(
            "checkpoints store tensors with safetensors: pip install safetensors")):
        save_checkpoint(tmp_path / "c", GPT(tiny(tok.vocab_size)))
    assert list(tmp_path.iterdir()) == []
