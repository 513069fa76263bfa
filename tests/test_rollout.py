"""The rollout engine: same tokens as ``generate``, the sampling policy's logprobs, TRL's contract.

CPU tests use a tiny random llama (grouped-query attention, weights scaled so greedy decoding
does not repeat one token) with SmolLM2's tokenizer; the engine runs there without CUDA graphs.
The GPU tests (``-m gpu``) repeat the checks with graphs captured, and are skipped without CUDA.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")

from psychohistory.training.rollout import (  # noqa: E402
    RolloutEngine,
    Sampling,
    TRLRollout,
    choose_lora_mode,
    sample,
    unsupported_reason,
)

CUDA = torch.cuda.is_available()
gpu = pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
PROMPTS = ["Hello there, how are you", "A", "The quick brown fox jumps over the lazy dog, again",
           "Hello there, how are you"]


@pytest.fixture(scope="module")
def tokenizer():
    from psychohistory.training.models import SMOLLM2, load_tokenizer

    tok = load_tokenizer(SMOLLM2)
    tok.padding_side = "left"
    return tok


def tiny_llama(tokenizer, *, seed=0, dtype=torch.float32, device="cpu", layers=2, std=0.15):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                         num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=1024, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                         tie_word_embeddings=True)
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0, std)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model.to(device=device, dtype=dtype).eval()


def with_lora(model, *, seed=1):
    """A peft model whose adapter is not the identity (B is random, not zero)."""
    from peft import LoraConfig, get_peft_model

    peft = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear",
                                            task_type="CAUSAL_LM"))
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, p in peft.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.3)
    return peft.eval()


def engine(model, tokenizer, steps=24, **options):
    return RolloutEngine(model, pad_token_id=tokenizer.pad_token_id,
                         eos_token_ids=[tokenizer.eos_token_id], max_new_tokens=steps,
                         prompt_bucket=16, **options)


def ids_of(tokenizer, prompts=PROMPTS):
    return [tokenizer(p)["input_ids"] for p in prompts]


def reference(model, tokenizer, prompts=PROMPTS, steps=24, **generate_options):
    """``model.generate`` on the left-padded batch, cut after the first end token."""
    enc = tokenizer(prompts, return_tensors="pt", padding=True).to(model.device)
    out = model.generate(**enc, max_new_tokens=steps, pad_token_id=tokenizer.pad_token_id,
                         **generate_options)
    rows = out[:, enc["input_ids"].shape[1]:].tolist()
    eos = tokenizer.eos_token_id
    return [row[:row.index(eos) + 1] if eos in row else row for row in rows]


def training_logprobs(model, prompt_ids, completions, temperature=1.0):
    """Per-token logprobs of the completions from one full forward pass (what TRL trains on)."""
    out = []
    for p, c in zip(prompt_ids, completions, strict=True):
        x = torch.tensor([p + c], device=model.device)
        with torch.no_grad():
            logits = model(input_ids=x).logits[0, len(p) - 1:-1].float() / temperature
        lp = torch.log_softmax(logits, -1).gather(-1, torch.tensor(c, device=x.device)[:, None])
        out.append(lp.squeeze(-1).cpu())
    return out


# ------------------------------------------------------------------ CPU: same tokens, same logprobs


@pytest.mark.parametrize("lora", [None, "merge", "adapter"])
def test_greedy_tokens_equal_generate(tokenizer, lora):
    model = tiny_llama(tokenizer)
    if lora:
        model = with_lora(model)
    ids = ids_of(tokenizer)
    got = engine(model, tokenizer, sampling=Sampling(greedy=True),
                 lora=lora or "auto").generate(ids)
    want = reference(model, tokenizer, do_sample=False)
    assert got.completion_ids == want
    assert len({tuple(c) for c in want}) >= 3  # the outputs are not degenerate
    assert not got.graphed


def test_sampled_tokens_equal_generate_under_one_seed(tokenizer):
    """torch's multinomial draws by the exponential race as the engine does: one seed, one answer."""
    model = tiny_llama(tokenizer)
    eng = engine(model, tokenizer)
    torch.manual_seed(123)
    got = eng.generate(ids_of(tokenizer))
    torch.manual_seed(123)
    want = reference(model, tokenizer, do_sample=True, top_k=0, top_p=1.0, temperature=1.0)
    assert got.completion_ids == want


@pytest.mark.parametrize("lora", ["merge", "adapter"])
def test_sampled_logprobs_agree_with_a_training_forward_pass(tokenizer, lora):
    model = with_lora(tiny_llama(tokenizer))
    ids = ids_of(tokenizer)
    rollout = engine(model, tokenizer, lora=lora, sampling=Sampling(temperature=0.7)).generate(ids)
    ref = training_logprobs(model, ids, rollout.completion_ids, temperature=0.7)
    diff = torch.cat([torch.tensor(a) - b for a, b in zip(rollout.logprobs, ref, strict=True)])
    assert diff.abs().max() < 1e-4


def test_bf16_logprobs_agree_within_1e_2(tokenizer):
    # weights of a real model's scale (std 0.02): bf16 rounding of the merged copy then costs
    # about what bf16 itself does (mean |diff| ~2e-3 here)
    model = with_lora(tiny_llama(tokenizer, dtype=torch.bfloat16, std=0.02))
    ids = ids_of(tokenizer)
    rollout = engine(model, tokenizer).generate(ids)
    ref = training_logprobs(model, ids, rollout.completion_ids)
    diff = torch.cat([torch.tensor(a) - b for a, b in zip(rollout.logprobs, ref, strict=True)])
    assert diff.abs().mean() < 1e-2


def test_merged_copy_follows_the_adapter_after_sync(tokenizer):
    model = with_lora(tiny_llama(tokenizer))
    eng = engine(model, tokenizer, sampling=Sampling(greedy=True), lora="merge")
    before = eng.generate(ids_of(tokenizer)).completion_ids
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.mul_(-2.0)
    stale = eng.generate(ids_of(tokenizer)).completion_ids
    eng.sync_weights()
    fresh = eng.generate(ids_of(tokenizer)).completion_ids
    assert stale == before
    assert fresh == reference(model, tokenizer, do_sample=False) != before


def test_the_merged_copy_shares_all_but_the_adapted_weights(tokenizer):
    model = with_lora(tiny_llama(tokenizer))
    eng = engine(model, tokenizer, lora="merge")
    base = model.get_base_model()
    assert eng.runner.model.embed_tokens.weight is base.model.embed_tokens.weight
    assert eng.runner.model.layers[0].self_attn.q_proj.weight is not \
        base.model.layers[0].self_attn.q_proj.base_layer.weight
    assert base.training is False and eng.runner.training is False
    n_linear = 7 * 2  # q k v o gate up down, two layers
    assert len(eng.copy.pairs) == n_linear
    assert choose_lora_mode(model)[0] == "merge"


def test_a_batch_stops_when_every_sequence_has_ended(tokenizer):
    model = tiny_llama(tokenizer)
    ids = [tokenizer("Hello there")["input_ids"]] * 3
    first = engine(model, tokenizer, sampling=Sampling(greedy=True)).generate(ids)
    end = first.completion_ids[0][3]  # make the 4th greedy token the end token
    eng = RolloutEngine(model, pad_token_id=tokenizer.pad_token_id, eos_token_ids=[end],
                        max_new_tokens=64, sampling=Sampling(greedy=True), check_every=2)
    rollout = eng.generate(ids)
    assert [c[-1] for c in rollout.completion_ids] == [end] * 3
    assert all(len(c) == first.completion_ids[0].index(end) + 1 for c in rollout.completion_ids)
    assert rollout.decode_steps < 8


def test_top_k_one_and_tiny_top_p_are_greedy():
    logits = torch.randn(5, 50)
    for how in (Sampling(top_k=1), Sampling(top_p=1e-6), Sampling(min_p=0.9999)):
        tokens, logprobs = sample(logits, how)
        assert tokens.tolist() == logits.argmax(-1).tolist()
        assert torch.allclose(logprobs, torch.log_softmax(logits, -1).max(-1).values)
    with pytest.raises(ValueError, match="top_p"):
        Sampling(top_p=0)


def test_unsupported_models_are_named(tokenizer):
    model = tiny_llama(tokenizer)
    assert unsupported_reason(model) is None
    assert "repetition_penalty" in unsupported_reason(model, repetition_penalty=1.1)
    assert "num_beams" in unsupported_reason(model, generation_kwargs={"num_beams": 2})
    model.config.model_type = "gpt2"
    assert "gpt2" in unsupported_reason(model)


# ------------------------------------------------------------------ TRL integration


def test_trainer_uses_the_engine_through_rollout_func(tmp_path, tokenizer):
    import psychohistory as ph
    from psychohistory.training.config import TrainerConfig
    from psychohistory.training.rollout import TRLRollout

    calls = []
    original = TRLRollout.__call__

    def spy(self, prompts, trainer):
        out = original(self, prompts, trainer)
        calls.append((len(prompts), trainer.state.global_step))
        return out

    TRLRollout.__call__ = spy
    try:
        config = TrainerConfig(output_dir=str(tmp_path / "grpo"), max_steps=2, num_generations=2,
                               per_device_train_batch_size=4, max_completion_length=8,
                               save_steps=100, rollout="engine")
        result = ph.Trainer(tiny_llama(tokenizer), tokenizer=tokenizer, config=config,
                            rewards=["format"]).fit(ph.load_dataset("synthetic")[:2])
    finally:
        TRLRollout.__call__ = original
    assert result.global_step == 2
    assert calls == [(4, 0), (4, 1)]  # the whole step's completions in one call per step
    logged = {k for entry in result.log_history for k in entry}
    assert {"rollout/decode_s", "rollout/tokens_per_s", "rollout/cuda_graph"} <= logged


def test_rollout_defaults_and_refusals(tokenizer, monkeypatch):
    import importlib.util

    from psychohistory.errors import ConfigError
    from psychohistory.training.config import TrainerConfig
    from psychohistory.training.trainer import choose_rollout

    model = tiny_llama(tokenizer)
    func, why = choose_rollout(TrainerConfig(), model, cuda=False)
    assert func is None and "no CUDA GPU" in why
    func, why = choose_rollout(TrainerConfig(rollout="engine"), model, cuda=False)
    assert isinstance(func, TRLRollout)
    func, why = choose_rollout(TrainerConfig(), model, cuda=True)
    assert isinstance(func, TRLRollout) and "engine" in why
    func, why = choose_rollout(TrainerConfig(quantize="4bit"), model, cuda=True)
    assert func is None and "4-bit" in why
    func, why = choose_rollout(TrainerConfig(rollout="trl"), model, cuda=True)
    assert func is None
    func, why = choose_rollout(TrainerConfig(extra={"repetition_penalty": 1.2}), model, cuda=True)
    assert func is None and "repetition_penalty" in why
    with pytest.raises(ConfigError, match="repetition_penalty"):
        choose_rollout(TrainerConfig(rollout="engine", extra={"repetition_penalty": 1.2}), model,
                       cuda=True)
    with pytest.raises(ConfigError, match="rollout must be one of"):
        TrainerConfig(rollout="vllm")
    with pytest.raises(ConfigError, match="use_vllm"):
        TrainerConfig(rollout="engine", extra={"use_vllm": True})
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "vllm" else real_find_spec(name, *a))
    with pytest.raises(ConfigError, match="pip install vllm"):
        choose_rollout(TrainerConfig(extra={"use_vllm": True}), model, cuda=True)


@pytest.mark.slow
def test_a_toy_reward_improves_as_fast_with_the_engine(tmp_path, tokenizer):
    """GRPO through TRL with and without rollout_func, same seed: the reward climbs alike."""
    from datasets import Dataset
    from peft import LoraConfig
    from trl import GRPOConfig, GRPOTrainer

    low = 1000

    def low_tokens(completions, completion_ids=None, **kwargs):
        return [sum(t < low for t in ids) / max(1, len(ids)) for ids in completion_ids]

    words = ["river", "cloud", "stone", "apple", "tiger", "music", "paper", "glass"]
    dataset = Dataset.from_list([{"prompt": f"The word is {w}"} for w in words])
    curves = {}
    for mode in ("trl", "engine"):
        from psychohistory.training.models import tiny_random_model

        model, tok = tiny_random_model()
        torch.manual_seed(1)
        with torch.no_grad():  # a direction that favours the low ids: something to learn
            model.model.embed_tokens.weight[:low] += torch.randn(64) * 0.07
        args = GRPOConfig(output_dir=str(tmp_path / mode), max_steps=8, learning_rate=0.02,
                          num_generations=8, per_device_train_batch_size=16,
                          max_completion_length=8, use_cpu=True, report_to="none",
                          logging_steps=1, save_strategy="no", seed=0,
                          gradient_checkpointing=False)
        grpo = GRPOTrainer(model=model, reward_funcs=[low_tokens], args=args,
                           train_dataset=dataset, processing_class=tok,
                           peft_config=LoraConfig(r=4, lora_alpha=8, target_modules="all-linear",
                                                  task_type="CAUSAL_LM"),
                           rollout_func=TRLRollout() if mode == "engine" else None)
        grpo.train()
        curves[mode] = [e["reward"] for e in grpo.state.log_history if "reward" in e]
    gain = {mode: sum(c[-3:]) / 3 - sum(c[:2]) / 2 for mode, c in curves.items()}
    assert gain["trl"] > 0.2, curves
    assert gain["engine"] >= 0.8 * gain["trl"], curves


# ------------------------------------------------------------------ GPU


@gpu
def test_gpu_greedy_with_cuda_graphs_equals_generate(tokenizer):
    model = with_lora(tiny_llama(tokenizer, device="cuda", layers=4))
    ids = ids_of(tokenizer)
    torch.backends.cuda.matmul.allow_tf32 = False
    eng = engine(model, tokenizer, sampling=Sampling(greedy=True), steps=48)
    first, second = eng.generate(ids), eng.generate(ids)  # capture, then replay
    assert first.graphed and second.graphed
    want = reference(model, tokenizer, steps=48, do_sample=False)
    assert first.completion_ids == want and second.completion_ids == want


@gpu
def test_gpu_graphs_and_eager_decode_agree_in_bf16(tokenizer):
    model = with_lora(tiny_llama(tokenizer, device="cuda", dtype=torch.bfloat16, layers=4))
    ids = ids_of(tokenizer) * 4
    graphed = engine(model, tokenizer, sampling=Sampling(greedy=True), steps=48).generate(ids)
    eager = engine(model, tokenizer, sampling=Sampling(greedy=True), steps=48,
                   cuda_graphs=False).generate(ids)
    assert graphed.graphed and not eager.graphed
    assert graphed.completion_ids == eager.completion_ids


@gpu
def test_gpu_bf16_sampled_logprobs_agree_with_training_pass(tokenizer):
    model = with_lora(tiny_llama(tokenizer, device="cuda", dtype=torch.bfloat16, layers=4,
                                 std=0.02))
    ids = ids_of(tokenizer) * 8
    for lora in ("merge", "adapter"):
        eng = engine(model, tokenizer, steps=48, lora=lora)
        rollout = eng.generate(ids)
        assert rollout.graphed, eng._batches
        ref = training_logprobs(model, ids, rollout.completion_ids)
        diff = torch.cat([torch.tensor(a) - b for a, b in zip(rollout.logprobs, ref, strict=True)])
        assert diff.abs().mean() < 1e-2, (lora, diff.abs().mean())
