"""Makes the shared case builders (harmony_cases.py) importable from these tests."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
