"""The end-to-end demo: generated music -> cache -> two training stages -> scores and a report."""
