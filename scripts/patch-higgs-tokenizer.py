#!/usr/bin/env python3
"""Renames the added tokens of a Llama-3 tokenizer.json to the Higgs Audio v2 names.

The patch is textual on purpose: only the JSON string after each added token's "content": is replaced, so the
result is byte-for-byte reproducible and its sha256 can be checked against the prepare goldens.
usage: patch-higgs-tokenizer.py NAMES_JSON IN_TOKENIZER_JSON OUT_TOKENIZER_JSON
"""
import hashlib
import json
import re
import sys


def main(names_path, src, dst):
    with open(names_path, encoding="utf-8") as f:
        table = json.load(f)
    first, names = table["first_id"], table["names"]
    if len(names) != 256:
        sys.exit(f"{names_path}: expected 256 names, found {len(names)}")
    digest = hashlib.sha256("\n".join(names).encode("utf-8")).hexdigest()
    if digest != table["names_sha256"]:
        sys.exit(f"{names_path}: names_sha256 mismatch ({digest})")

    with open(src, encoding="utf-8", newline="") as f:
        text = f.read()
    # the added_tokens array comes first in HF tokenizer.json; never touch anything after it
    start = text.index('"added_tokens"')
    end = text.index("]", start)
    pattern = re.compile(r'("id"\s*:\s*(\d+)\s*,\s*"content"\s*:\s*)"(?:[^"\\]|\\.)*"')
    seen = set()

    def rename(m):
        tid = int(m.group(2))
        if not first <= tid < first + len(names):
            sys.exit(f"{src}: added token id {tid} outside {first}..{first + len(names) - 1}")
        seen.add(tid)
        return m.group(1) + json.dumps(names[tid - first], ensure_ascii=False)

    patched = pattern.sub(rename, text[start:end])
    if len(seen) != len(names):
        sys.exit(f"{src}: renamed {len(seen)} added tokens, expected {len(names)}")
    with open(dst, "w", encoding="utf-8", newline="") as f:
        f.write(text[:start] + patched + text[end:])


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
