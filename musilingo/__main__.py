"""`python -m musilingo ...` (what `torchrun -m musilingo extract ...` runs)."""
from .cli import main

main()
