"""Mistake 6, no final LayerNorm: the head reads the raw residual stream, so the logits' scale
is an accident of initialization (near zero) and then follows the stream as it grows in
training (pictures in ./mistake_06/).

    python examples/mistake_06_final_norm.py
"""
import math

import numpy as np

from tinygrad_gpt import GPT, GPTConfig, no_grad
from tinygrad_gpt.lab import MISTAKES

rng = np.random.default_rng(0)
x = rng.integers(0, 65, (8, 16))
y = np.roll(x, -1, axis=1)
for final_norm in (False, True):
    model = GPT(GPTConfig(vocab_size=65, block_size=16, n_layer=4, n_head=2, n_embd=32,
                          final_norm=final_norm), seed=0)
    with no_grad():
        logits, loss = model(x, y)
    print(f"final_norm={final_norm!s:>5}: logit std {logits.data.std():.4f}, loss at init "
          f"{loss.item():.4f} (ln(vocab) = {math.log(65):.4f})")

result = MISTAKES["final-norm"].run(quick=True, seed=0, out_dir="mistake_06")
print(f"\nreproduced: {result.reproduced}\n{result.verdict}")
