"""The project's Swift sources read as text: which modules each file imports."""
import os
import re

from .plugin import ROOT


def import_lines(folder):
    """(file name, line number, module) for every `import` in the Swift files below folder (relative to the
    repository root)."""
    found = []
    for directory, _, files in os.walk(os.path.join(ROOT, folder)):
        for name in files:
            if name.endswith(".swift"):
                with open(os.path.join(directory, name)) as handle:
                    for number, line in enumerate(handle, 1):
                        match = re.match(r"\s*(?:@_\w+\s+)?(?:public |internal |private )?import\s+(\w+)", line)
                        if match:
                            found.append((name, number, match.group(1)))
    return found
