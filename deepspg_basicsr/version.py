"""Version of deepspg-basicsr (read by setup.py without executing it)."""

__version__ = '0.1.0'
