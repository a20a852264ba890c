"""lumbar: randomized trials of treatments for chronic low back pain, from protocol to table."""

__version__ = "0.1.0"

PROTOCOL_FORMAT = 1
"""The version of the protocol file format this lumbar reads (``lumbar_protocol: 1``)."""

__all__ = ["PROTOCOL_FORMAT", "__version__"]
