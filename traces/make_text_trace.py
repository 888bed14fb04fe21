"""Regenerate traces/transformer_text: the character-level transformer of
``configs/train_text.toml`` (2 blocks, width 64, 4 heads, context 64, batch 32) trained in
FP32 on the Python standard library's own source, its GEMMs captured at the first step of
the last epoch by ``hbfpsim train``'s capture option: raw FP32 operands (a replay applies
each variant's formats) of the second, last transformer block (the whole step's operands
take 63 MB, one block's 30 MB). Needs the examples extra:

    pip install '.[examples]' && python traces/make_text_trace.py

Its backward-weight GEMMs reduce over batch x context = 2048 products, far longer than the
digits traces' reductions (at most 576). Training is seeded; the text depends on the Python
version (recorded in the trace's description).
"""

import shutil
import tempfile
from pathlib import Path

from hbfpsim.train import job, spec

HERE = Path(__file__).resolve().parent
OUT = HERE / "transformer_text"
EPOCHS = 6

shutil.rmtree(OUT, ignore_errors=True)
with tempfile.TemporaryDirectory() as work:
    run = spec.parse({"train": {
        "task": "text", "variants": ["fp32"], "seeds": [0], "epochs": EPOCHS,
        "steps_per_epoch": 100, "out": str(Path(work) / "run"),
        "capture": {"variant": "fp32", "seed": 0, "epochs": [EPOCHS - 1], "steps": 1,
                    "layers": ["blocks.1.*"], "path": str(OUT)}}})
    report = job.run(run, progress=None)
print(f"{OUT.name}: {report.about}; final validation "
      f"{report.variants[0].finals[0]:.3f} bits/char")
