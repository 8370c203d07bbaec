"""Rebuild the README gallery: run the lab (full mode, seed 0) or read a finished run, copy one
picture per mistake into visualize/gallery/ as a small PNG (palette, under 150 KB), and print the
README markdown: the gallery and the summary table.

    python visualize/make_gallery.py [--quick] [--out lab_report] [--from lab_report]
"""
from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

from PIL import Image

from tinygrad_gpt.lab import MISTAKES, run_lab
from tinygrad_gpt.lab.runner import fmt

GALLERY = Path(__file__).resolve().parent / "gallery"
LIMIT = 150_000
# the picture that tells each story best at gallery size (file names written by the lab)
PREFERRED = {1: "m01_grad_by_layer", 2: "m02_grad_by_depth", 3: "m03_ffn_width",
             4: "m04_tying", 5: "m05_ln_axis", 6: "m06_final_norm",
             7: "m07_loss_by_position", 8: "m08_attention_left_padded", 9: "m09_argmax_cut",
             10: "m10_vocabulary", 11: "m11_kv_cache"}


def small_png(src: Path, dst: Path) -> int:
    """Downscale (graphs to 1400 px, plots to 900 px wide) and store with a 256-colour palette,
    shrinking further until the file is under LIMIT."""
    img = Image.open(src).convert("RGB")
    width = 1400 if src.with_suffix(".dot").exists() else 900
    while True:
        if img.width > width:
            img = img.resize((width, round(img.height * width / img.width)), Image.LANCZOS)
        buf = io.BytesIO()
        img.quantize(256, method=Image.Quantize.MEDIANCUT).save(buf, "PNG", optimize=True)
        if buf.tell() < LIMIT or width < 300:
            dst.write_bytes(buf.getvalue())
            return buf.tell()
        width = int(width * 0.8)


def pick(pictures: list[str], folder: Path, number: int) -> Path | None:
    pngs = []
    for p in pictures:   # results.json names them relative to where the lab ran: look in folder
        path = folder / Path(p).name
        if path.with_suffix(".png").exists():
            pngs.append(path.with_suffix(".png"))
    for p in pngs:
        if p.stem == PREFERRED.get(number):
            return p
    return pngs[0] if pngs else None


def kinds_line(doc: dict) -> str:
    """'5 harm reproduced, 6 mechanism shown' from results.json's counts per kind."""
    parts = [f"{n} {kind}" for kind, n in doc["kinds"].items() if n]
    if doc.get("failed"):
        parts.append(f"{doc['failed']} failed")
    return ", ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default="lab_report")
    parser.add_argument("--from", dest="source", default=None,
                        help="use a finished run's folder instead of running the lab")
    args = parser.parse_args()
    folder = Path(args.source or args.out)
    if args.source is None:
        run_lab(quick=args.quick, out_dir=folder, seed=0)
    doc = json.loads((folder / "results.json").read_text())
    GALLERY.mkdir(parents=True, exist_ok=True)
    lines = ["## The mistakes lab", "",
             "`tinygrad-gpt lab` reproduces each mistake beside its fix and measures it "
             f"({'quick' if doc['quick'] else 'full'} mode, seed {doc['seed']}, "
             f"{kinds_line(doc)} in {doc['elapsed_s']:.0f} s):",
             "", "| # | mistake | kind of evidence | symptom | wrong | fixed |",
             "| --- | --- | --- | --- | --- | --- |"]
    gallery = []
    for e in doc["mistakes"]:
        m = MISTAKES[e["number"]]
        w, f = (e["metrics"][side].get(e["symptom"]) for side in ("wrong", "fixed"))
        lines.append(f"| {m.number} | {m.title} (`{m.slug}`) | {e['kind'] or 'failed'} | "
                     f"{e['symptom_words'] or e['error']} | {fmt(w)} | {fmt(f)} |")
        src = pick(e["pictures"], folder, m.number)
        if src is None:
            continue
        name = f"{m.number:02d}_{m.slug}.png"
        size = small_png(src, GALLERY / name)
        print(f"{name}: {size / 1000:.0f} KB from {src.name}")
        gallery.append(f"**{m.number}. {m.title}**<br>![{m.title}](visualize/gallery/{name})")
    if len(gallery) % 2:
        gallery.append("")
    cells = ["|  |  |", "| --- | --- |"]
    cells += [f"| {a} | {b} |" for a, b in zip(gallery[::2], gallery[1::2])]
    print("\n".join(lines + ["", "One picture per mistake, wrong and fixed on one scale "
                               "(the full report has them all):", ""] + cells))


if __name__ == "__main__":
    main()
