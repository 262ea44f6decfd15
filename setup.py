"""Maps the top-level folders into the single `agent` import namespace.

`model/`, `kernels/`, `tools/` and `prompts/` install as `agent.model`, `agent.kernels`,
`agent.tools` and `agent.prompts`, so nothing shadows other distributions (Hugging Face ships a
top-level `kernels`). Subpackages are discovered, so new folders need no edit here.
"""
from setuptools import find_packages, setup

ROOTS = {"agent": "agent", "agent.model": "model", "agent.kernels": "kernels",
         "agent.tools": "tools", "agent.prompts": "prompts"}

packages, package_dir = [], {}
for name, folder in ROOTS.items():
    package_dir[name] = folder
    packages.append(name)
    packages += [f"{name}.{sub}" for sub in find_packages(folder)
                 if not (name == "agent" and sub.split(".")[0] in ROOTS)]

setup(
    packages=packages,
    package_dir=package_dir,
    package_data={
        "agent.prompts": ["*.jinja", "**/*.jinja"],
        "agent.harmony": ["o200k_base.tiktoken.gz"],
        "agent.model": ["nano/*.json", "nano/*.safetensors", "nano/*.bin"],
        "agent.kernels": ["cpu/*.cpp", "cpu/*.h"],
    },
    include_package_data=True,
)
