"""The tested environment is the locked one: every installed package that constraints.txt pins has its version."""
from importlib import metadata

from lock import UPGRADE_HINT, locked_versions, normalize

# Packages whose version shapes what the project writes (the compiled YAML, its protobuf), so they must be installed.
OUTPUT_SHAPING = ["kfp", "kfp-pipeline-spec", "kfp-kubernetes", "protobuf", "pyyaml"]


def installed_versions() -> dict[str, str]:
    return {normalize(dist.metadata["Name"]): dist.version for dist in metadata.distributions()}


def test_installed_versions_equal_the_lock():
    locked, installed = locked_versions(), installed_versions()
    problems = [f"{name} is {installed[name]}, locked {version}"
                for name, version in locked.items() if name in installed and installed[name] != version]
    problems += [f"{name} is not installed" for name in OUTPUT_SHAPING if name not in installed]
    assert not problems, f"this environment is not the locked one ({'; '.join(problems)}): {UPGRADE_HINT}"


def test_lock_pins_every_output_shaping_package_and_the_installers():
    locked = locked_versions()
    assert set(OUTPUT_SHAPING + ["pip", "setuptools", "wheel", "tensorflow", "nvidia-cudnn-cu12"]) <= set(locked)


def test_lock_satisfies_every_range_in_setup_py():
    """A range changed in setup.py without `make lock` is caught here, not by a failing install elsewhere."""
    from packaging.requirements import Requirement

    locked = locked_versions()
    problems = []
    for text in metadata.requires("kubeline"):
        requirement = Requirement(text)
        name = normalize(requirement.name)
        if name not in locked:
            problems.append(f"{requirement} is not in the lock")
        elif not requirement.specifier.contains(locked[name], prereleases=True):
            problems.append(f"the lock has {name}=={locked[name]}, setup.py asks for {requirement.specifier}")
    assert not problems, f"constraints.txt is out of date with setup.py ({'; '.join(problems)}): run `make lock`"

