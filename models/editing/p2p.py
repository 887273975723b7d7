"""Prompt-to-Prompt attention control (Hertz et al., 2022) as attention functions for ComfyUI patches.

The UNet runs one batch of four row groups, ``[source uncond, edit uncond, source cond, edit cond]``
(B rows each). Every attention layer's ``(q, k, v)`` goes through :meth:`P2PController.attention`,
which computes the probabilities explicitly and, in the conditional half (as in the official
code), rewrites the edit rows from the source rows:

* cross-attention (attn2), for the first ``cross_replace`` fraction of the steps:
  replace (word swap) ``A_edit = A_src @ M``; refine ``A_edit = a * A_src[:, mapper] + (1 - a) * A_edit``
  (a = 1 for aligned tokens); re-weight multiplies the chosen tokens' columns;
* self-attention (attn1), for the first ``self_replace`` fraction, in layers with at most
  ``self_max_positions`` queries: ``A_edit = A_src``;
* the cross-attention maps of the conditional rows are accumulated for local blending.

Tokens are given as ``(token_ids, word_ids)`` lists of one 77-token chunk, as ComfyUI's
``clip.tokenize(text, return_word_ids=True)`` produces them (word id 0 = start/end/padding).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F


# ---------------------------------------------------------------------------- token alignment
def word_tokens(word_ids: list[int]) -> list[list[int]]:
    """Token positions of each word (1-based word ids in order)."""
    n = max(word_ids, default=0)
    out = [[] for _ in range(n)]
    for pos, w in enumerate(word_ids):
        if w > 0:
            out[w - 1].append(pos)
    return [o for o in out if o]


def replace_mapper(
    src_word_ids: list[int], tgt_word_ids: list[int], length: int = 77
) -> torch.Tensor:
    """Word-swap mapper ``M`` (source position x target position): ``A_tgt = A_src @ M``.

    Words correspond in order (both prompts must have the same number of words). A word that
    becomes a different number of tokens gets the mean of the source word's token columns;
    positions outside words (start token, end/padding) map in order after the last word.
    """
    sw, tw = word_tokens(src_word_ids), word_tokens(tgt_word_ids)
    if len(sw) != len(tw):
        raise ValueError(
            f"word swap needs prompts with the same number of words ({len(sw)} vs {len(tw)}); "
            "use mode 'refine' to add or remove words"
        )
    m = torch.zeros(length, length)
    m[0, 0] = 1.0
    for s, t in zip(sw, tw):
        if len(s) == len(t):
            for a, b in zip(s, t):
                m[a, b] = 1.0
        else:
            m[torch.tensor(s)[:, None], torch.tensor(t)[None, :]] = 1.0 / len(s)
    s_end = (sw[-1][-1] + 1) if sw else 1
    t_end = (tw[-1][-1] + 1) if tw else 1
    for a, b in zip(range(s_end, length), range(t_end, length)):
        m[a, b] = 1.0
    return m


def global_align(
    src: list[int], tgt: list[int], gap: int = -1, match: int = 1, mismatch: int = -1
) -> list[int]:
    """Needleman-Wunsch alignment; returns for each target index the aligned source index or -1."""
    n, m = len(src), len(tgt)
    score = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(1, n + 1):
        score[i][0] = i * gap
    for j in range(1, m + 1):
        score[0][j] = j * gap
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            diag = score[i - 1][j - 1] + (match if src[i - 1] == tgt[j - 1] else mismatch)
            score[i][j] = max(diag, score[i - 1][j] + gap, score[i][j - 1] + gap)
    out = [-1] * m
    i, j = n, m
    while i > 0 and j > 0:
        if score[i][j] == score[i - 1][j - 1] + (match if src[i - 1] == tgt[j - 1] else mismatch):
            if src[i - 1] == tgt[j - 1]:
                out[j - 1] = i - 1
            i, j = i - 1, j - 1
        elif score[i][j] == score[i - 1][j] + gap:
            i -= 1
        else:
            j -= 1
    return out


def refine_mapper(
    src_tokens: list[int],
    src_word_ids: list[int],
    tgt_tokens: list[int],
    tgt_word_ids: list[int],
    length: int = 77,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(mapper, alphas) for refinement: target position -> source position, alpha 1 where aligned."""
    s_pos = [p for p, w in enumerate(src_word_ids) if w > 0]
    t_pos = [p for p, w in enumerate(tgt_word_ids) if w > 0]
    align = global_align([src_tokens[p] for p in s_pos], [tgt_tokens[p] for p in t_pos])
    mapper = torch.arange(length)
    alphas = torch.ones(length)
    for j, tp in enumerate(t_pos):
        if align[j] >= 0:
            mapper[tp] = s_pos[align[j]]
        else:
            mapper[tp], alphas[tp] = tp, 0.0  # a new word keeps its own attention
    # start token keeps 0; the end/padding tail maps in order after the last word
    s_end = (s_pos[-1] + 1) if s_pos else 1
    t_end = (t_pos[-1] + 1) if t_pos else 1
    for a, b in zip(range(s_end, length), range(t_end, length)):
        mapper[b] = a
    return mapper, alphas


def words_positions(words: list[str], text_words: list[str], word_ids: list[int]) -> list[int]:
    """Token positions of the given words (case-insensitive, punctuation-insensitive) in a prompt."""
    norm = lambda w: "".join(ch for ch in w.lower() if ch.isalnum())  # noqa: E731
    wanted = {norm(w) for w in words if norm(w)}
    groups = word_tokens(word_ids)
    pos = []
    for i, word in enumerate(text_words[: len(groups)]):
        if norm(word) in wanted:
            pos.extend(groups[i])
    return pos


def parse_weights(spec: str) -> dict[str, float]:
    """``"arms:2.0, smile:-1"`` -> {"arms": 2.0, "smile": -1.0}."""
    out = {}
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        word, sep, value = part.rpartition(":")
        try:
            if not sep or not word.strip():
                raise ValueError
            out[word.strip()] = float(value)
        except ValueError:
            raise ValueError(
                f"cannot read the re-weighting '{part}': write word:scale, e.g. 'arms:2.0, smile:0.5'"
            ) from None
    return out


# ---------------------------------------------------------------------------- controller
@dataclass
class P2PController:
    steps: int
    mode: str  # "replace" | "refine" | "none"
    mapper: torch.Tensor | None = None  # replace: (77, 77) matrix; refine: (77,) index
    alphas: torch.Tensor | None = None  # refine: (77,)
    equalizer: torch.Tensor | None = None  # (77,) column scales for the edit prompt
    cross_replace: float = 0.8
    self_replace: float = 0.5
    self_max_positions: int = 32 * 32
    store_maps: bool = False
    step: int = 0
    maps: dict = field(
        default_factory=dict
    )  # positions -> (2B, Lq, 77) summed maps [src rows, edit rows]

    def cross_active(self) -> bool:
        return self.step < math.ceil(self.cross_replace * self.steps - 1e-9)

    def self_active(self) -> bool:
        return self.step < math.ceil(self.self_replace * self.steps - 1e-9)

    fast_attention: object = None  # optional (q, k, v, heads) -> out for layers left untouched

    def needs_probs(self, is_cross: bool, lq: int) -> bool:
        if is_cross:
            return (self.cross_active() and self.mode != "none") or self.store_maps
        return self.self_active() and lq <= self.self_max_positions

    def attention(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int, is_cross: bool
    ) -> torch.Tensor:
        n, lq, inner = q.shape
        if self.fast_attention is not None and not self.needs_probs(is_cross, lq):
            # nothing to rewrite here: the memory-efficient kernel gives the same result
            return self.fast_attention(q, k, v, heads)
        d = inner // heads
        qh = q.view(n, lq, heads, d).transpose(1, 2)
        kh = k.view(n, k.shape[1], heads, d).transpose(1, 2)
        vh = v.view(n, v.shape[1], heads, d).transpose(1, 2)
        attn = torch.softmax((qh.float() @ kh.float().transpose(-1, -2)) * d**-0.5, dim=-1)
        if n % 4 == 0:
            attn = self._control(attn, is_cross, lq)
        out = (attn.to(vh.dtype) @ vh).transpose(1, 2).reshape(n, lq, heads * d)
        return out

    def _control(self, attn: torch.Tensor, is_cross: bool, lq: int) -> torch.Tensor:
        b = attn.shape[0] // 4
        src, edit = attn[2 * b : 3 * b], attn[3 * b :]
        if is_cross:
            if self.cross_active() and self.mode != "none":
                if self.mode == "replace":
                    new = torch.einsum("bhqs,st->bhqt", src, self.mapper.to(src))
                else:
                    a = self.alphas.to(src)
                    new = src[..., self.mapper.to(src.device)] * a + edit * (1 - a)
                if self.equalizer is not None:
                    new = new * self.equalizer.to(new)
                edit = new
            if self.store_maps and edit.shape[-1] == 77:
                maps = torch.cat([src, edit]).mean(1)  # average over heads: (2B, Lq, 77)
                self.maps[lq] = self.maps.get(lq, 0) + maps
        elif self.self_active() and lq <= self.self_max_positions:
            edit = src
        if edit is attn[3 * b :]:
            return attn
        return torch.cat([attn[: 3 * b], edit])


def local_blend_mask(
    maps: dict,
    src_positions: list[int],
    edit_positions: list[int],
    latent_hw: tuple[int, int],
    threshold: float = 0.3,
) -> torch.Tensor:
    """The P2P LocalBlend mask ``(B, 1, h, w)`` from accumulated cross-attention maps.

    Maps of every stored resolution are resized to the latent grid and averaged; the words'
    columns are summed, max-pooled (3x3), normalised by the per-image max and thresholded; the
    source-word and edit-word masks are united.
    """
    h, w = latent_hw
    if not maps:
        raise ValueError("no cross-attention maps were recorded for local blending")
    acc = None
    for lq, m in maps.items():
        f = math.sqrt(h * w / lq)
        gh, gw = max(1, round(h / f)), max(1, round(w / f))
        if gh * gw != lq:
            continue
        grid = m.view(m.shape[0], gh, gw, 77).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(h, w), mode="bilinear", align_corners=False)
        acc = grid if acc is None else acc + grid
    if acc is None:
        raise ValueError("the recorded attention maps do not match the latent size")
    b = acc.shape[0] // 2

    def word_mask(rows: torch.Tensor, pos: list[int]) -> torch.Tensor:
        if not pos:
            return torch.zeros(rows.shape[0], 1, h, w, device=rows.device)
        x = rows[:, pos].sum(1, keepdim=True)
        x = F.max_pool2d(x, 3, stride=1, padding=1)
        x = x / x.flatten(1).max(1).values.clamp_min(1e-12).view(-1, 1, 1, 1)
        return (x > threshold).float()

    return torch.maximum(word_mask(acc[:b], src_positions), word_mask(acc[b:], edit_positions))
