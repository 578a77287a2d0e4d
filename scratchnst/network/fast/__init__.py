"""The fast convolutions, each tested against the reference in ``network/layers.py``.

    bands.py                 how much of a layer is computed at once (bounded memory)
    gemm.py                  banded im2col GEMM; the input gradient as a convolution
    relu_pool.py             in-place ReLU and max pooling with compact caches
    winograd_transforms.py   Winograd's matrices and the transformed-kernel cache
    winograd.py              Winograd F(4x4, 3x3) and F(2x2, 3x3) convolution
    winograd_adjoint.py      its input gradient as the exact adjoint, with the forward kernel's U
    threads.py               the one CPU thread policy: our threads split bands, BLAS runs on one
"""
