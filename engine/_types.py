"""Array aliases shared by the engine's type hints (NumPy's own ``numpy.typing``).

Letters in shapes, everywhere in the engine: T steps, B batch, D inputs, H hidden units, K classes
(or outputs), L layers, G gate blocks (1 rnn, 4 lstm, 3 gru), N items of a list of steps.
"""

from __future__ import annotations

from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

FloatArray: TypeAlias = npt.NDArray[np.float64]
IntArray: TypeAlias = npt.NDArray[np.int64]
BoolArray: TypeAlias = npt.NDArray[np.bool_]
AnyArray: TypeAlias = npt.NDArray[Any]
Params: TypeAlias = dict[str, FloatArray]  # PyTorch state_dict keys -> float64 arrays
Grads: TypeAlias = dict[str, FloatArray]  # same keys and shapes as the Params they belong to
Cache: TypeAlias = dict[str, FloatArray]  # a cell's forward values that its backward reads
