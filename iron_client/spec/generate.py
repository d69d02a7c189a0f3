"""Writes `iron_client/generated.py`, the pydantic models of the spec copy beside this file.

Run it as `make models` after taking a new spec copy. The options are fixed here, and the output
depends only on the spec and on datamodel-code-generator's version (bounded in pyproject.toml's
`test` extra): `tests/test_iron_models_generated.py` regenerates with these options and fails
when the committed module differs.
"""

from __future__ import annotations

import sys
from pathlib import Path

from iron_client.spec import SPEC_PATH

GENERATED_PATH = Path(__file__).resolve().parent.parent / "generated.py"
COMMAND = "make models"

HEADER = f"""\
# Generated from iron_client/spec/openapi-onboarding.yml by `{COMMAND}`
# (python -m iron_client.spec.generate, datamodel-code-generator). Do not edit: change the spec
# copy and regenerate. iron_client/models.py and iron_sandbox/schemas.py build on these models."""

OPTIONS: tuple[str, ...] = (
    "--input-file-type", "openapi",
    "--output-model-type", "pydantic_v2.BaseModel",
    "--target-python-version", "3.11",
    # Deterministic: no timestamp, no formatter whose own version would change the layout, and
    # no settings read from a pyproject.toml or fetched over the network.
    "--disable-timestamp",
    "--formatters", "builtin",
    "--ignore-pyproject",
    "--no-allow-remote-refs",
    "--use-double-quotes",
    "--use-annotated",
    "--field-constraints",
    # `class CustomerStatus(str, Enum)` with members such as `IDENTIFICATION_REQUIRED`: members
    # equal Iron's strings, and the names the rest of the code uses.
    "--use-subclass-enum",
    "--no-use-specialized-enum",
    "--snake-case-field",
    "--capitalise-enum-members",
    # A one-value enum (an identification's `type`) is a Literal that defaults to its value.
    "--enum-field-as-literal", "one",
    "--use-one-literal-as-default",
    # Ids and decimals stay the strings they are on the wire, and timestamps plain datetimes, as
    # the rest of the code reads them.
    "--type-mappings", "string+uuid=string", "string+decimal=string",
    "--output-datetime-class", "datetime",
)


def generate(output: Path = GENERATED_PATH, spec: Path = SPEC_PATH) -> None:
    """Write the models of `spec` (the repository's copy, whatever IRON_OPENAPI_SPEC says: the
    committed module follows the committed spec) to `output`."""
    # Imported here: the generator is a test-extra tool, and this module ships with the client.
    from datamodel_code_generator.__main__ import Exit, main

    arguments = [*OPTIONS, "--custom-file-header", HEADER, "--input", str(spec), "--output", str(output)]
    result = main(arguments)
    if result != Exit.OK:
        raise RuntimeError(f"datamodel-code-generator failed ({result!r}) on {spec}")


if __name__ == "__main__":
    generate()
    print(f"wrote {GENERATED_PATH}", file=sys.stderr)
