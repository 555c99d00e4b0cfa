"""ailab: the typed model of an AI-LAB-style student GPU cluster and the tools around it."""

__version__ = "0.1.0"
