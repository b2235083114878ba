"""Validates CycloneDX 1.5 JSON files against the schema shipped in cyclonedx-python-lib.

Usage: python validate_cyclonedx.py FILE...   (exit 1 and the first error on failure)
"""
import sys

from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

validator = JsonStrictValidator(SchemaVersion.V1_5)
for path in sys.argv[1:]:
    with open(path, encoding="utf-8") as f:
        error = validator.validate_str(f.read())
    if error is not None:
        print(f"{path}: {error}")
        sys.exit(1)
