"""Regenerate traces/mlp_digits and traces/cnn_digits: an MLP and a small CNN trained on
scikit-learn's bundled digits dataset (no download), each captured at the first step of an
early, a middle and the last epoch. Needs the examples extra:

    pip install '.[examples]' && python traces/make_digits_traces.py

Training is seeded, so the traces come out the same (up to PyTorch's CPU arithmetic).
"""

import shutil
from pathlib import Path

from hbfpsim.trace.examples import train_and_capture

HERE = Path(__file__).resolve().parent

for kind in ("mlp-digits", "cnn-digits"):
    out = HERE / kind.replace("-", "_")
    shutil.rmtree(out, ignore_errors=True)
    result = train_and_capture(kind, out)
    print(f"{out.name}: epochs {result['epochs']}, steps {result['steps']}, "
          f"test accuracy {result['test_accuracy']:.2%}")
