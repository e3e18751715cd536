"""musilingo: MusiLingo-style music-language models trained from a cached music-encoder embedding."""

__version__ = "0.1.0"
