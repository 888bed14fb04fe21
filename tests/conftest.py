import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # tests import oracle.py and inputs.py

import os  # noqa: E402

from hypothesis import settings  # noqa: E402

# Property tests: the same examples on every run in CI ("ci", the default), so a failure is
# reproducible and never flaky; HYPOTHESIS_PROFILE=fuzz explores new random examples, many
# more of them (run it when changing a reader or a kernel).
settings.register_profile("ci", max_examples=40, deadline=None, derandomize=True)
settings.register_profile("fuzz", max_examples=2000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
