import copy
import gc
import math
import weakref

import pytest
import torch
from torch import nn

from gseq.data import CharVocab, window_sampler
from gseq.models import CharLSTM, char_lm_loss, generate
from gseq.models._graph_sampler import STEPS, StaticStep, StepCache, sample_static
from gseq.models.sampling import NOISE_CHUNK, keep, sample

VOCAB = CharVocab.from_text("abcdefgh .")
PERIOD = "abcdefgh. "


@pytest.fixture(scope="module")
def random_model():
    torch.manual_seed(1)
    return CharLSTM(len(VOCAB), hidden_size=12, num_layers=2).double().eval()


@pytest.fixture(scope="module")
def periodic_model():
    """A small model trained until it continues the period 'abcdefgh. ' greedily."""
    torch.manual_seed(0)
    model = CharLSTM(len(VOCAB), hidden_size=24, num_layers=1)
    sample = window_sampler(VOCAB.encode(PERIOD * 40), seq_length=12, batch_size=16)
    opt = torch.optim.Adam(model.parameters(), lr=2e-2)
    g = torch.Generator().manual_seed(0)
    for _ in range(100):
        loss = char_lm_loss(model, sample(g))["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


class ConstantLogits(nn.Module):
    """Predicts the same logits at every step (to check the sampling distribution)."""

    def __init__(self, logits):
        super().__init__()
        self.register_buffer("z", torch.as_tensor(logits, dtype=torch.float32))
        self.vocab_size = self.z.numel()
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, x, state=None):
        return self.z.expand(x.size(0), x.size(1), -1), state

    def step(self, ids, state=None):  # no bias: the sampling loop adds the noise to the logits
        return self.z.expand(ids.size(0), -1), state


class StepWithoutBias(nn.Module):
    """Meets CharModel with a step that takes no ``bias``: the loop adds the noise to its logits."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.vocab_size = inner, inner.vocab_size

    def forward(self, ids, state=None):
        return self.inner(ids, state)

    def step(self, ids, state=None):
        return self.inner.step(ids, state)


def on(model: nn.Module, device: torch.device) -> nn.Module:
    """A copy of ``model`` on ``device`` (the fixtures live on the CPU)."""
    return copy.deepcopy(model).to(device)


def reference_greedy(model, prompt, length):
    """Greedy continuation recomputed from the whole prefix at every step (no state carried)."""
    ids = VOCAB.encode(prompt).tolist()
    device = next(model.parameters()).device
    for _ in range(length):
        with torch.no_grad():
            logits, _ = model(torch.tensor([ids], device=device))
        ids.append(int(logits[0, -1].argmax()))
    return VOCAB.decode(ids[len(VOCAB.encode(prompt)):])


def test_greedy_is_deterministic_and_carries_the_state(random_model, device):
    model = on(random_model, device)
    out = generate(model, VOCAB, "abc", 45, temperature=0)
    g = torch.Generator(device=device).manual_seed(9)
    assert out == generate(model, VOCAB, "abc", 45, temperature=0, generator=g)
    assert out == [reference_greedy(model, "abc", 45)]


def test_greedy_is_the_limit_of_small_temperature(random_model):
    greedy = generate(random_model, VOCAB, "hg", 60, temperature=0, batch=3)
    cold = generate(random_model, VOCAB, "hg", 60, temperature=1e-9, batch=3,
                    generator=torch.Generator().manual_seed(0))
    assert cold == greedy and len(set(greedy)) == 1


def test_top_k_one_equals_greedy(random_model):
    greedy = generate(random_model, VOCAB, "a", 50, temperature=0)[0]
    for t in (0.5, 1.0, 3.0):
        g = torch.Generator().manual_seed(4)
        assert generate(random_model, VOCAB, "a", 50, temperature=t, top_k=1, generator=g)[0] == greedy


def test_seed_reproducibility_and_batch(random_model, device):
    model = on(random_model, device)

    def gen(seed):
        return torch.Generator(device=device).manual_seed(seed)
    a = generate(model, VOCAB, "", 300, 1.0, generator=gen(7), batch=4)
    b = generate(model, VOCAB, "", 300, 1.0, generator=gen(7), batch=4)
    c = generate(model, VOCAB, "", 300, 1.0, generator=gen(8), batch=4)
    assert a == b and a != c
    assert len(a) == 4 and all(len(s) == 300 and set(s) <= set(VOCAB.chars) for s in a)
    assert len(set(a)) == 4  # independent samples
    assert len(set(s[0] for s in generate(model, VOCAB, "", 1, 1.0, batch=200))) > 5  # random first character
    torch.manual_seed(3)
    d = generate(model, VOCAB, "", 20, 1.0)
    torch.manual_seed(3)
    assert d == generate(model, VOCAB, "", 20, 1.0)  # generator=None uses torch's global generator


def test_prompt_continuation_beyond_the_training_length(periodic_model):
    # trained on windows of 12 characters, continued greedily for 200
    out = generate(periodic_model, VOCAB, "abcd", 200, temperature=0)[0]
    assert out == (("efgh. " + PERIOD * 30)[:200])
    cool = generate(periodic_model, VOCAB, "abcd", 200, temperature=0.3, generator=torch.Generator().manual_seed(0))[0]
    assert sum(a == b for a, b in zip(cool, out)) > 190


def test_sampling_matches_softmax_over_temperature():
    z = torch.tensor([2.0, 1.0, 0.0, -1.0, 0.5, -3.0, 1.5, 0.2, -0.5, 0.0])
    model = ConstantLogits(z)
    n = 20000
    for temperature in (0.5, 1.0, 2.0):
        texts = generate(model, VOCAB, "a", 2, temperature, generator=torch.Generator().manual_seed(1), batch=n)
        counts = torch.bincount(VOCAB.encode("".join(texts)), minlength=10).double() / (2 * n)
        expected = torch.softmax(z.double() / temperature, 0)  # the report's softmax(tau z) with tau = 1/T
        assert torch.allclose(counts, expected, atol=0.012), (temperature, counts, expected)


def fast(model, prompt, length, temperature, seed, batch=3):
    """The fast path: captured in a CUDA graph on CUDA, its static-buffer step run eagerly on the CPU."""
    device = next(model.parameters()).device
    with torch.inference_mode():
        return sample_static(model, VOCAB.encode(prompt), length, temperature,
                             torch.Generator(device=device).manual_seed(seed), batch, capture=device.type == "cuda")


def reference(model, prompt, length, temperature, seed, batch=3, **kwargs):
    device = next(model.parameters()).device
    with torch.inference_mode():
        return sample(model, VOCAB.encode(prompt), length, temperature,
                      generator=torch.Generator(device=device).manual_seed(seed), batch=batch, **kwargs)


class ReadoutSpy(StepWithoutBias):
    """A CharLSTM behind the contract's optional read-out bias, recording whether each step got ``bias``."""

    def __init__(self, inner):
        super().__init__(inner)
        self.biased = []

    @property
    def readout_bias(self):
        return self.inner.readout_bias

    def step(self, ids, state=None, bias=None):
        self.biased.append(bias is not None)
        return self.inner.step(ids, state, bias)


def test_fast_path_puts_the_noise_in_the_read_out_bias_and_samples_softmax_over_temperature():
    """With a zero read-out weight the logits are the bias z at every step, whatever the state: the
    noise-in-bias step samples softmax(z / T)."""
    z = torch.tensor([2.0, 1.0, 0.0, -1.0, 0.5, -3.0, 1.5, 0.2, -0.5, 0.0])
    model = ReadoutSpy(CharLSTM(len(VOCAB), hidden_size=4, num_layers=1))
    with torch.no_grad():
        model.inner.head.weight.zero_()
        model.inner.head.bias.copy_(z)
    assert model.inner.readout_bias is model.inner.head.bias
    n = 20000
    for temperature in (0.5, 2.0):
        model.biased.clear()
        ids = fast(model, "", 3, temperature, seed=2, batch=n)
        counts = torch.bincount(ids[:, 1:].flatten(), minlength=10).double() / (2 * n)
        expected = torch.softmax(z.double() / temperature, 0)
        assert torch.allclose(counts, expected, atol=0.012), (temperature, counts, expected)
        assert model.biased == [False, True], model.biased  # the prompt's step, then the sampling step
    model.biased.clear()
    fast(model, "ab", 5, 0.0, seed=2)  # greedy: no noise, no bias
    assert model.biased == [False] * 4


def test_top_k_and_top_p_keep_only_the_head():
    z = torch.tensor([2.0, 1.0, 0.0, -1.0, 0.5, -3.0, 1.5, 0.2, -0.5, 0.0])
    model = ConstantLogits(z)
    g = torch.Generator().manual_seed(0)
    seen = set("".join(generate(model, VOCAB, "a", 3, 1.0, top_k=3, generator=g, batch=3000)))
    assert seen == {VOCAB.chars[i] for i in (0, 6, 1)}
    p = torch.softmax(z, 0)  # sorted: 0.33 (0), 0.20 (6), 0.12 (1), 0.07 (4) ...
    seen = set("".join(generate(model, VOCAB, "a", 3, 1.0, top_p=0.6, generator=g, batch=3000)))
    assert seen == {VOCAB.chars[i] for i in (0, 6, 1)} and p[[0, 6]].sum() < 0.6 < p[[0, 6, 1]].sum()
    # top-p reads softmax(z / T): at T = 0.25 the first character alone holds 0.6 of the mass
    assert set("".join(generate(model, VOCAB, "a", 3, 0.25, top_p=0.6, generator=g, batch=300))) == {VOCAB.chars[0]}
    assert set("".join(generate(model, VOCAB, "a", 5, 1.0, top_p=1e-6, generator=g, batch=50))) == {VOCAB.chars[0]}
    scaled = torch.randn(5, 10)
    assert torch.equal(keep(scaled, 1.0, 10, 1.0), scaled)  # nothing to filter
    assert (keep(scaled, 1.0, 4, None).isfinite().sum(-1) == 4).all()


def test_long_output_spans_several_noise_chunks(random_model, device):
    model = on(random_model, device)
    g1, g2 = (torch.Generator(device=device).manual_seed(2) for _ in range(2))
    long = generate(model, VOCAB, "ab", NOISE_CHUNK * 2 + 17, 0.9, generator=g1)[0]
    assert len(long) == NOISE_CHUNK * 2 + 17
    assert long[:100] == generate(model, VOCAB, "ab", 100, 0.9, generator=g2)[0]


def test_no_gradients_and_mode_restored(random_model):
    random_model.train()
    try:
        generate(random_model, VOCAB, "ab", 10)
        assert random_model.training
        assert all(p.grad is None for p in random_model.parameters())
    finally:
        random_model.eval()
    assert generate(random_model, VOCAB, "ab", 0, batch=2) == ["", ""]


def test_unknown_prompt_characters(random_model):
    with pytest.raises(ValueError, match=r"'XZ'.*skip"):
        generate(random_model, VOCAB, "aZ bX", 5)
    skipped = generate(random_model, VOCAB, "aZ bX", 5, temperature=0, unknown="skip")
    assert skipped == generate(random_model, VOCAB, "a b", 5, temperature=0)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(temperature=-0.1), ValueError, "temperature"),
    (dict(temperature=math.nan), ValueError, "temperature"),
    (dict(top_p=0.0), ValueError, "top_p"),
    (dict(top_p=1.5), ValueError, "top_p"),
    (dict(top_k=0), ValueError, "top_k"),
    (dict(top_k=2.5), ValueError, "top_k"),
    (dict(length=-1), ValueError, "length"),
    (dict(batch=0), ValueError, "batch"),
    (dict(prompt=3), TypeError, "prompt"),
    (dict(generator=5), TypeError, "generator"),
    (dict(unknown="drop"), ValueError, "unknown"),
])
def test_bad_arguments(random_model, kwargs, error, match):
    with pytest.raises(error, match=match):
        generate(random_model, VOCAB, **{"prompt": "ab", **kwargs})


def test_wrong_vocabulary_or_model(random_model):
    with pytest.raises(ValueError, match="vocab: has 3 characters"):
        generate(random_model, CharVocab("abc"), "a")
    with pytest.raises(TypeError, match="vocab"):
        generate(random_model, "abcdefgh .", "a")
    with pytest.raises(TypeError, match="model"):
        generate(lambda x: x, VOCAB, "a")
    with pytest.raises(ValueError, match=r"generator: lives on cpu but the model on meta"):
        generate(on(random_model, torch.device("meta")), VOCAB, "a", generator=torch.Generator())


def test_a_model_without_step_or_vocab_size_is_refused_naming_the_contract(random_model):
    forward_only = ConstantLogits(torch.zeros(len(VOCAB)))
    forward_only.step = None
    with pytest.raises(TypeError, match=r"model: ConstantLogits has no step; .*gseq.models.CharModel.*step\(ids"):
        generate(forward_only, VOCAB, "a")
    nameless = StepWithoutBias(random_model)
    del nameless.vocab_size
    with pytest.raises(TypeError, match=r"has no vocab_size; .*CharModel"):
        generate(nameless, VOCAB, "a")


@pytest.mark.parametrize("prompt, length", [("", 1), ("", 2), ("ab", 1), ("", NOISE_CHUNK + 3),
                                            ("abc", 2 * NOISE_CHUNK + 1), ("h", 40)])
@pytest.mark.parametrize("temperature", [0.0, 0.7])
@pytest.mark.parametrize("kind", ["readout_bias", "no bias", "state None"])
def test_fast_path_equals_the_reference(random_model, device, prompt, length, temperature, kind):
    """The fast path (noise in the read-out bias, or added to the logits; static buffers; captured in a
    CUDA graph on CUDA) draws the reference's characters from the same generator state; its cached step
    is reused by the later cases with fresh buffers."""
    model = on(random_model, device)
    model = {"readout_bias": model, "no bias": StepWithoutBias(model),
             "state None": ConstantLogits(torch.linspace(-1, 1, len(VOCAB))).to(device)}[kind]
    expected = reference(model, prompt, length, temperature, seed=5)
    assert expected.shape == (3, length) and torch.equal(fast(model, prompt, length, temperature, seed=5), expected)


def test_generate_with_cuda_graph_equals_eager_and_captures_once(random_model, device):
    """The public switch: the same text with and without the fast path. On CUDA the step is captured
    (no fall-back warning), once, and reused by the next call without freeing the allocator's cache; on
    the CPU generate runs the reference and builds nothing."""
    import warnings

    model = on(random_model, device)
    builds = STEPS.builds

    def text(graph, temperature, seed=11):
        return generate(model, VOCAB, "ab", NOISE_CHUNK + 40, temperature, batch=2, cuda_graph=graph,
                        generator=torch.Generator(device=device).manual_seed(seed))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a failed capture warns: fail instead
        for temperature in (0.0, 0.8):
            assert text(True, temperature) == text(False, temperature)
        captured = STEPS.builds - builds
        reserved = torch.cuda.memory_reserved(device) if device.type == "cuda" else 0
        assert text(True, 0.8, seed=12) == text(False, 0.8, seed=12)
    assert captured == (2 if device.type == "cuda" else 0)  # greedy and sampling
    assert STEPS.builds - builds == captured
    if device.type == "cuda":
        assert torch.cuda.memory_reserved(device) >= reserved


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_generate_on_another_gpu_than_the_current_one(random_model):
    model = on(random_model, torch.device("cuda:1"))
    with torch.cuda.device(0):
        texts = [generate(model, VOCAB, "ab", 60, 0.8, batch=2, cuda_graph=graph,
                          generator=torch.Generator(device="cuda:1").manual_seed(3)) for graph in (True, False)]
    assert texts[0] == texts[1]


def test_static_step_holds_none_tensor_or_tuple_states_and_refuses_others():
    ids = torch.zeros(2, dtype=torch.long)
    model = ConstantLogits(torch.zeros(3))
    for state in (torch.zeros(2, 3), (torch.zeros(2, 3), torch.ones(1))):
        step = StaticStep(model, ids, state, None, False, capture=False)
        step.load(ids + 1, state)
        assert torch.equal(step.run(None, 0, 3), torch.zeros(3, 2, dtype=torch.long))  # argmax of zeros
        assert all(torch.equal(a, b) for a, b in zip(step.state if isinstance(state, tuple) else [step.state],
                                                        state if isinstance(state, tuple) else [state]))
    with pytest.raises(RuntimeError, match="state is a list, not None, a tensor or a tuple of tensors"):
        StaticStep(model, ids, [torch.zeros(2)], None, False, capture=False)

    class TwoStates(ConstantLogits):
        def step(self, ids, state=None):
            return self.z.expand(ids.size(0), -1), (state, state)
    two = TwoStates(torch.zeros(3))
    step = StaticStep(two, ids, torch.zeros(2), None, False, capture=False)
    with pytest.raises(RuntimeError, match="changed its form between steps"):
        step.run(None, 0, 1)


def test_cached_step_is_reused_across_calls_and_follows_weight_updates(random_model, device):
    """One step is built (captured, on CUDA) per (model, batch, greedy) and reused by later calls with other
    prompts, lengths and seeds; after an in-place weight update (an optimiser step) it samples the updated
    model; after a parameter is replaced (``.float()``) a new one is built."""
    model = on(random_model, device)
    builds = STEPS.builds

    def both(prompt, length, seed):
        return reference(model, prompt, length, 0.9, seed, batch=2), fast(model, prompt, length, 0.9, seed, batch=2)

    first = both("ab", 30, 1)
    assert torch.equal(*first) and STEPS.builds == builds + 1
    second = both("hgf", 12, 2)
    assert torch.equal(*second) and STEPS.builds == builds + 1
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.5 * torch.randn_like(p))
    third = both("ab", 30, 1)
    assert torch.equal(*third) and STEPS.builds == builds + 1
    assert not torch.equal(third[1], first[1])  # it did sample the changed model
    model.float()
    assert torch.equal(*both("ab", 30, 1)) and STEPS.builds == builds + 2


def test_step_cache_keys_on_replaced_tensors_not_on_values():
    torch.manual_seed(0)
    cache = StepCache(3)
    model = CharLSTM(len(VOCAB), hidden_size=6, num_layers=1)
    built = []

    def get(key=(1,)):
        return cache.get(model, key, lambda: built.append(object()) or built[-1])

    first = get()
    assert get() is first and len(built) == 1 and cache.builds == 1
    with torch.no_grad():  # in place: the same addresses, a graph reads the new values
        model.lstm.weight_hh_l0.mul_(2)
    model.load_state_dict({k: v + 1 for k, v in model.state_dict().items()})
    assert get() is first and len(built) == 1
    changes = [
        lambda: model.load_state_dict({k: v.clone() for k, v in model.state_dict().items()}, assign=True),
        lambda: model.double(),
        lambda: model.float(),
        lambda: setattr(model.head, "bias", nn.Parameter(model.head.bias.detach().clone())),
        lambda: model.train(not model.training),
    ]
    for change in changes:
        before = len(built)
        change()
        assert get() is built[-1] and len(built) == before + 1, change
        assert get() is built[-1] and len(built) == before + 1  # and cached again
    # other keys are other entries; the cache keeps the `size` most recently used of a model
    for k in range(2, 6):
        get((k,))
    assert len(cache) == 3
    get((5,))
    assert len(built) == len(changes) + 1 + 4
    get((1,))  # evicted: built again
    assert len(built) == len(changes) + 1 + 5 == cache.builds


def test_step_cache_does_not_keep_models_alive(random_model):
    cache = StepCache(4)
    model = copy.deepcopy(random_model)
    with torch.inference_mode():  # a real step holds its model too (weakly)
        cache.get(model, (1,), lambda: StaticStep(model, torch.zeros(2, dtype=torch.long), None, None, False, False))
    alive = weakref.ref(model)
    del model
    gc.collect()
    assert alive() is None and len(cache) == 0


def _count_host_syncs(fn, device, monkeypatch) -> int:
    """Host synchronisations made by ``fn``: torch's sync debug mode on CUDA; on the CPU every
    Python-level way of reading a tensor on the host (item, bool, int, float, index, tolist, nonzero,
    numpy) is counted."""
    import warnings

    if device.type == "cuda":
        torch.cuda.synchronize(device)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                fn()
            finally:
                torch.cuda.set_sync_debug_mode("default")
        return sum("synchroniz" in str(w.message) for w in caught)
    calls = []
    with monkeypatch.context() as patch:
        for name in ("item", "__bool__", "__int__", "__float__", "__index__", "tolist", "nonzero", "numpy"):
            def counted(self, *args, _original=getattr(torch.Tensor, name), **kwargs):
                calls.append(1)
                return _original(self, *args, **kwargs)
            patch.setattr(torch.Tensor, name, counted)
        fn()
    return len(calls)


@pytest.mark.parametrize("kwargs", [{"temperature": 1.0}, {"temperature": 0.0},
                                    {"temperature": 0.8, "top_k": 3, "top_p": 0.9}])
def test_sampling_makes_no_per_character_host_sync(random_model, device, monkeypatch, kwargs):
    """300 characters cost as many host synchronisations as 20 (the reference, and on CUDA the captured
    fast path, step by step), so no step waits for the device; the fast path's steps make none at all."""
    model = on(random_model, device)

    def syncs(length):
        return _count_host_syncs(lambda: generate(model, VOCAB, "ab", length, **kwargs, generator=torch.Generator(
            device=device).manual_seed(0)), device, monkeypatch)

    syncs(20)  # a first call on CUDA captures the step, outside the count
    assert syncs(300) == syncs(20), kwargs
    if "top_k" not in kwargs:
        counts = [_count_host_syncs(lambda: fast(model, "ab", n, kwargs["temperature"], 0, batch=1), device,
                                    monkeypatch) for n in (20, 300)]
        assert counts[0] == counts[1] <= 2, counts  # the prompt's id check on the CPU, none per step

def test_cpu_flags_are_restored(random_model):
    before = torch.backends.mkldnn.enabled
    generate(random_model.float(), VOCAB, "ab", 5, batch=2)
    random_model.double()
    assert torch.backends.mkldnn.enabled == before


def test_plot_next_char(tmp_path):
    from gseq.plots import plot_next_char

    z = torch.linspace(-1, 1, len(VOCAB))
    probs = {f"T = {t}": torch.softmax(z / t, 0).tolist() for t in (0.5, 1.0, 2.0)}
    fig = plot_next_char(probs, VOCAB.chars, top=4, path=tmp_path / "next.png")
    assert (tmp_path / "next.png").read_bytes()[:4] == b"\x89PNG"
    assert len(fig.axes[0].patches) == 3 * 4
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == list(reversed(VOCAB.chars))[:4]
    with pytest.raises(ValueError, match="one probability per character"):
        plot_next_char({"a": [1.0]}, VOCAB.chars)
