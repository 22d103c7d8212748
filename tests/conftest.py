"""Import the package first: its compat shims make basicsr importable on new torchvision."""

import deepspg_basicsr  # noqa: F401

# isort: split
import logging

import pytest


@pytest.fixture
def basicsr_log():
    """Messages of BasicSR's logger at INFO and above during the test (it does not propagate to the
    root logger once set up)."""
    records = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = lambda record: records.append(record.getMessage())
    logger = logging.getLogger('basicsr')
    old_level = logger.level
    logger.setLevel(min(old_level or logging.INFO, logging.INFO))
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)
    logger.setLevel(old_level)
