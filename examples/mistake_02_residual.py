"""Mistake 2, missing residual connections: in a deep narrow stack the gradient fades by orders
of magnitude towards the input without the skip path, and stays flat with it. Then the lab's
experiment, with the gradient-colored graphs of both (pictures in ./mistake_02/).

    python examples/mistake_02_residual.py
"""
import numpy as np

from tinygrad_gpt import GPT, GPTConfig
from tinygrad_gpt.lab import MISTAKES

rng = np.random.default_rng(0)
x = rng.integers(0, 65, (8, 16))
y = np.roll(x, -1, axis=1)
for residual in (False, True):
    config = GPTConfig(vocab_size=65, block_size=16, n_layer=8, n_head=2, n_embd=16,
                       residual=residual)
    model = GPT(config, seed=0)
    _, loss = model(x, y)
    loss.backward()
    norms = [np.sqrt(sum(float((p.grad ** 2).sum()) for p in block.parameters()))
             for block in model.transformer.h]
    print(f"residual={residual!s:>5}: first block {norms[0]:.2e}, last block {norms[-1]:.2e}, "
          f"ratio {norms[-1] / norms[0]:.3g}")

result = MISTAKES["residual"].run(quick=True, seed=0, out_dir="mistake_02")
print(f"\nreproduced: {result.reproduced}\n{result.verdict}\npictures: {result.pictures}")
