"""The stress tier (see conftest.py): reduced counts in CI, full counts with a flag."""
