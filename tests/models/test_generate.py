import copy
import gc
import math
import weakref

import pytest
import torch
from torch import nn

from gseq.data import CharVocab, window_sampler
from gseq.models import CharLSTM, char_lm_loss, generate
from gseq.models._step_graph import STEPS, StaticStep, StepCache
from gseq.models.generate import NOISE_CHUNK, _Draw, _filter, _sample_ids

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


def test_charlstm_fast_path_samples_softmax_over_temperature():
    """CharLSTM's loop adds the noise through the read-out bias; with a zero read-out weight its logits
    are the bias z at every step, whatever the state."""
    z = torch.tensor([2.0, 1.0, 0.0, -1.0, 0.5, -3.0, 1.5, 0.2, -0.5, 0.0])
    model = CharLSTM(len(VOCAB), hidden_size=4, num_layers=1)
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.copy_(z)
    n = 20000
    for temperature in (0.5, 2.0):
        texts = generate(model, VOCAB, "", 3, temperature, generator=torch.Generator().manual_seed(2), batch=n)
        counts = torch.bincount(VOCAB.encode("".join(t[1:] for t in texts)), minlength=10).double() / (2 * n)
        expected = torch.softmax(z.double() / temperature, 0)
        assert torch.allclose(counts, expected, atol=0.012), (temperature, counts, expected)


def test_top_k_and_top_p_keep_only_the_head():
    z = torch.tensor([2.0, 1.0, 0.0, -1.0, 0.5, -3.0, 1.5, 0.2, -0.5, 0.0])
    model = ConstantLogits(z)
    g = torch.Generator().manual_seed(0)
    seen = set("".join(generate(model, VOCAB, "a", 3, 1.0, top_k=3, generator=g, batch=3000)))
    assert seen == {VOCAB.chars[i] for i in (0, 6, 1)}
    p = torch.softmax(z, 0)  # sorted: 0.33 (0), 0.20 (6), 0.12 (1), 0.07 (4) ...
    seen = set("".join(generate(model, VOCAB, "a", 3, 1.0, top_p=0.6, generator=g, batch=3000)))
    assert seen == {VOCAB.chars[i] for i in (0, 6, 1)} and p[[0, 6]].sum() < 0.6 < p[[0, 6, 1]].sum()
    assert set("".join(generate(model, VOCAB, "a", 5, 1.0, top_p=1e-6, generator=g, batch=50))) == {VOCAB.chars[0]}
    scaled = torch.randn(5, 10)
    assert torch.equal(_filter(scaled, 10, 1.0), scaled)  # nothing to filter
    assert (_filter(scaled, 4, None).isfinite().sum(-1) == 4).all()


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


def test_a_model_without_step_or_vocab_size_is_refused_naming_the_contract(random_model):
    forward_only = ConstantLogits(torch.zeros(len(VOCAB)))
    forward_only.step = None
    with pytest.raises(TypeError, match=r"model: ConstantLogits has no step; .*gseq.models.CharModel.*step\(ids"):
        generate(forward_only, VOCAB, "a")
    nameless = StepWithoutBias(random_model)
    del nameless.vocab_size
    with pytest.raises(TypeError, match=r"has no vocab_size; .*CharModel"):
        generate(nameless, VOCAB, "a")


def test_the_draw_is_chosen_by_what_the_step_takes(random_model):
    assert _Draw.choose(random_model, 0.7, None, None).kind == "noise_in_bias"
    assert _Draw.choose(StepWithoutBias(random_model), 0.7, None, None).kind == "gumbel"
    assert _Draw.choose(random_model, 0.0, 3, None).kind == "greedy"
    assert _Draw.choose(random_model, 0.7, None, 0.5).kind == "filtered"
    assert _Draw.choose(random_model, 0.7, None, 1.0).kind == "noise_in_bias"


@pytest.mark.parametrize("temperature", [0.0, 0.7])
def test_a_step_without_bias_samples_the_same_characters(random_model, device, temperature):
    """The slower variation (noise added to the logits) draws what the noise-in-bias one draws, eagerly
    and over static buffers (the CUDA-graph path, captured on CUDA)."""
    model = on(random_model, device)
    plain = StepWithoutBias(model)

    def gen(m, **kw):
        return generate(m, VOCAB, "ab", NOISE_CHUNK + 20, temperature, batch=3,
                        generator=torch.Generator(device=device).manual_seed(6), **kw)
    assert gen(plain, cuda_graph=False) == gen(model, cuda_graph=False) == gen(plain)
    with torch.inference_mode():
        static = _sample_ids(plain, VOCAB.encode(""), 40, temperature, None, None,
                             torch.Generator(device=device).manual_seed(6), 2, static=True, capture=device.type == "cuda")
        eager = _sample_ids(model, VOCAB.encode(""), 40, temperature, None, None,
                            torch.Generator(device=device).manual_seed(6), 2)
    assert torch.equal(static, eager)


def test_static_step_holds_none_tensor_or_tuple_states_and_refuses_others():
    model = ConstantLogits(torch.tensor([2.0, 1.0, 0.0, -1.0, 0.5, -3.0, 1.5, 0.2, -0.5, 0.0]))  # state None
    with torch.inference_mode():
        eager = _sample_ids(model, VOCAB.encode("a"), 30, 1.0, None, None, torch.Generator().manual_seed(0), 4)
        static = _sample_ids(model, VOCAB.encode("a"), 30, 1.0, None, None, torch.Generator().manual_seed(0), 4,
                             static=True)
    assert torch.equal(eager, static)
    with pytest.raises(ValueError, match="no top-k/top-p"):
        _sample_ids(model, VOCAB.encode("a"), 30, 1.0, 3, None, None, 4, static=True)
    ids = torch.zeros(2, dtype=torch.long)
    for state in (torch.zeros(2, 3), (torch.zeros(2, 3), torch.ones(1))):
        step = StaticStep(lambda i, s, r: (i, s), ids, state, None, 4, capture=False)
        step.load(ids + 1, state)
        assert torch.equal(step.run(None, 0, 3), torch.ones(3, 2, dtype=torch.long))
    with pytest.raises(RuntimeError, match="state is a list, not None, a tensor or a tuple of tensors"):
        StaticStep(lambda i, s, r: (i, s), ids, [torch.zeros(2)], None, 4, capture=False)
    step = StaticStep(lambda i, s, r: (i, (s, s)), ids, torch.zeros(2), None, 4, capture=False)
    with pytest.raises(RuntimeError, match="changed its form between steps"):
        step.run(None, 0, 1)


@pytest.mark.parametrize("prompt, length", [("", 1), ("", 2), ("ab", 1), ("", NOISE_CHUNK + 3),
                                            ("abc", 2 * NOISE_CHUNK + 1), ("h", 40)])
@pytest.mark.parametrize("temperature", [0.0, 0.7])
def test_cuda_graph_step_logic_matches_the_eager_loop(random_model, device, prompt, length, temperature):
    """The CUDA-graph path's static-buffer step (captured on CUDA, run eagerly on the CPU) draws the same
    characters as the eager loop from the same generator state; its cached step is reused by the later
    cases with fresh buffers."""
    model = on(random_model, device)
    ids = VOCAB.encode(prompt)
    with torch.inference_mode():
        eager = _sample_ids(model, ids, length, temperature, None, None,
                            torch.Generator(device=device).manual_seed(5), 3)
        static = _sample_ids(model, ids, length, temperature, None, None,
                             torch.Generator(device=device).manual_seed(5), 3, static=True, capture=device.type == "cuda")
    assert eager.shape == (3, length) and torch.equal(eager, static)


def test_generate_with_cuda_graph_equals_eager(random_model, device):
    """The public switch: the same text with and without the CUDA graph (on the CPU both run eagerly)."""
    model = on(random_model, device)
    for temperature in (0.0, 0.8):
        texts = [generate(model, VOCAB, "ab", NOISE_CHUNK + 40, temperature, batch=2, cuda_graph=graph,
                          generator=torch.Generator(device=device).manual_seed(11)) for graph in (True, False)]
        assert texts[0] == texts[1]


def test_cached_step_is_reused_across_calls_and_follows_weight_updates(random_model):
    """One step is built per (model, batch, greedy) and reused by later calls with other prompts, lengths
    and seeds; after an in-place weight update (an optimiser step) it samples the updated model."""
    model = copy.deepcopy(random_model)
    builds = STEPS.builds

    def both(prompt, length, seed):
        with torch.inference_mode():
            eager = _sample_ids(model, VOCAB.encode(prompt), length, 0.9, None, None,
                                torch.Generator().manual_seed(seed), 2)
            static = _sample_ids(model, VOCAB.encode(prompt), length, 0.9, None, None,
                                 torch.Generator().manual_seed(seed), 2, static=True)
        return eager, static

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


def test_step_cache_keys_on_replaced_tensors_not_on_values():
    torch.manual_seed(0)
    cache = StepCache(3)
    model = CharLSTM(len(VOCAB), hidden_size=6, num_layers=1)
    built = []

    def get(key=(1,)):
        return cache.get(model, key, lambda: built.append(object()) or built[-1])

    first = get()
    assert get() is first and len(built) == 1
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
    # other keys are other entries; the cache keeps the `size` most recently used
    for k in range(2, 6):
        get((k,))
    assert len(cache) == 3
    get((5,))
    assert len(built) == len(changes) + 1 + 4
    get((1,))  # evicted: built again
    assert len(built) == len(changes) + 1 + 5


def test_step_cache_does_not_keep_models_alive():
    cache = StepCache(4)
    model = CharLSTM(len(VOCAB), hidden_size=4, num_layers=1)
    cache.get(model, (1,), lambda: "step")
    alive = weakref.ref(model)
    del model
    gc.collect()
    assert alive() is None and len(cache) == 0


def test_sampling_loop_makes_no_per_step_host_sync(random_model, monkeypatch):
    """Every Python-level way of reading a tensor on the host (item, bool, int, float, index, tolist,
    nonzero, numpy) is counted: 300 characters cost as many as 20, so no step synchronises (on CUDA
    the steps queue up without waiting for the GPU)."""
    calls = []
    for name in ("item", "__bool__", "__int__", "__float__", "__index__", "tolist", "nonzero", "numpy"):
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, _name=name, **kwargs):
            calls.append(_name)
            return _original(self, *args, **kwargs)
        monkeypatch.setattr(torch.Tensor, name, counted)

    def syncs(length, **kw):
        calls.clear()
        generate(random_model, VOCAB, "ab", length, generator=torch.Generator().manual_seed(0), **kw)
        return len(calls)

    for kw in ({"temperature": 1.0}, {"temperature": 0.0}, {"temperature": 0.8, "top_k": 3, "top_p": 0.9}):
        assert syncs(300, **kw) == syncs(20, **kw), kw
    counts = []
    with torch.inference_mode():
        for length in (20, 300):
            calls.clear()
            _sample_ids(random_model, VOCAB.encode("ab"), length, 0.9, None, None, torch.Generator().manual_seed(0), 1,
                        static=True)
            counts.append(len(calls))
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
