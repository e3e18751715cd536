"""Where the HF `evaluate` module lives, from any working directory:

    import evaluate
    from musilingo.evaluate.metric import module_path
    metric = evaluate.load(module_path())        # offline: a local module script
"""
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent / "musilingo_metrics.py"


def module_path() -> str:
    """The path `evaluate.load` takes for musilingo's metrics module (installed or in a clone)."""
    return str(SCRIPT)
