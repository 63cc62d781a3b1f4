# pgembed's C kernels (PGXS sources), shipped inside the Python package as pgembed.kernels so that
# `pgembed kernels install` can build them wherever pgembed is installed. No Python here.
