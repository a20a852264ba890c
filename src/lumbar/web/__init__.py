"""The staff web application (``lumbar serve``): pages over the operations API."""
