#!/usr/bin/env python3
"""Validates deploy/ (see test_deploy.py): `python tests/deploy/validate.py [-v]`.

`python tests/deploy/validate.py --render base|gpu` prints the rendered manifests instead,
for a look without kubectl.
"""
import sys
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--render":
        import yaml

        import test_deploy

        print(yaml.safe_dump_all(test_deploy.docs_of(sys.argv[2]), sort_keys=True), end="")
        sys.exit(0)
    verbosity = 2 if "-v" in sys.argv[1:] else 1
    suite = unittest.defaultTestLoader.discover(str(HERE), pattern="test_*.py", top_level_dir=str(HERE))
    result = unittest.TextTestRunner(verbosity=verbosity).run(suite)
    for test, reason in result.skipped:
        print(f"SKIPPED {test.id()}: {reason}")
    sys.exit(0 if result.wasSuccessful() else 1)
