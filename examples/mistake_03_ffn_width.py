"""Mistake 3, an MLP as wide as the model (d_ff = d) instead of 4d: the parameters it saves,
and the validation loss it costs after the same training steps (pictures in ./mistake_03/).

    python examples/mistake_03_ffn_width.py
"""
from tinygrad_gpt import GPT, GPTConfig
from tinygrad_gpt.lab import MISTAKES

for d_ff in (32, 128):
    model = GPT(GPTConfig(vocab_size=65, block_size=32, n_layer=2, n_head=2, n_embd=32,
                          ffn_hidden=d_ff), seed=0)
    mlp = sum(p.size for name, p in model.named_parameters() if ".mlp." in name)
    print(f"d_ff = {d_ff:>3}: {model.num_parameters():,} parameters, {mlp:,} of them in MLPs")

result = MISTAKES["ffn"].run(quick=True, seed=0, out_dir="mistake_03")
print(f"\nreproduced: {result.reproduced}\n{result.verdict}\n\n{result.notes}")
