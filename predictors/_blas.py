"""One BLAS thread for the small matrices of the predictors."""

from __future__ import annotations

_controller = None


def one_blas_thread():
    """A context that limits BLAS to one thread (the matrices here are small; on a busy machine
    threaded BLAS made fits 5-300x and predictions 2x slower). The controller is built once."""
    global _controller
    if _controller is None:
        from threadpoolctl import ThreadpoolController
        _controller = ThreadpoolController()
    return _controller.limit(limits=1, user_api="blas")
