"""`python -m agent.bench`: the runtime benchmark. It lives in agent.model.benchmark, next to
what it measures; see there for what it measures and its options (including --vs-llamacpp).
`python -m agent.bench --workload`: a scripted agent task on the runtime and on llama-server
(agent/workload.py)."""
from __future__ import annotations

import sys

from agent.model.benchmark import main

if __name__ == "__main__":
    if "--workload" in sys.argv[1:]:
        from agent.workload import main as workload
        sys.exit(workload(sys.argv[1:]))
    sys.exit(main())
