"""Import the package first: its compat shims make basicsr importable on new torchvision."""

import deepspg_basicsr  # noqa: F401
