"""The operator documents stay true to the code: every message docs/troubleshooting.md quotes in
its tables is emitted by the sources, and every repository file the documents name exists."""
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
DOCS = ["docs/troubleshooting.md", "docs/operations.md", "docs/security-model.md"]


def read(path):
    with open(os.path.join(ROOT, path)) as handle:
        return handle.read()


def sources_text():
    chunks = []
    for folder, _, files in os.walk(os.path.join(ROOT, "Sources")):
        for name in files:
            if name.endswith((".swift", ".c")):
                with open(os.path.join(folder, name)) as handle:
                    chunks.append(handle.read())
    # Swift splits long messages over lines with `" + "`; join them as the program does.
    return re.sub(r'"\s*\+\s*"', "", "\n".join(chunks))


def quoted_messages():
    """Backticked spans in the first column of troubleshooting.md's tables."""
    found = []
    for line in read("docs/troubleshooting.md").splitlines():
        if not line.startswith("| `"):
            continue
        first_cell = line.split(" | ")[0]
        # A `|` inside a table cell is written `\|` in Markdown.
        found += [span.replace("\\|", "|") for span in re.findall(r"`([^`]+)`", first_cell)]
    return found


# Values the documents spell out where the code interpolates a named constant.
CONSTANTS = {
    "107": "\\(Self.maxPathBytes)",
    "4096": "\\(maxBytes)",
    "aes256-gcm96": "\\(KeyMetadata.requiredType)",
}
GRPC_CODE = re.compile(r"^[A-Z_]{2,} ")


def literal_fragments(message):
    """The parts of a quoted message outside `<placeholders>` and `…`, without a leading gRPC
    status code name (the front sends the code as a number and the text as grpc-message)."""
    message = GRPC_CODE.sub("", message)
    for value, expression in CONSTANTS.items():
        message = message.replace(value, expression)
    parts = re.split(r"<[^>]+>|…|\"|\\\([^)]*\)", message)
    return [part.strip() for part in parts if len(part.strip()) >= 6]


def test_troubleshooting_quotes_a_substantial_number_of_messages():
    assert len(quoted_messages()) >= 60


@pytest.mark.parametrize("message", quoted_messages())
def test_every_quoted_message_is_emitted_by_the_sources(message):
    text = sources_text()
    for fragment in literal_fragments(message):
        assert fragment in text, f"{fragment!r} (from {message!r}) is not in Sources/"


@pytest.mark.parametrize("doc", DOCS)
def test_every_repository_file_a_document_names_exists(doc):
    named = set(re.findall(r"`((?:deploy|systemd|scripts|docs|Tests)/[A-Za-z0-9_./{},-]+)`", read(doc)))
    # Not inside an absolute path (/etc/systemd/system/... is the node's, not the repository's).
    named |= set(re.findall(r"(?<![/\w.])((?:deploy|systemd|scripts|docs)/[A-Za-z0-9_./-]+\.(?:md|py|sh|yaml|hcl|env|nft|json|conf|service|socket))",
                            read(doc)))
    assert named
    for path in sorted(named):
        expanded = [path]
        brace = re.search(r"\{([^}]*)\}", path)
        if brace:
            expanded = [path[:brace.start()] + choice + path[brace.end():] for choice in brace.group(1).split(",")]
        for candidate in expanded:
            candidate = candidate.rstrip(".,")
            assert os.path.exists(os.path.join(ROOT, candidate)), f"{doc} names {candidate}, which does not exist"
