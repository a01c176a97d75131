"""Validates every resource of the FHIR Bundles in a folder against FHIR STU3 (3.0.2).

Usage: validate-stu3.py DIR. Reads DIR/**/*.json (what `koppeltest fixtures export` writes),
validates each Bundle entry's resource with the fhir.resources STU3 model of its resourceType,
and the Bundle itself without its resources. The models refuse elements STU3 does not define,
wrong value types and missing required elements; they know nothing of the Nictiz profiles, which
koppeltest's own schemas check. Prints each invalid resource with its problems and exits 1 if
there is one, 2 if there was nothing to validate.
"""

import importlib.metadata
import json
import pathlib
import sys
import time

from fhir.resources.STU3 import __fhir_version__, get_fhir_model_class
from pydantic import ValidationError


def problems(resource_type, data):
    """The validation errors of `data` as `path: message` lines (none if valid)."""
    try:
        model = get_fhir_model_class(resource_type)
    except ValueError:
        return [f"resourceType: {resource_type!r} is not a FHIR STU3 resource"]
    try:
        model.model_validate(data)
    except ValidationError as e:
        return [
            f"{'.'.join(str(p) for p in err['loc']) or '/'}: {err['msg']}"
            for err in e.errors()
        ]
    return []


def main(folder):
    started = time.monotonic()
    files = sorted(pathlib.Path(folder).rglob("*.json"))
    checked, invalid = 0, []
    for path in files:
        name = path.relative_to(folder)
        bundle = json.loads(path.read_text(encoding="utf-8"))
        entries = bundle.get("entry", [])
        for entry in entries:
            resource = entry.get("resource", {})
            label = f"{name}: {resource.get('resourceType', '?')}/{resource.get('id', '?')}"
            found = problems(resource.get("resourceType", "?"), resource)
            checked += 1
            if found:
                invalid.append((label, found))
        # The Bundle and its entries' own elements; the resources were checked above.
        shell = dict(bundle, entry=[{k: v for k, v in e.items() if k != "resource"} for e in entries])
        found = problems("Bundle", shell)
        if found:
            invalid.append((f"{name}: the Bundle", found))
    seconds = time.monotonic() - started
    if not checked:
        print(f"error: no Bundle entries under {folder}", file=sys.stderr)
        return 2
    for label, found in invalid:
        print(f"INVALID {label}")
        for p in found:
            print(f"    {p}")
    version = importlib.metadata.version("fhir.resources")
    print(
        f"FHIR STU3 {__fhir_version__} (fhir.resources {version}): {checked} resources "
        f"in {len(files)} Bundles validated in {seconds:.1f} s"
    )
    bad = sum(1 for label, _ in invalid if not label.endswith("the Bundle"))
    print(f"stu3: {checked - bad} passed, {len(invalid)} failed")
    return 1 if invalid else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
