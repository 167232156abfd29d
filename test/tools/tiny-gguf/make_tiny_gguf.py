#!/usr/bin/env python3
"""Writes a tiny llama-architecture GGUF model with random weights, for tests that need a live
llama.cpp server and do not care what it says.

The tokenizer is a real one: every `tokenizer.*` field is copied from a llama.cpp vocabulary
file (`models/ggml-vocab-*.gguf` in the llama.cpp sources; the setup uses llama-spm, 32000
tokens), and the embedding and output matrices are sized to its vocabulary.

The output matrix is drawn so that generation is useful to a test: rows of normal text tokens
are large enough that top-k sampling keeps only them, while control, unknown and byte tokens
(end-of-sequence included) get zero rows and are never sampled. A request therefore runs to its
token limit, and every generated token is a piece of printable text.

Needs the `gguf` Python package (it brings numpy).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import gguf

# A plain chat template of our own: "role: content" lines, then "assistant: ".
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ message['role'] }}: {{ message['content'] }}\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}assistant: {% endif %}"
)

NORMAL_TOKEN = int(gguf.TokenType.NORMAL)


def copy_tokenizer(vocab_path: str, writer: gguf.GGUFWriter) -> tuple[int, np.ndarray]:
    """Copies the tokenizer fields of a vocabulary GGUF; returns the vocabulary size and token types."""
    reader = gguf.GGUFReader(vocab_path)
    n_vocab = 0
    token_types: np.ndarray | None = None
    for key, field in reader.fields.items():
        if not key.startswith("tokenizer.") or key == "tokenizer.chat_template":
            continue
        vtype = field.types[0]
        if vtype == gguf.GGUFValueType.ARRAY:
            sub_type = field.types[1]
            values = field.contents()
            writer.add_key_value(key, values, vtype, sub_type=sub_type)
            if key == "tokenizer.ggml.tokens":
                n_vocab = len(values)
            if key == "tokenizer.ggml.token_type":
                token_types = np.asarray(values, dtype=np.int32)
        else:
            writer.add_key_value(key, field.contents(), vtype)
    if n_vocab == 0:
        raise SystemExit(f"{vocab_path}: no tokenizer.ggml.tokens")
    if token_types is None:
        token_types = np.full(n_vocab, NORMAL_TOKEN, dtype=np.int32)
    return n_vocab, token_types


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vocab", required=True, help="a llama.cpp ggml-vocab-*.gguf file (llama architecture tokenizer)")
    ap.add_argument("--out", required=True, help="the GGUF file to write")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--ff", type=int, default=128, help="feed-forward width")
    ap.add_argument("--ctx", type=int, default=2048, help="training context length")
    ap.add_argument("--seed", type=int, default=20240601)
    ap.add_argument("--name", default="tiny-random-llama")
    args = ap.parse_args()
    if args.hidden % args.heads:
        ap.error("--hidden must be a multiple of --heads")

    rng = np.random.default_rng(args.seed)
    # gguf.GGUFWriter's arch fixes the "llama." prefix of the hyperparameter keys.
    writer = gguf.GGUFWriter(args.out, arch="llama")
    writer.add_name(args.name)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    writer.add_context_length(args.ctx)
    writer.add_embedding_length(args.hidden)
    writer.add_block_count(args.layers)
    writer.add_feed_forward_length(args.ff)
    writer.add_head_count(args.heads)
    writer.add_head_count_kv(args.heads)
    writer.add_rope_dimension_count(args.hidden // args.heads)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    n_vocab, token_types = copy_tokenizer(args.vocab, writer)
    writer.add_vocab_size(n_vocab)
    writer.add_chat_template(CHAT_TEMPLATE)

    h, ff = args.hidden, args.ff

    # numpy shapes are ggml's dimensions reversed: a ggml {n_in, n_out} matrix is (n_out, n_in).
    def matrix(rows: int, cols: int, std: float = 0.02) -> np.ndarray:
        return rng.normal(0.0, std, size=(rows, cols)).astype(np.float16)

    def ones(n: int) -> np.ndarray:
        return np.ones(n, dtype=np.float32)

    writer.add_tensor("token_embd.weight", matrix(n_vocab, h, 1.0))
    for i in range(args.layers):
        writer.add_tensor(f"blk.{i}.attn_norm.weight", ones(h))
        writer.add_tensor(f"blk.{i}.attn_q.weight", matrix(h, h))
        writer.add_tensor(f"blk.{i}.attn_k.weight", matrix(h, h))
        writer.add_tensor(f"blk.{i}.attn_v.weight", matrix(h, h))
        writer.add_tensor(f"blk.{i}.attn_output.weight", matrix(h, h))
        writer.add_tensor(f"blk.{i}.ffn_norm.weight", ones(h))
        writer.add_tensor(f"blk.{i}.ffn_gate.weight", matrix(ff, h))
        writer.add_tensor(f"blk.{i}.ffn_up.weight", matrix(ff, h))
        writer.add_tensor(f"blk.{i}.ffn_down.weight", matrix(h, ff))
    writer.add_tensor("output_norm.weight", ones(h))
    # After the final RMS norm the hidden state has entries of about 1, so a row with entries of
    # std s gives logits of std s*sqrt(hidden): 3 here, against 0 for the zeroed rows.
    output = matrix(n_vocab, h, 3.0 / np.sqrt(h))
    output[token_types != NORMAL_TOKEN] = 0
    writer.add_tensor("output.weight", output)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    print(f"{args.out}: llama, {args.layers} layers, hidden {h}, {args.heads} heads, ff {ff}, ctx {args.ctx}, vocab {n_vocab}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
