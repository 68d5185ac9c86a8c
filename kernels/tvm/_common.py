"""The one guarded ``import tvm`` of the TVM modules in ``kernels``, and what their schedule rules share."""

from __future__ import annotations

from kernels.errors import KernelError

TVM_MISSING = "the tvm backend needs Apache TVM: pip install 'apache-tvm==0.27.0.post1' 'apache-tvm-ffi<0.1.15'"


def _tvm():
    """The ``tvm`` module, or the one-line install hint as a ``KernelError``."""
    try:
        import tvm
        from tvm import relax  # noqa: F401 - fails on a TVM without Relax (< 0.15)
    except ImportError:
        raise KernelError(TVM_MISSING) from None
    except Exception as err:  # noqa: BLE001 - a broken install (e.g. an incompatible tvm-ffi)
        raise KernelError(f"TVM import failed: {type(err).__name__}: {err}") from err
    return tvm


def functions_containing(mod, text: str) -> int:
    """How many PrimFuncs of ``mod`` have ``text`` in their TVMScript (a schedule rule's mark or intrinsic)."""
    _tvm()
    from tvm import tirx

    return sum(text in func.script() for _, func in mod.functions_items() if isinstance(func, tirx.PrimFunc))
