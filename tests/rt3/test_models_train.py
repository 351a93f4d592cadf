from __future__ import annotations

import pytest
import torch

from devices.errors import BadInputError
from testbed.rt3.masking import apply_masks_, masked_call
from testbed.rt3.models import HFSpec, LMConfig, build_hf_classifier, hf_prunable_names, lm_prunable_names
from testbed.rt3.tasks import build_task
from testbed.rt3.train import ClassificationTask, TrainConfig, evaluate, train

from .conftest import DATA, make_lm, quick, tiny_hf_classifier


def test_lm_is_causal() -> None:
    model = make_lm(30).eval()
    x = torch.randint(0, 30, (1, 12))
    y = x.clone()
    y[0, 8:] = (y[0, 8:] + 1) % 30
    with torch.no_grad():
        a, b = model(x), model(y)
    assert torch.allclose(a[0, :8], b[0, :8], atol=1e-5)
    assert not torch.allclose(a[0, 8:], b[0, 8:], atol=1e-3)


def test_lm_config_validation() -> None:
    with pytest.raises(BadInputError, match="divisible"):
        LMConfig(10, emsize=30, nhead=4)
    with pytest.raises(BadInputError):
        LMConfig(1)
    ref = LMConfig(100)
    assert (ref.emsize, ref.nhid, ref.nlayers, ref.nhead) == (800, 200, 2, 4)


def test_prunable_names_cover_attention_ffn_and_decoder() -> None:
    names = lm_prunable_names(make_lm(20, nlayers=2))
    assert len(names) == 9 and names[-1] == "decoder.weight"
    for kind, n in (("bert", 6), ("distilbert", 6)):
        model = tiny_hf_classifier(kind, dim=32, heads=2, vocab=50)
        assert len(hf_prunable_names(model)) == 2 * n


def test_unknown_hf_kind_and_bad_dir(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(BadInputError, match="unknown encoder"):
        build_hf_classifier(HFSpec("gpt"))
    with pytest.raises(BadInputError, match=r"config\.json"):
        build_hf_classifier(HFSpec("bert", path=str(tmp_path)))


def test_training_improves_next_token_accuracy() -> None:
    task, vocab = build_task(DATA, batch_size=10)
    assert vocab is not None
    model = make_lm(len(vocab))
    before = evaluate(model, task, "valid")
    train(model, task, quick(60))
    after = evaluate(model, task, "valid")
    assert after.accuracy > before.accuracy + 0.1
    assert after.perplexity is not None and before.perplexity is not None
    assert after.perplexity < before.perplexity


def test_training_is_reproducible_with_a_seed() -> None:
    task, vocab = build_task(DATA, batch_size=10)
    assert vocab is not None
    a, b = make_lm(len(vocab)), make_lm(len(vocab))
    train(a, task, quick(5))
    train(b, task, quick(5))
    for (_, p), (_, q) in zip(a.named_parameters(), b.named_parameters(), strict=True):
        assert torch.equal(p, q)


def test_fixed_mask_survives_training() -> None:
    task, vocab = build_task(DATA, batch_size=10)
    assert vocab is not None
    model = make_lm(len(vocab))
    mask = {"decoder.weight": torch.rand_like(model.decoder.weight) < 0.5}
    train(model, task, quick(5), mask_sets=[mask], fixed_mask=mask)
    assert torch.all(model.decoder.weight[~mask["decoder.weight"]] == 0)
    assert torch.any(model.decoder.weight[mask["decoder.weight"]] != 0)


def test_masked_call_equals_zeroed_weights() -> None:
    model = make_lm(20).eval()
    masks = {n: torch.rand_like(p) < 0.6 for n, p in model.named_parameters() if n in lm_prunable_names(model)}
    x = torch.randint(0, 20, (2, 9))
    with torch.no_grad():
        ref = masked_call(model, masks, x)
        apply_masks_(model, masks)
        assert torch.allclose(model(x), ref, atol=1e-5)


@pytest.mark.slow
def test_classifier_trains_on_proxy_sentiment() -> None:
    task, _ = build_task({"kind": "proxy-sst2", "seed": 0, "n_train": 320, "n_dev": 200}, max_len=16)
    assert isinstance(task, ClassificationTask)
    torch.manual_seed(0)
    model = build_hf_classifier(
        HFSpec(
            "bert",
            overrides={
                "hidden_size": 32,
                "intermediate_size": 64,
                "num_hidden_layers": 1,
                "num_attention_heads": 2,
                "vocab_size": 64,
                "max_position_embeddings": 32,
                "hidden_dropout_prob": 0.0,
            },
        )
    )
    before = evaluate(model, task, "dev").accuracy
    train(model, task, TrainConfig(epochs=10, lr=3e-3, clip_norm=1.0, progress=False))
    after = evaluate(model, task, "dev").accuracy
    assert after > 0.65 and after > before + 0.1


def test_classifier_loss_falls_quickly() -> None:
    task, _ = build_task({"kind": "proxy-sst2", "seed": 0, "n_train": 160, "n_dev": 100}, max_len=16)
    torch.manual_seed(0)
    model = build_hf_classifier(
        HFSpec(
            "distilbert",
            overrides={
                "dim": 32,
                "hidden_dim": 64,
                "n_layers": 1,
                "n_heads": 2,
                "vocab_size": 64,
                "max_position_embeddings": 32,
                "dropout": 0.0,
            },
        )
    )
    before = evaluate(model, task, "train")
    train(model, task, TrainConfig(epochs=4, lr=3e-3, progress=False))
    after = evaluate(model, task, "train")
    assert after.n == before.n == 160
    assert after.loss < before.loss - 0.01
    assert evaluate(model, task, "dev").n == 100
