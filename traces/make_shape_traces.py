"""Regenerate the shape-only traces of one training step (forward, backward-data,
backward-weight) of ResNet-50 (ImageNet 224 x 224, batch 32) and BERT-base (sequence 128,
batch 8), from the architectures in hbfpsim.trace.models:

    python traces/make_shape_traces.py
"""

import shutil
from pathlib import Path

from hbfpsim.trace import open as open_trace, shape_trace

HERE = Path(__file__).resolve().parent

for name, model, settings in [("resnet50_step", "resnet50", {"batch": 32, "image": 224}),
                              ("bert_base_step", "bert-base", {"batch": 8, "seq": 128})]:
    shutil.rmtree(HERE / name, ignore_errors=True)
    shape_trace(HERE / name, model, **settings)
    summary = open_trace(HERE / name).summary()
    print(f"{name}: {summary['records']} records, {summary['macs'] / 1e9:.1f} GMAC")
