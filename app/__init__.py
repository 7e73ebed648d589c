"""Gradient Flow Lab web app: FastAPI routers, templates and static assets around the engine."""

import os

# One BLAS thread per request. The engine's matrices are small (H <= 256), so extra BLAS threads
# add no speed, and under concurrent requests OpenBLAS's spinning threads fight over the cores:
# measured here, one LSTM run went from 0.08 s to 3 s. Only effective before NumPy is imported,
# which is why it sits in the package's first module; a value set by the user wins.
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")
