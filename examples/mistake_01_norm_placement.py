"""Mistake 1, pre-norm vs post-norm: the gradient norm of every block at initialization for
pre, post and mixed LayerNorm placement, then the lab's experiment (pictures in ./mistake_01/).

    python examples/mistake_01_norm_placement.py
"""
import numpy as np

from tinygrad_gpt import GPT, GPTConfig
from tinygrad_gpt.lab import MISTAKES

rng = np.random.default_rng(0)
x = rng.integers(0, 65, (8, 16))                  # any token ids will do at initialization
y = np.roll(x, -1, axis=1)
for placement in ("pre", "post", "mixed"):
    config = GPTConfig(vocab_size=65, block_size=16, n_layer=6, n_head=2, n_embd=32,
                       norm_placement=placement)
    model = GPT(config, seed=0)
    _, loss = model(x, y)
    loss.backward()
    norms = [np.sqrt(sum(float((p.grad ** 2).sum()) for p in block.parameters()))
             for block in model.transformer.h]
    print(f"{placement:>5}-norm: gradient by block " + " ".join(f"{g:.3f}" for g in norms)
          + f"   (max/min {max(norms) / min(norms):.1f}x)")

result = MISTAKES["norm"].run(quick=True, seed=0, out_dir="mistake_01")
print(f"\nreproduced: {result.reproduced}\n{result.verdict}\npictures: {result.pictures}")
