"""Models: the frozen music encoder, the frozen LLM loader, and the MusiLingo adapter model."""
