"""fti: a streaming ML platform on the feature / training / inference architecture."""

__version__ = "0.1.0"
