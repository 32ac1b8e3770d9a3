"""Standard base64 decoding with Go's error positions.

Vault decodes with Go's ``base64.StdEncoding`` and passes its error text through unchanged
(``illegal base64 data at input byte N``), so the offset N must be computed as Go does: input is
read in quanta of four symbols, CR and LF are skipped, padding is required, and trailing bytes
after the padding are an error at their own offset.
"""

from __future__ import annotations

_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_DECODE = {c: i for i, c in enumerate(_ALPHABET)}
_PAD = ord("=")
_NEWLINES = (0x0A, 0x0D)


class Base64Error(ValueError):
    def __init__(self, offset: int):
        super().__init__(f"illegal base64 data at input byte {offset}")
        self.offset = offset


def decode(text: str | bytes) -> bytes:
    """Decode standard, padded base64; raise Base64Error at the offset Go would report."""
    src = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    out = bytearray()
    si, n = 0, len(src)
    while True:
        quantum = [0, 0, 0, 0]
        j = 0
        final_len = 4
        finished = False
        while j < 4:
            if si == n:
                if j == 0:
                    return bytes(out)
                raise Base64Error(si - j)
            c = src[si]
            si += 1
            value = _DECODE.get(c)
            if value is not None:
                quantum[j] = value
                j += 1
                continue
            if c in _NEWLINES:
                continue
            if c != _PAD:
                raise Base64Error(si - 1)
            # Padding: only valid after two or three symbols.
            if j < 2:
                raise Base64Error(si - 1)
            if j == 2:
                while si < n and src[si] in _NEWLINES:
                    si += 1
                if si == n:
                    raise Base64Error(n)
                if src[si] != _PAD:
                    raise Base64Error(si - 1)
                si += 1
            while si < n and src[si] in _NEWLINES:
                si += 1
            if si < n:
                raise Base64Error(si)
            final_len = j
            finished = True
            break
        value = quantum[0] << 18 | quantum[1] << 12 | quantum[2] << 6 | quantum[3]
        chunk = bytes(((value >> 16) & 0xFF, (value >> 8) & 0xFF, value & 0xFF))
        out += chunk[: final_len - 1]
        if finished:
            return bytes(out)
