"""Nothing lost: checkpoints under crashes at every point of a save, concurrent readers, full
disks and signals; hostile files (sizes, structure, NaN) refused with clear errors."""
import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from tinygrad_gpt import GPT, GPTConfig, optim
from tinygrad_gpt import checkpoint as ck
from tinygrad_gpt.checkpoint import (CheckpointError, load_checkpoint, resolve_checkpoint,
                                     save_checkpoint)
from tinygrad_gpt.cli import main
from tinygrad_gpt.tokenizers import CharTokenizer
from tinygrad_gpt.train import CheckpointSaveError, Trainer, TrainConfig

ROOT = Path(__file__).resolve().parent.parent
TEXT = "the quick brown fox jumps over the lazy dog. " * 40
TOK = CharTokenizer(TEXT)
IDS = np.asarray(TOK.encode(TEXT), dtype=np.int64)


def tiny(**kw) -> GPTConfig:
    return GPTConfig(**{**dict(vocab_size=TOK.vocab_size, block_size=16, n_layer=2, n_head=2,
                               n_embd=16), **kw})


def params(model: GPT) -> dict:
    return {k: v.copy() for k, v in model.state_dict().items()}


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def rewrite(folder: Path, name: str, data: bytes) -> None:
    """Replace one file of a version folder and fix its sha256: a consistent, hostile file."""
    (folder / name).write_bytes(data)
    manifest = json.loads((folder / "checkpoint.json").read_text())
    manifest["files"][name] = hashlib.sha256(data).hexdigest()
    (folder / "checkpoint.json").write_text(json.dumps(manifest))


def trained(out: Path | None = None, steps: int = 2) -> Trainer:
    t = Trainer(GPT(tiny()), IDS[:1500], IDS[1500:], TrainConfig(
        steps=steps, batch_size=2, warmup=1, eval_interval=0, eval_batches=1), tokenizer=TOK,
        progress=False, out_dir=out)
    t.fit()
    return t


def run_py(code: str, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout, env=env, **kw)


@contextlib.contextmanager
def small_tmpfs(where: Path, size: str, options: str = ""):
    where.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}{options}", "tmpfs",
                        str(where)],
                       capture_output=True, text=True)
    if r.returncode:
        pytest.skip(f"cannot mount a small tmpfs here ({r.stderr.strip() or r.returncode}): "
                    "a full filesystem needs root and mount permission")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


# ---------------------------------------------------------------------------- layout
def test_foreign_files_survive_every_save_and_versions_are_pruned(tmp_path):
    out = tmp_path / "run"
    save_checkpoint(out, GPT(tiny()), tokenizer=TOK)
    (out / "notes.txt").write_text("mine")
    (out / "samples").mkdir()
    (out / "samples" / "a.txt").write_text("also mine")
    models = [GPT(tiny(), seed=s) for s in range(3)]
    for m in models:
        v = save_checkpoint(out, m, tokenizer=TOK)
    assert v == out / "ckpt-000004" and (out / "LATEST").read_text() == "ckpt-000004\n"
    assert sorted(p.name for p in out.iterdir()) == [
        "LATEST", "ckpt-000003", "ckpt-000004", "notes.txt", "samples"]
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "samples" / "a.txt").read_text() == "also mine"
    assert same(params(load_checkpoint(out).model), params(models[-1]))


def test_a_flat_checkpoint_from_before_versions_loads_resumes_and_upgrades(tmp_path):
    """The layout written before versioned folders: the same files and manifest directly in
    OUT. Made here from a version folder (its files are byte for byte what that code wrote)."""
    first = trained(steps=2)
    v = first.save(tmp_path / "staging")
    flat = tmp_path / "old"
    shutil.copytree(v, flat)
    (flat / "notes.txt").write_text("mine")
    assert sorted(p.name for p in flat.iterdir()) == [
        "checkpoint.json", "config.json", "model.safetensors", "notes.txt",
        "optimizer.safetensors", "state.json", "tokenizer.txt"]
    ckpt = load_checkpoint(flat)
    assert ckpt.path == flat and same(params(ckpt.model), params(first.model))
    resumed = Trainer.resume(flat, IDS[:1500], IDS[1500:], progress=False, out_dir=flat)
    resumed.config.steps = 4
    resumed.fit()
    assert sorted(p.name for p in flat.iterdir()) == ["LATEST", "ckpt-000001", "notes.txt"]
    assert load_checkpoint(flat).state["step"] == 4


def test_a_symlinked_out_stays_a_symlink_and_umask_is_honoured(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    old = os.umask(0o027)
    try:
        v = save_checkpoint(link, GPT(tiny()))
        save_checkpoint(link, GPT(tiny()))
    finally:
        os.umask(old)
    assert link.is_symlink() and (real / "LATEST").is_file()
    assert (real / v.name / "model.safetensors").stat().st_mode & 0o777 == 0o640
    assert (real / v.name).stat().st_mode & 0o777 == 0o750


# ---------------------------------------------------------------------------- crashes
def test_a_crash_at_every_point_of_a_save_leaves_the_last_complete_checkpoint(tmp_path,
                                                                              monkeypatch):
    """At each point of a save, copy the folder as it is on disk: exactly what a kill there
    leaves. Each copy loads the last complete checkpoint, and the next save cleans up."""
    out = tmp_path / "run"
    a, b = GPT(tiny(), seed=1), GPT(tiny(), seed=2)
    save_checkpoint(out, a, tokenizer=TOK)
    snapshots = {}

    def hook(point: str) -> None:
        snapshots[point] = tmp_path / f"kill-{len(snapshots)}"
        shutil.copytree(out, snapshots[point], symlinks=True)

    monkeypatch.setattr(ck, "_save_hook", hook)
    save_checkpoint(out, b, tokenizer=TOK)
    monkeypatch.setattr(ck, "_save_hook", None)
    assert list(snapshots) == list(ck.SAVE_POINTS)
    committed = False
    for point, snap in snapshots.items():
        committed = committed or point == "pointer written"
        want = b if committed else a
        assert same(params(load_checkpoint(snap).model), params(want)), point
        if point in ("files written", "manifest written"):
            assert any(p.name.startswith(".ckpt-tmp-") for p in snap.iterdir()), point
        c = GPT(tiny(), seed=3)
        save_checkpoint(snap, c)
        assert same(params(load_checkpoint(snap).model), params(c)), point
        names = sorted(p.name for p in snap.iterdir())
        assert not [n for n in names if n.startswith(".")], (point, names)
        assert len([n for n in names if n.startswith("ckpt-")]) == 2, (point, names)


def test_killed_before_the_first_pointer_the_version_is_still_found(tmp_path):
    out = tmp_path / "run"
    r = run_py(f"""
        import os
        from tinygrad_gpt import GPT, GPTConfig, checkpoint as ck
        def die(point):
            if point == "version renamed":
                os._exit(9)
        ck._save_hook = die
        ck.save_checkpoint({str(out)!r}, GPT(GPTConfig(vocab_size=8, block_size=4, n_layer=1,
                                                        n_head=1, n_embd=4)))
    """)
    assert r.returncode == 9, r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["ckpt-000001"]
    assert load_checkpoint(out).path == out / "ckpt-000001"
    assert main(["train", "--out", str(out), "--resume", "--no-progress"]) == 2   # no state
    save_checkpoint(out, GPT(tiny()))
    assert (out / "LATEST").read_text() == "ckpt-000002\n"


def test_leftovers_of_the_layout_before_versions_are_named_then_cleaned(tmp_path):
    """A kill between the old layout's two renames left both checkpoints hidden beside --out
    and nothing at it: loading says where the complete one is; a save cleans them up."""
    out = tmp_path / "run"
    old = save_checkpoint(tmp_path / "staging", GPT(tiny()))
    shutil.copytree(old, tmp_path / ".run.old-1234")
    (tmp_path / ".run.tmp-abc").mkdir()
    shutil.rmtree(tmp_path / "staging")
    with pytest.raises(CheckpointError, match=re.escape(
            f"load_checkpoint: no checkpoint directory at {out} (an interrupted save left a "
            f"complete checkpoint at {tmp_path / '.run.old-1234'}: rename it to {out} to use "
            "it)")):
        load_checkpoint(out)
    save_checkpoint(out, GPT(tiny()))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_readers_during_saves_always_get_a_whole_checkpoint(tmp_path):
    """A writer process saves 40 versions as fast as it can; meanwhile this process loads
    again and again. Each load must return one saved model whole (its params match the
    marker saved with them), never a missing-file or a false 'damaged' error."""
    out = tmp_path / "run"
    save_checkpoint(out, GPT(tiny(), seed=0), state={"seed": 0})
    writer = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        from tinygrad_gpt import GPT, GPTConfig
        from tinygrad_gpt.checkpoint import save_checkpoint
        cfg = GPTConfig(vocab_size={TOK.vocab_size}, block_size=16, n_layer=2, n_head=2,
                        n_embd=16)
        for seed in range(1, 41):
            save_checkpoint({str(out)!r}, GPT(cfg, seed=seed), state={{"seed": seed}})
    """)], env={**os.environ, "PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1"},
        stderr=subprocess.PIPE, text=True)
    expected = {}
    seen = set()
    try:
        while writer.poll() is None or not seen:
            ckpt = load_checkpoint(out)
            seed = ckpt.state["seed"]
            if seed not in expected:
                expected[seed] = params(GPT(tiny(), seed=seed))
            assert same(params(ckpt.model), expected[seed]), seed
            seen.add(seed)
    finally:
        writer.wait(timeout=60)
    assert writer.returncode == 0, writer.stderr.read()
    assert len(seen) >= 2                     # the loads really overlapped the saves
    assert load_checkpoint(out).state["seed"] == 40


# ---------------------------------------------------------------------------- before training
@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_text("x"), "{out} exists and is not a directory"),
    (lambda p: (p.mkdir(), (p / "x.txt").write_text("x")),
     "{out} is a non-empty directory without a checkpoint; refusing to write into it"),
])
def test_an_unusable_out_fails_before_any_step(tmp_path, make, message):
    out = tmp_path / "out"
    make(out)
    t = Trainer(GPT(tiny()), IDS[:1500], None, TrainConfig(steps=3, batch_size=2),
                progress=False, out_dir=out)
    with pytest.raises(CheckpointError, match=re.escape(message.format(out=out))):
        t.fit()
    assert t.step == 0 and t.history == []


def test_a_full_disk_is_refused_before_training_and_a_failed_save_keeps_everything(tmp_path):
    with small_tmpfs(tmp_path / "disk", "1m") as disk:
        big = GPT(tiny(n_embd=128, n_head=4), seed=0)      # ~ 0.8 MB of weights: 2.4 MB saved
        t = Trainer(big, IDS[:1500], None, TrainConfig(steps=3, batch_size=2),
                    progress=False, out_dir=disk / "run")
        with pytest.raises(CheckpointError, match=r"bytes free, a checkpoint needs about"):
            t.fit()
        assert t.history == []
        r = main(["train", "--corpus", str(ROOT / "README.md"), "--out", str(disk / "cli"),
                  "--steps", "2", "--no-progress", "--config", "n_embd=128", "n_layer=2"])
        assert r == 2 and not (disk / "cli").exists()

        # the precheck passes, then the disk fills up during training: the save fails
        t = trained(disk / "small", steps=1)
        first = params(t.model)
        filler = disk / "filler"

        def fill(trainer, step, metrics):
            with open(filler, "wb") as f, contextlib.suppress(OSError):
                while True:
                    f.write(b"\0" * 65536)
        t.config.steps = 2
        t.callbacks.append(type("Fill", (), {"on_step": staticmethod(fill)})())
        with pytest.raises(CheckpointSaveError, match=re.escape(
                f"{disk / 'small'}: saving step 2 failed (No space left on device); the "
                "previous checkpoint there is unchanged; this step was saved to ")) as err:
            t.fit()
        rescue = err.value.rescue
        try:
            assert same(params(load_checkpoint(disk / "small").model), first)
            assert same(params(load_checkpoint(rescue).model), params(t.model))
            assert not [p for p in (disk / "small").iterdir() if p.name.startswith(".")]
        finally:
            shutil.rmtree(rescue, ignore_errors=True)


def test_a_read_only_filesystem_is_refused_before_any_work(tmp_path, capsys):
    with small_tmpfs(tmp_path / "ro", "1m", ",ro") as ro:
        assert main(["train", "--out", str(ro / "run"), "--steps", "1", "--no-progress"]) == 2
        assert capsys.readouterr().err == (f"tinygrad-gpt train: error: {ro / 'run'}: cannot "
                                           f"write in {ro} (Read-only file system)\n")


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_and_sigterm_save_a_checkpoint_before_exiting(tmp_path, sig, code):
    corpus = tmp_path / "c.txt"
    corpus.write_text(TEXT)
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; from tinygrad_gpt.cli import main; "
                               "sys.exit(main(sys.argv[1:]))",
         "train", "--corpus", str(corpus), "--out", str(out), "--steps", "100000",
         "--config", "n_layer=1", "n_embd=16", "n_head=2", "block_size=16",
         "--batch-size", "2", "--eval-interval", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1",
             "PYTHONUNBUFFERED": "1"})
    assert proc.stdout.readline().startswith("corpus c.txt")     # training starts now
    time.sleep(1.5)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    m = re.search(rf"tinygrad-gpt train: {sig.name} at step (\d+): saved {re.escape(str(out))}; "
                  r"continue with --resume", err)
    assert m, err
    assert load_checkpoint(out).state["step"] == int(m.group(1))
    assert "Traceback" not in err


# ---------------------------------------------------------------------------- hostile files
def test_hostile_sizes_fail_fast_under_a_memory_limit(tmp_path):
    v = save_checkpoint(tmp_path / "c", GPT(tiny()), tokenizer=TOK)
    cfg = json.loads((v / "config.json").read_text())
    rewrite(v, "config.json", json.dumps({**cfg, "ffn_hidden": 10 ** 12}).encode())
    shutil.copytree(tmp_path / "c", tmp_path / "wide")
    rewrite(v, "config.json", json.dumps({**cfg, "n_layer": 10 ** 9}).encode())
    bpe = tmp_path / "bpe.txt"
    from tinygrad_gpt.tokenizers import BPETokenizer
    BPETokenizer().train("aaaa abab", 258).save(bpe)
    lines = bpe.read_text().split("\n")
    lines[2] = "vocab_size 1000000000000"
    (tmp_path / "huge-bad-sum.txt").write_text("\n".join(lines))
    from tinygrad_gpt.tokenizers.files import dump_container
    body = lines[1:-2]
    body[1] = "vocab_size 1000000000000"
    (tmp_path / "huge-good-sum.txt").write_text(dump_container("bpe", body))
    body = [lines[1], "vocab_size 300"] + [f"byte {i} {i}" for i in range(256)] + \
        ["merge 256 97 97"] + [f"merge {i} {i - 1} {i - 1}" for i in range(257, 300)]
    (tmp_path / "doubling.txt").write_text(dump_container("bpe", body))
    r = run_py(f"""
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
        from tinygrad_gpt.checkpoint import load_checkpoint
        from tinygrad_gpt.tokenizers import load_tokenizer
        for f, p in [(load_checkpoint, {str(tmp_path / 'c')!r}),
                     (load_checkpoint, {str(tmp_path / 'wide')!r})] + [
                (load_tokenizer, {str(tmp_path)!r} + "/" + n)
                for n in ("huge-bad-sum.txt", "huge-good-sum.txt", "doubling.txt")]:
            try:
                f(p)
                print("loaded", p)
            except ValueError as e:
                print(e)
    """)
    assert r.returncode == 0, r.stderr
    got = r.stdout.splitlines()
    assert got[0] == (f"{v / 'config.json'}: n_layer 1000000000, but model.safetensors holds 2 "
                      "blocks (allowed: n_layer = 2)")
    assert got[1] == (f"{tmp_path / 'wide' / v.name / 'config.json'}: ffn_hidden 1000000000000 "
                      "with n_embd 16 needs transformer.h.0.mlp.c_fc.weight of shape (16, "
                      "1000000000000), model.safetensors has (16, 64)")
    for name in ("huge-bad-sum.txt", "huge-good-sum.txt"):
        assert f"{tmp_path / name}:3: vocab_size 1000000000000 is more than the 258 token " \
               "lines the file has (allowed: at most 258)" in got
    assert got[4].startswith(f"{tmp_path / 'doubling.txt'}:276: merge makes a token of 131,072 "
                             "bytes; tokens may have at most 65,536 bytes")


def _hostile_cases(v: Path) -> list:
    state = json.loads((v / "state.json").read_text())
    manifest = json.loads((v / "checkpoint.json").read_text())
    tr = state["trainer"]
    opt = state["optimizer"]
    return [
        ("checkpoint.json", {k: x for k, x in manifest.items() if k != "files"},
         "checkpoint.json: 'files' must be an object of file name -> sha256, got NoneType"),
        ("state.json", [1, 2], "state.json: must hold a JSON object, got list"),
        ("state.json", {**state, "trainer": {k: x for k, x in tr.items()
                                             if k != "train_config"}},
         "state.json: trainer state: 'train_config' is missing"),
        ("state.json", {**state, "trainer": {**tr, "train_config": {
            **tr["train_config"], "stepz": 3}}},
         "state.json: trainer state: train_config has unknown keys ['stepz']"),
        ("state.json", {**state, "trainer": {**tr, "train_config": {
            **tr["train_config"], "min_lr": -1.0}}},
         "state.json: trainer state: train_config: TrainConfig: min_lr must be a finite number "
         "in [0, inf), got -1.0"),
        ("state.json", {**state, "optimizer": {**opt, "state": {**opt["state"],
                                                                "step_count": -1}}},
         "optimizer.safetensors: optimizer.load_state_dict: step_count must be an integer >= "
         "0, got -1"),
        ("state.json", {**state, "optimizer": {**opt, "state": {**opt["state"], "groups": [
            {**g, "lr": None} for g in opt["state"]["groups"]]}}},
         "optimizer.load_state_dict: lr must be a finite number in [0, inf), got None"),
        ("state.json", {**state, "trainer": {**tr, "step": "3"}},
         "state.json: trainer state: step must be an integer >= 0, got '3'"),
        ("config.json", [], "config.json: must hold a JSON object of GPTConfig fields"),
        ("state.json", {**state, "trainer": {**tr, "train_config": {
            **tr["train_config"], "eval_batches": 10 ** 12}}},
         "state.json: trainer state: train_config: TrainConfig: eval_batches must be at most "
         "1,048,576, got 1000000000000"),
    ]


def test_json_with_the_wrong_structure_gives_one_clear_line_from_every_command(tmp_path,
                                                                                capsys):
    base = tmp_path / "base"
    trained(base, steps=2)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT)
    for i, (name, doc, message) in enumerate(_hostile_cases(resolve_checkpoint(base))):
        out = tmp_path / f"case{i}"
        shutil.copytree(base, out)
        v = resolve_checkpoint(out)
        if name == "checkpoint.json":
            (v / name).write_text(json.dumps(doc))
        else:
            rewrite(v, name, json.dumps(doc).encode())
        capsys.readouterr()
        for argv in (["train", "--out", str(out), "--resume", "--no-progress", "--corpus",
                      str(corpus)],
                     ["sample", "--checkpoint", str(out), "--max-new-tokens", "2"],
                     ["graph", "--checkpoint", str(out), "--out", str(tmp_path / "g")],
                     ["diagnose", "--checkpoint", str(out)]):
            code = main(argv)
            err = capsys.readouterr().err
            if argv[0] in ("sample", "graph", "diagnose") and name == "state.json" and \
                    ("trainer state" in message or "optimizer" in message):
                assert code == 0 or "error" not in err, (argv, err)   # they need no trainer
                continue
            assert code == 2, (argv, message, err)
            assert message in err and err.count("\n") == 1, (argv, err)


def test_nan_weights_are_named_never_a_false_tying_error_and_never_saved(tmp_path):
    v = save_checkpoint(tmp_path / "c", GPT(tiny()))
    from safetensors.numpy import load, save
    tensors = load((v / "model.safetensors").read_bytes())
    tensors["transformer.wte.weight"][3, 2] = np.nan
    rewrite(v, "model.safetensors", save(tensors))
    with pytest.raises(CheckpointError, match=re.escape(
            f"{v / 'model.safetensors'}: tensor 'transformer.wte.weight' holds NaN or inf")):
        load_checkpoint(tmp_path / "c")
    bad = GPT(tiny())
    bad.transformer.wte.weight.data[0, 0] = np.nan
    with pytest.raises(CheckpointError, match=re.escape(
            "save_checkpoint: parameters ['transformer.wte.weight'] hold NaN or inf")):
        save_checkpoint(tmp_path / "d", bad)
    assert not (tmp_path / "d").exists()


def test_an_update_that_would_write_inf_is_refused_like_a_diverged_loss(tmp_path):
    class Overflowing(optim.SGD):
        """Its third update overflows one weight (as a huge learning rate would)."""

        def step(self):
            super().step()
            if self.step_count == 3:
                self.params[0].data[0, 0] = np.inf

    model = GPT(tiny())
    opt = Overflowing(model.parameters(), lr=0.1, momentum=0.9)
    seen = []
    t = Trainer(model, IDS[:1500], None, TrainConfig(steps=20, batch_size=2),
                optimizer=opt, progress=False, out_dir=tmp_path / "run",
                callbacks=[lambda tr, step, m: seen.append((params(tr.model),
                                                             tr.optimizer.state_dict()))])
    t.fit()
    assert t.diverged and t.step == 2 and opt.step_count == 2 and len(t.history) == 3
    assert t.history[-1]["non_finite_params"]
    before, opt_before = seen[-1]          # as they were when the refused step began
    assert same(params(model), before)
    for a, b in zip(opt.state_dict()["state"], opt_before["state"]):
        assert same(a, b)
    assert same(params(load_checkpoint(tmp_path / "run").model), before)


def test_a_tokenizer_larger_than_the_model_vocabulary_is_refused(tmp_path):
    v = save_checkpoint(tmp_path / "c", GPT(tiny(vocab_size=TOK.vocab_size)), tokenizer=TOK)
    bigger = CharTokenizer(TEXT + "XYZ")
    bigger.save(tmp_path / "t.txt")
    rewrite(v, "tokenizer.txt", (tmp_path / "t.txt").read_bytes())
    assert main(["sample", "--checkpoint", str(tmp_path / "c")]) == 2
    with pytest.raises(CheckpointError, match=re.escape(
            f"{v / 'tokenizer.txt'}: the tokenizer has {TOK.vocab_size + 3} tokens but the "
            f"model's vocab_size is {TOK.vocab_size} (allowed: at most {TOK.vocab_size})")):
        load_checkpoint(tmp_path / "c")


# ---------------------------------------------------------------------------- corpus, resume
def test_resume_finds_its_corpus_or_names_the_file_it_needs(tmp_path, capsys):
    corpus = tmp_path / "c.txt"
    corpus.write_text(TEXT)
    out = tmp_path / "run"
    small = ["--config", "n_layer=1", "n_embd=16", "n_head=2", "block_size=16",
             "--batch-size", "2", "--no-progress"]
    assert main(["train", "--corpus", str(corpus), "--out", str(out), "--steps", "4",
                 "--until", "2", *small[:-1 - 2 * 0]]) == 0
    record = load_checkpoint(out).state["meta"]["corpus"]
    sha = hashlib.sha256(TEXT.encode()).hexdigest()
    assert record == {"name": "c.txt", "path": str(corpus.resolve()), "bytes": len(TEXT),
                      "sha256": sha}
    assert main(["train", "--out", str(out), "--resume", "--until", "3", "--no-progress"]) == 0
    assert load_checkpoint(out).state["step"] == 3
    corpus.rename(tmp_path / "moved.txt")
    capsys.readouterr()
    assert main(["train", "--out", str(out), "--resume", "--no-progress"]) == 2
    assert capsys.readouterr().err == (
        f"tinygrad-gpt train: error: --resume: the checkpoint was trained on "
        f"{corpus.resolve()} (sha256 {sha}, {len(TEXT):,} bytes), which is missing; pass "
        "--corpus FILE with that file\n")
    assert main(["train", "--out", str(out), "--resume", "--corpus", str(tmp_path / "moved.txt"),
                 "--steps", "5", "--no-progress"]) == 0
    assert capsys.readouterr().err == (
        "tinygrad-gpt train: note: --steps 4 -> 5 changes the learning-rate schedule from step "
        "3 on: the run will differ from one started with these settings (to stop early and "
        "keep the schedule, use --until)\n")


def test_train_without_a_corpus_uses_the_built_in_one_and_shows_progress(tmp_path, capsys,
                                                                         monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)        # plain lines, not a tqdm bar
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), "--steps", "2", "--batch-size", "1",
                 "--config", "n_layer=1", "n_embd=8", "n_head=1", "block_size=8",
                 "--eval-batches", "1"]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"^corpus pydoc help topics: [\d,]+ characters", printed, re.M)
    assert re.search(r"^train 2/2 steps, \d+s elapsed, about 0s left, loss \d\.\d+, lr ",
                     printed, re.M)
    record = load_checkpoint(out).state["meta"]["corpus"]
    assert record["name"] == "pydoc help topics" and record["path"] is None
