"""The staff web application (``lumbar serve``): pages over the operations API.

:mod:`lumbar.web.app` builds the application and says what its security is;
:mod:`lumbar.web.base` is what every page needs; the pages are in
:mod:`lumbar.web.pages`.
"""

__all__: list[str] = []
