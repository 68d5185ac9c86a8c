"""``KernelError``: the one error type of ``kernels``.

``kernels`` imports no other project package, so it cannot subclass ``search_spaces.NASError``.
Callers in ``hw_profiles``/``nas`` convert it (``hw_profiles.measured.MeasurementFailedError``
is a ``NASError``), so the CLI still prints one line and exits with code 2.
"""

from __future__ import annotations


class KernelError(RuntimeError):
    """Exporting, building or running a module on a backend failed; the message names the step."""
