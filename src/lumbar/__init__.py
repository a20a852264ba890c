"""lumbar: randomized trials of treatments for chronic low back pain, from protocol to table."""

__version__ = "0.1.0"

__all__ = ["__version__"]
