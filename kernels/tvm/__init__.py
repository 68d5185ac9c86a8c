"""kernels.tvm."""
