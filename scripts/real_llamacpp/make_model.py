"""Make a tiny random-weight llama GGUF that llama-server can load, offline, in a second.

    PYTHONPATH=$SRC/gguf-py .venv/bin/python scripts/real_llamacpp/make_model.py $SRC OUT.gguf

No model can be downloaded here, so we write one: llama's architecture at a toy size (2
layers, 64 wide, head dimension 32), random weights, and the real SentencePiece vocabulary of
32,000 tokens that llama.cpp's own tests use (`models/ggml-vocab-llama-spm.gguf` in its source,
which carries the vocabulary and no weights). Its output is gibberish; prompt counts are
llama's own (a BOS on every prompt), which is what the course's usage checks need to see.
Written with `gguf-py` from the same source tree, so the format is the one the server reads.
"""

from __future__ import annotations

import pathlib
import sys

import numpy as np
from gguf import GGUFReader, GGUFWriter

N_EMBD, N_LAYERS, N_HEADS, N_HEADS_KV, N_FF, CONTEXT = 64, 2, 2, 2, 128, 2048


def copy_vocabulary(vocab: GGUFReader, writer: GGUFWriter) -> int:
    fields = vocab.fields
    tokens = list(fields["tokenizer.ggml.tokens"].contents())
    writer.add_tokenizer_model(fields["tokenizer.ggml.model"].contents())
    writer.add_tokenizer_pre(fields["tokenizer.ggml.pre"].contents())
    writer.add_token_list(tokens)
    writer.add_token_scores(list(fields["tokenizer.ggml.scores"].contents()))
    writer.add_token_types(list(fields["tokenizer.ggml.token_type"].contents()))
    writer.add_bos_token_id(fields["tokenizer.ggml.bos_token_id"].contents())
    writer.add_eos_token_id(fields["tokenizer.ggml.eos_token_id"].contents())
    writer.add_unk_token_id(fields["tokenizer.ggml.unknown_token_id"].contents())
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    # A trivial chat template, so /v1/chat/completions works (the vocabulary has none).
    writer.add_chat_template(
        "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    return len(tokens)


def main(source: pathlib.Path, out: pathlib.Path) -> None:
    if out.exists():
        return  # made already: the same seed would make the same file
    vocab = GGUFReader(source / "models" / "ggml-vocab-llama-spm.gguf")
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = GGUFWriter(str(out), "llama")
    writer.add_name("inferlab-tiny-llama")
    writer.add_context_length(CONTEXT)
    writer.add_embedding_length(N_EMBD)
    writer.add_block_count(N_LAYERS)
    writer.add_feed_forward_length(N_FF)
    writer.add_head_count(N_HEADS)
    writer.add_head_count_kv(N_HEADS_KV)
    writer.add_rope_dimension_count(N_EMBD // N_HEADS)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(0)  # all float32
    n_vocab = copy_vocabulary(vocab, writer)
    writer.add_vocab_size(n_vocab)

    rng = np.random.default_rng(0)

    def weight(*shape: int) -> np.ndarray:  # (out, in), as torch stores a Linear
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    kv = N_HEADS_KV * (N_EMBD // N_HEADS)
    writer.add_tensor("token_embd.weight", weight(n_vocab, N_EMBD))
    writer.add_tensor("output_norm.weight", np.ones(N_EMBD, dtype=np.float32))
    writer.add_tensor("output.weight", weight(n_vocab, N_EMBD))
    for layer in range(N_LAYERS):
        block = f"blk.{layer}."
        writer.add_tensor(block + "attn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        writer.add_tensor(block + "attn_q.weight", weight(N_EMBD, N_EMBD))
        writer.add_tensor(block + "attn_k.weight", weight(kv, N_EMBD))
        writer.add_tensor(block + "attn_v.weight", weight(kv, N_EMBD))
        writer.add_tensor(block + "attn_output.weight", weight(N_EMBD, N_EMBD))
        writer.add_tensor(block + "ffn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        writer.add_tensor(block + "ffn_gate.weight", weight(N_FF, N_EMBD))
        writer.add_tensor(block + "ffn_up.weight", weight(N_FF, N_EMBD))
        writer.add_tensor(block + "ffn_down.weight", weight(N_EMBD, N_FF))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


if __name__ == "__main__":
    main(pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]))
