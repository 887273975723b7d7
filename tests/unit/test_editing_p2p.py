import pytest
import torch

from poselab.models.editing import p2p


def ids(*word_lens, length=77):
    """word ids for words of the given token lengths: [0, 1, 1, 2, ...,0, 0]."""
    out = [0]
    for i, n in enumerate(word_lens, 1):
        out += [i] * n
    return out + [0] * (length - len(out))


def test_replace_mapper_identity_and_multi_token_word():
    m = p2p.replace_mapper(ids(1, 1, 1), ids(1, 1, 1))
    assert torch.equal(m, torch.eye(77))
    # word 2 is one token in the source and two in the target: both target tokens take it
    m = p2p.replace_mapper(ids(1, 1, 1), ids(1, 2, 1))
    a = torch.rand(3, 77).softmax(-1)
    b = a @ m
    assert torch.allclose(b[:, 2], a[:, 2]) and torch.allclose(b[:, 3], a[:, 2])
    assert torch.allclose(b[:, 4], a[:, 3])  # the following word shifts by one position
    assert torch.allclose(b[:, 5], a[:, 4])  # and so does the end token
    with pytest.raises(ValueError, match="same number of words"):
        p2p.replace_mapper(ids(1, 1), ids(1, 1, 1))


def test_global_align_and_refine_mapper():
    assert p2p.global_align([5, 6, 7], [5, 9, 6, 7]) == [0, -1, 1, 2]
    src_tok = [49406, 10, 11, 12] + [49407] * 73
    tgt_tok = [49406, 10, 99, 11, 12] + [49407] * 72
    mapper, alphas = p2p.refine_mapper(src_tok, ids(1, 1, 1), tgt_tok, ids(1, 1, 1, 1))
    assert mapper[:6].tolist() == [0, 1, 2, 2, 3, 4]
    assert alphas[:6].tolist() == [1, 1, 0, 1, 1, 1]  # the added word keeps its own attention


def controller_rows(ctrl, heads=2, lq=16, lk=77):
    torch.manual_seed(0)
    q, k, v = (
        torch.randn(4, lq, heads * 4),
        torch.randn(4, lk, heads * 4),
        torch.randn(4, lk, heads * 4),
    )
    return ctrl.attention(q, k, v, heads, is_cross=lk == 77), (q, k, v)


def test_controller_cross_replace_copies_source_attention():
    ctrl = p2p.P2PController(
        steps=10, mode="replace", mapper=torch.eye(77), cross_replace=0.5, store_maps=True
    )
    out, (q, k, v) = controller_rows(ctrl)
    # rows: src_u, edit_u, src_c, edit_c; with v equal in rows 2 and 3 the edit row output equals the source's
    v2 = v.clone()
    v2[3] = v2[2]
    out2 = ctrl.attention(q, k, v2, 2, is_cross=True)
    assert torch.allclose(out2[3], out2[2], atol=1e-6)
    assert not torch.allclose(out2[1], out2[0])  # the unconditional half is left alone
    assert 16 in ctrl.maps and ctrl.maps[16].shape == (2, 16, 77)
    ctrl.step = 5  # past the cross-replace window: the edit keeps its own attention
    out3 = ctrl.attention(q, k, v2, 2, is_cross=True)
    assert not torch.allclose(out3[3], out3[2])


def test_controller_self_injection_window_and_size_limit():
    ctrl = p2p.P2PController(steps=4, mode="none", self_replace=0.5, self_max_positions=16)
    q = torch.randn(4, 16, 8)
    k = torch.randn(4, 16, 8)
    v = torch.randn(4, 16, 8)
    v[3] = v[2]
    assert torch.allclose(
        ctrl.attention(q, k, v, 2, False)[3], ctrl.attention(q, k, v, 2, False)[2], atol=1e-6
    )
    ctrl.self_max_positions = 8  # a layer with more queries than the limit is not injected
    assert not torch.allclose(
        ctrl.attention(q, k, v, 2, False)[3], ctrl.attention(q, k, v, 2, False)[2]
    )


def test_equalizer_scales_columns_and_weights_parse():
    eq = torch.ones(77)
    eq[3] = 0.0
    ctrl = p2p.P2PController(steps=2, mode="replace", mapper=torch.eye(77), equalizer=eq)
    q, k = torch.randn(4, 4, 8), torch.randn(4, 77, 8)
    v = torch.zeros(4, 77, 8)
    v[:, 3] = 1.0  # only token 3 carries a value: zero weight on it => zero output in the edit row
    out = ctrl.attention(q, k, v, 2, True)
    assert float(out[3].abs().max()) == 0.0 and float(out[2].abs().max()) > 0
    assert p2p.parse_weights("arms:2, smile : -1") == {"arms": 2.0, "smile": -1.0}
    with pytest.raises(ValueError, match="word:scale"):
        p2p.parse_weights("arms")


def test_local_blend_mask_unites_source_and_edit_words():
    maps = torch.zeros(2, 16, 77)  # 4x4 grid, one image: [source row, edit row]
    maps[0, 0, 5] = 1.0  # source word at the top-left cell
    maps[1, 15, 6] = 1.0  # edit word at the bottom-right cell
    m = p2p.local_blend_mask({16: maps}, [5], [6], (8, 8), threshold=0.3)
    assert m.shape == (1, 1, 8, 8)
    assert m[0, 0, 0, 0] == 1 and m[0, 0, 7, 7] == 1 and m[0, 0, 0, 7] == 0
    assert p2p.words_positions(["Cat"], ["a", "cat,", "sits"], ids(1, 2, 1)) == [2, 3]


def test_fast_attention_used_only_where_nothing_is_rewritten():
    calls = []

    def fast(q, k, v, heads):
        calls.append(q.shape[1])
        return torch.zeros_like(q)

    ctrl = p2p.P2PController(
        steps=4,
        mode="replace",
        mapper=torch.eye(77),
        cross_replace=0.5,
        self_replace=0.25,
        fast_attention=fast,
    )
    q = torch.randn(4, 16, 8)
    ctrl.attention(
        q, torch.randn(4, 77, 8), torch.randn(4, 77, 8), 2, True
    )  # cross window: explicit
    ctrl.attention(q, q, q, 2, False)  # self window: explicit
    assert calls == []
    ctrl.step = 3
    ctrl.attention(q, torch.randn(4, 77, 8), torch.randn(4, 77, 8), 2, True)
    ctrl.attention(q, q, q, 2, False)
    assert calls == [16, 16]
