"""Shared fixtures for resultkit's own tests."""
