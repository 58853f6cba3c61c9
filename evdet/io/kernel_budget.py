"""When a decoder uses its numpy path and when it loads its numba kernels: one rule for DAT, EVT 2.0, 3.0.

Loading numba and a codec's cached kernels costs about half a second in a fresh process, more than the
numpy path of that codec spends on a real recording; the kernels are faster per word once loaded. The
rule is ski rental: a decoder tries its numpy path while its kernel module is not imported in this
process (a read that needs the format's rules imports it, and every later read uses the kernels) and
until the numpy path has decoded the number of words that the kernels would have decoded faster by about
their load time (``budget``).
"""

from __future__ import annotations

import sys


class KernelBudget:
    """The numpy-or-kernels choice of one codec (module docstring).

    Args:
        kernels: the module name of the codec's numba kernels (e.g. ``"evdet.io.evt2_kernels"``).
        budget: words (or records) the numpy path may decode in this process before the kernels load.
    """

    def __init__(self, kernels: str, budget: int):
        self.kernels = kernels
        self.budget = budget
        self.spent = 0  # words decoded by the numpy path in this process

    def numpy_first(self) -> bool:
        """Whether a decode tries the numpy path first: the kernels are not imported and the budget is not
        spent."""
        return self.kernels not in sys.modules and self.spent < self.budget

    def spend(self, words: int) -> None:
        """Count ``words`` decoded by the numpy path."""
        self.spent += words
