"""`python -m agent.bench`: the runtime benchmark. It lives in agent.model.benchmark, next to
what it measures; see there for what it measures and its options (including --vs-llamacpp)."""
from __future__ import annotations

import sys

from agent.model.benchmark import main

if __name__ == "__main__":
    sys.exit(main())
