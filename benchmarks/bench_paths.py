"""Where the benchmarks find protect, the shared corpus and their results.

Imported first by a benchmark (``from bench_paths import ROOT, ...``): it puts
the checkout's ``src/`` and ``benchmarks/`` on ``sys.path``, so a benchmark
measures the code beside it, not an installed copy.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus"  # read in place, never copied; benchmarks skip it when absent
RESULTS = ROOT / "benchmarks" / "results"
THRESHOLDS = ROOT / "benchmarks" / "thresholds.toml"

for _folder in (ROOT / "benchmarks", ROOT / "src"):
    if str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))
