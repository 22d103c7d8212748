"""Subpackage; modules are imported explicitly below for registration."""
