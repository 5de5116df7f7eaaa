"""Sparse upcycling: noiseless copies reproduce the dense model; checkpoints load back."""

from __future__ import annotations

import pytest
import torch
import transformers
from moe_fixtures import TINY
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast

from neko.errors import NekoError
from neko.moe.upcycle import SUPPORTED_ARCHITECTURES, moe_config, upcycle, upcycle_checkpoint

# (dense config, dense model, extra config, expected MoE class)
DENSE = {
    "llama": ("LlamaConfig", "LlamaForCausalLM", {}, "MixtralForCausalLM"),
    "llama-tied": ("LlamaConfig", "LlamaForCausalLM", dict(tie_word_embeddings=True), "MixtralForCausalLM"),
    "mistral": ("MistralConfig", "MistralForCausalLM", dict(sliding_window=5), "MixtralForCausalLM"),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM", {}, "Qwen2MoeForCausalLM"),
    "qwen2-sliding": (
        "Qwen2Config",
        "Qwen2ForCausalLM",
        dict(use_sliding_window=True, sliding_window=4, max_window_layers=1),
        "Qwen2MoeForCausalLM",
    ),
    "qwen3": ("Qwen3Config", "Qwen3ForCausalLM", dict(head_dim=16), "Qwen3MoeForCausalLM"),
}


def dense_model(kind: str, seed: int = 0) -> torch.nn.Module:
    """A tiny random dense model whose every weight (biases and norms included) is non-trivial."""
    config_name, model_name, extra, _ = DENSE[kind]
    config = getattr(transformers, config_name)(**TINY, **extra)
    torch.manual_seed(seed)
    model = getattr(transformers, model_name)(config).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.1)
    return model


def tokens(seed: int = 1) -> torch.Tensor:
    return torch.randint(0, TINY["vocab_size"], (2, 12), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("kind", list(DENSE))
def test_noiseless_upcycling_reproduces_the_dense_logits(kind):
    dense = dense_model(kind)
    moe = upcycle(dense, num_experts=4, num_experts_per_tok=2)
    assert type(moe).__name__ == DENSE[kind][3]
    assert not moe.training
    with torch.no_grad():
        expected = dense(tokens()).logits
        actual = moe(tokens()).logits
    assert torch.allclose(actual, expected, atol=1e-5)


def test_experts_are_fused_copies_of_the_dense_mlp():
    dense = dense_model("llama")
    moe = upcycle(dense, num_experts=3, num_experts_per_tok=1)
    mlp = dense.model.layers[1].mlp
    block = moe.model.layers[1].mlp
    assert block.experts.gate_up_proj.shape == (3, 2 * 48, 32)
    assert block.experts.down_proj.shape == (3, 32, 48)
    assert block.gate.weight.shape == (3, 32)
    for expert in range(3):
        gate, up = block.experts.gate_up_proj[expert].chunk(2, dim=0)
        assert torch.equal(gate, mlp.gate_proj.weight)
        assert torch.equal(up, mlp.up_proj.weight)
        assert torch.equal(block.experts.down_proj[expert], mlp.down_proj.weight)
    assert 0 < block.gate.weight.std() < 0.05


def test_noise_makes_experts_differ_and_is_seeded():
    dense = dense_model("qwen2")
    noisy = upcycle(dense, num_experts=4, noise_std=0.01, seed=3)
    experts = noisy.model.layers[0].mlp.experts.gate_up_proj
    assert not torch.equal(experts[0], experts[1])
    difference = experts[0] - torch.cat(
        [dense.model.layers[0].mlp.gate_proj.weight, dense.model.layers[0].mlp.up_proj.weight]
    )
    assert 0.005 < difference.std() < 0.02
    again = upcycle(dense, num_experts=4, noise_std=0.01, seed=3)
    assert torch.equal(again.model.layers[0].mlp.experts.gate_up_proj, experts)
    assert torch.equal(again.model.layers[0].mlp.gate.weight, noisy.model.layers[0].mlp.gate.weight)
    with torch.no_grad():
        assert not torch.allclose(noisy(tokens()).logits, dense(tokens()).logits, atol=1e-5)


def test_qwen2_moe_shared_expert_is_disabled():
    moe = upcycle(dense_model("qwen2"), num_experts=2)
    block = moe.model.layers[0].mlp
    assert moe.config.shared_expert_intermediate_size == 0
    assert block.shared_expert.down_proj.weight.numel() == 0
    assert moe.config.norm_topk_prob


def test_unsupported_architectures_and_arguments():
    gpt2 = transformers.GPT2Config(n_embd=32, n_layer=1, n_head=4, vocab_size=64)
    with pytest.raises(NekoError, match="supported architectures: llama, mistral, qwen2, qwen3"):
        moe_config(gpt2, 4)
    assert SUPPORTED_ARCHITECTURES == ("llama", "mistral", "qwen2", "qwen3")
    with pytest.raises(NekoError, match="no biases"):
        moe_config(transformers.LlamaConfig(**TINY, mlp_bias=True), 4)
    with pytest.raises(NekoError, match="num_experts_per_tok"):
        moe_config(transformers.LlamaConfig(**TINY), 2, num_experts_per_tok=3)
    mixed = transformers.Qwen3Config(**TINY, use_sliding_window=True, sliding_window=4, max_window_layers=1)
    with pytest.raises(NekoError, match="mixing sliding-window and full attention"):
        moe_config(mixed, 4)


def _save_tokenizer(directory) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"[UNK]": 0, "hello": 1, "world": 2}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]").save_pretrained(directory)


@pytest.mark.filterwarnings(
    "ignore:Initializing zero-element tensors:UserWarning"
)  # Qwen2-MoE's shared expert
@pytest.mark.parametrize("kind", ["llama-tied", "qwen2"])
def test_checkpoint_round_trip(tmp_path, kind):
    dense = dense_model(kind)
    dense.save_pretrained(tmp_path / "dense")
    _save_tokenizer(tmp_path / "dense")
    upcycle_checkpoint(tmp_path / "dense", tmp_path / "moe", num_experts=4, num_experts_per_tok=2)
    assert list((tmp_path / "moe").glob("*.safetensors"))
    assert not list((tmp_path / "moe").glob("*.bin"))
    moe = AutoModelForCausalLM.from_pretrained(tmp_path / "moe", use_safetensors=True)
    assert type(moe).__name__ == DENSE[kind][3]
    assert moe.config.tie_word_embeddings == dense.config.tie_word_embeddings
    with torch.no_grad():
        assert torch.allclose(moe(tokens()).logits, dense(tokens()).logits, atol=1e-5)
    assert AutoTokenizer.from_pretrained(tmp_path / "moe")("hello world")["input_ids"] == [1, 2]
    with pytest.raises(NekoError, match="not an empty directory"):
        upcycle_checkpoint(tmp_path / "dense", tmp_path / "moe", num_experts=4)


def test_checkpoint_errors(tmp_path):
    with pytest.raises(NekoError, match=r"no config\.json"):
        upcycle_checkpoint(tmp_path, tmp_path / "out", num_experts=4)
