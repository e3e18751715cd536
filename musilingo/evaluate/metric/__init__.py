"""Where the HF `evaluate` module lives: `evaluate.load(str(SCRIPT))` loads it offline."""
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent / "musilingo_metrics.py"
