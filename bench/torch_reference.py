"""A PyTorch port of the reference IENet `fusion()` model, its stage-1 loss and optimiser.

The baseline `python -m bench.vs_torch` times the project's train step against (issue 19).
The published PyTorch code is not shipped here; this is a re-write from its description
(`shared/reference/ienet.md`) in the reference's own style: `B, C, T, H, W` tensors between
stages, the standard Video-Swin code inside them (`nn.Linear`/`nn.Conv3d`, `F.pad`,
`torch.roll`, `window_partition`/`window_reverse`, `compute_mask`), module and parameter
names such that `state_dict()` has exactly the reference keys and shapes
(`shared/golden/ienet_seed_state_dict.json`), and no optimisation beyond what that code
does. `tests/test_torch_reference.py` proves it reproduces the golden outputs of the
published code (< 1e-4).

Needs the `torch` extra (`pip install -e '.[torch]'`); nothing else in the project
imports this module.

- `Fusion(context=False)` is the code as published (the context-enhancement call
  commented out); `context=True` calls it where the commented code puts it (golden `ce_on`).
- Inputs: RGB and NIR clips `[B, 3, T, H, W]` normalised `(x / 255 − 0.5) / 0.25` (the NIR
  clip is one channel repeated three times); outputs `(rgb_rppg, nir_rppg, fused_rppg)`,
  each `[B, T]` (`frames=T`, the head's adaptive pooling length, 128 in the reference).
- `stage1_loss`: `0.3·NegPearson + 0.3·spectral distance` (per sample, as ienet.md asks);
  `make_optimizer`: Adam lr 1e-4, coupled weight decay 5e-5; `train_step` one update.
"""

from __future__ import annotations

from functools import lru_cache, reduce
from operator import mul

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# ------------------------------------------------------------------ Video-Swin helpers


def window_partition(x, window_size):
    """`[B, D, H, W, C]` → `[B·nW, Wd·Wh·Ww, C]`."""
    B, D, H, W, C = x.shape
    x = x.view(B, D // window_size[0], window_size[0], H // window_size[1], window_size[1],
               W // window_size[2], window_size[2], C)
    windows = x.permute(0, 1, 3, 5, 2, 4, 6, 7).contiguous().view(-1, reduce(mul, window_size), C)
    return windows


def window_reverse(windows, window_size, B, D, H, W):
    """`[B·nW, Wd, Wh, Ww, C]` → `[B, D, H, W, C]`."""
    x = windows.view(B, D // window_size[0], H // window_size[1], W // window_size[2],
                     window_size[0], window_size[1], window_size[2], -1)
    x = x.permute(0, 1, 4, 2, 5, 3, 6, 7).contiguous().view(B, D, H, W, -1)
    return x


def get_window_size(x_size, window_size, shift_size=None):
    use_window_size = list(window_size)
    if shift_size is not None:
        use_shift_size = list(shift_size)
    for i in range(len(x_size)):
        if x_size[i] <= window_size[i]:
            use_window_size[i] = x_size[i]
            if shift_size is not None:
                use_shift_size[i] = 0
    if shift_size is None:
        return tuple(use_window_size)
    return tuple(use_window_size), tuple(use_shift_size)


@lru_cache
def compute_mask(D, H, W, window_size, shift_size, device):
    img_mask = torch.zeros((1, D, H, W, 1), device=device)
    cnt = 0
    for d in (slice(-window_size[0]), slice(-window_size[0], -shift_size[0]),
              slice(-shift_size[0], None)):
        for h in (slice(-window_size[1]), slice(-window_size[1], -shift_size[1]),
                  slice(-shift_size[1], None)):
            for w in (slice(-window_size[2]), slice(-window_size[2], -shift_size[2]),
                      slice(-shift_size[2], None)):
                img_mask[:, d, h, w, :] = cnt
                cnt += 1
    mask_windows = window_partition(img_mask, window_size).squeeze(-1)
    attn_mask = mask_windows.unsqueeze(1) - mask_windows.unsqueeze(2)
    attn_mask = attn_mask.masked_fill(attn_mask != 0, -100.0)
    return attn_mask.masked_fill(attn_mask == 0, 0.0)


class DropPath(nn.Module):
    """Stochastic depth per sample (identity in eval mode)."""

    def __init__(self, drop_prob=0.0):
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x):
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep_prob = 1 - self.drop_prob
        shape = (x.shape[0],) + (1,) * (x.ndim - 1)
        random_tensor = x.new_empty(shape).bernoulli_(keep_prob)
        return x * random_tensor / keep_prob


class Mlp(nn.Module):
    def __init__(self, in_features, hidden_features, drop=0.0):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_features, in_features)
        self.drop = nn.Dropout(drop)

    def forward(self, x):
        x = self.drop(self.act(self.fc1(x)))
        return self.drop(self.fc2(x))


# ------------------------------------------------------------------ the CET backbone


class WindowAttention3D(nn.Module):
    """Window multi-head self-attention with a relative position bias (`[B·nW, N, C]`)."""

    def __init__(self, dim, window_size, num_heads, qkv_bias=True, attn_drop=0.0, proj_drop=0.0):
        super().__init__()
        self.dim = dim
        self.window_size = window_size
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.scale = head_dim ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros(
            (2 * window_size[0] - 1) * (2 * window_size[1] - 1) * (2 * window_size[2] - 1),
            num_heads))
        coords_d = torch.arange(window_size[0])
        coords_h = torch.arange(window_size[1])
        coords_w = torch.arange(window_size[2])
        coords = torch.stack(torch.meshgrid(coords_d, coords_h, coords_w, indexing="ij"))
        coords_flatten = torch.flatten(coords, 1)
        relative_coords = coords_flatten[:, :, None] - coords_flatten[:, None, :]
        relative_coords = relative_coords.permute(1, 2, 0).contiguous()
        relative_coords[:, :, 0] += window_size[0] - 1
        relative_coords[:, :, 1] += window_size[1] - 1
        relative_coords[:, :, 2] += window_size[2] - 1
        relative_coords[:, :, 0] *= (2 * window_size[1] - 1) * (2 * window_size[2] - 1)
        relative_coords[:, :, 1] *= (2 * window_size[2] - 1)
        self.register_buffer("relative_position_index", relative_coords.sum(-1))
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.softmax = nn.Softmax(dim=-1)

    def forward(self, x, mask=None):
        B_, N, C = x.shape
        qkv = self.qkv(x).reshape(B_, N, 3, self.num_heads, C // self.num_heads)
        qkv = qkv.permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        q = q * self.scale
        attn = q @ k.transpose(-2, -1)
        relative_position_bias = self.relative_position_bias_table[
            self.relative_position_index[:N, :N].reshape(-1)].reshape(N, N, -1)
        relative_position_bias = relative_position_bias.permute(2, 0, 1).contiguous()
        attn = attn + relative_position_bias.unsqueeze(0)
        if mask is not None:
            nW = mask.shape[0]
            attn = attn.view(B_ // nW, nW, self.num_heads, N, N) + mask.unsqueeze(1).unsqueeze(0)
            attn = attn.view(-1, self.num_heads, N, N)
        attn = self.attn_drop(self.softmax(attn))
        x = (attn @ v).transpose(1, 2).reshape(B_, N, C)
        return self.proj_drop(self.proj(x))


class ContextEnhance(nn.Module):
    """Three channel groups, each Conv3d (2, 3, 3) of dilation 1 / 3 / 5 + BatchNorm3d; the
    last frame of each result dropped; `[B, C, T, H, W]` → same (C = 3·`channels`)."""

    def __init__(self, channels):
        super().__init__()
        self.conv1 = nn.Conv3d(channels, channels, (2, 3, 3), padding=(1, 1, 1), dilation=1)
        self.norm1 = nn.BatchNorm3d(channels)
        self.conv2 = nn.Conv3d(channels, channels, (2, 3, 3), padding=(2, 3, 3), dilation=3)
        self.norm2 = nn.BatchNorm3d(channels)
        self.conv3 = nn.Conv3d(channels, channels, (2, 3, 3), padding=(3, 5, 5), dilation=5)
        self.norm3 = nn.BatchNorm3d(channels)

    def forward(self, x):
        T = x.shape[2]
        x1, x2, x3 = torch.chunk(x, 3, dim=1)
        x1 = self.norm1(self.conv1(x1))[:, :, :T]
        x2 = self.norm2(self.conv2(x2))[:, :, :T]
        x3 = self.norm3(self.conv3(x3))[:, :, :T]
        return torch.cat([x1, x2, x3], dim=1)


class SwinTransformerBlock3D(nn.Module):
    def __init__(self, dim, num_heads, window_size=(2, 7, 7), shift_size=(0, 0, 0),
                 mlp_ratio=4.0, qkv_bias=True, drop=0.0, attn_drop=0.0, drop_path=0.0,
                 embed_dim=96, context=False):
        super().__init__()
        self.dim = dim
        self.window_size = window_size
        self.shift_size = shift_size
        self.context = context
        # the reference defines all three in every block and picks one by width
        self.context_enhance1 = ContextEnhance(embed_dim // 3)
        self.context_enhance2 = ContextEnhance(embed_dim * 2 // 3)
        self.context_enhance3 = ContextEnhance(embed_dim * 4 // 3)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention3D(dim, window_size, num_heads, qkv_bias, attn_drop, drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)

    def context_enhance(self, x):
        """`[B, D, H, W, C]` through the context module of this block's width."""
        module = {self.context_enhance1.conv1.in_channels * 3: self.context_enhance1,
                  self.context_enhance2.conv1.in_channels * 3: self.context_enhance2,
                  self.context_enhance3.conv1.in_channels * 3: self.context_enhance3}[x.shape[-1]]
        return module(x.permute(0, 4, 1, 2, 3)).permute(0, 2, 3, 4, 1)

    def forward_part1(self, x, mask_matrix):
        B, D, H, W, C = x.shape
        window_size, shift_size = get_window_size((D, H, W), self.window_size, self.shift_size)
        if self.context:
            x = self.context_enhance(x)
        x = self.norm1(x)
        pad_d1 = (window_size[0] - D % window_size[0]) % window_size[0]
        pad_b = (window_size[1] - H % window_size[1]) % window_size[1]
        pad_r = (window_size[2] - W % window_size[2]) % window_size[2]
        x = F.pad(x, (0, 0, 0, pad_r, 0, pad_b, 0, pad_d1))
        _, Dp, Hp, Wp, _ = x.shape
        if any(i > 0 for i in shift_size):
            shifted_x = torch.roll(x, shifts=(-shift_size[0], -shift_size[1], -shift_size[2]),
                                   dims=(1, 2, 3))
            attn_mask = mask_matrix
        else:
            shifted_x = x
            attn_mask = None
        x_windows = window_partition(shifted_x, window_size)
        attn_windows = self.attn(x_windows, mask=attn_mask)
        attn_windows = attn_windows.view(-1, *(window_size + (C,)))
        shifted_x = window_reverse(attn_windows, window_size, B, Dp, Hp, Wp)
        if any(i > 0 for i in shift_size):
            x = torch.roll(shifted_x, shifts=shift_size, dims=(1, 2, 3))
        else:
            x = shifted_x
        if pad_d1 > 0 or pad_r > 0 or pad_b > 0:
            x = x[:, :D, :H, :W, :].contiguous()
        return x

    def forward(self, x, mask_matrix):
        x = x + self.drop_path(self.forward_part1(x, mask_matrix))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchMerging(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    def forward(self, x):
        _, _, H, W, _ = x.shape
        if (H % 2 == 1) or (W % 2 == 1):
            x = F.pad(x, (0, 0, 0, W % 2, 0, H % 2))
        x0 = x[:, :, 0::2, 0::2, :]
        x1 = x[:, :, 1::2, 0::2, :]
        x2 = x[:, :, 0::2, 1::2, :]
        x3 = x[:, :, 1::2, 1::2, :]
        x = torch.cat([x0, x1, x2, x3], -1)
        return self.reduction(self.norm(x))


class BasicLayer(nn.Module):
    """One stage: `depth` blocks (shift = window // 2 on odd ones), then patch merging."""

    def __init__(self, dim, depth, num_heads, window_size, drop_path, downsample, embed_dim,
                 context, mlp_ratio=4.0, qkv_bias=True):
        super().__init__()
        self.window_size = window_size
        self.shift_size = tuple(i // 2 for i in window_size)
        self.blocks = nn.ModuleList([
            SwinTransformerBlock3D(
                dim, num_heads, window_size,
                (0, 0, 0) if (i % 2 == 0) else self.shift_size, mlp_ratio, qkv_bias,
                drop_path=drop_path[i], embed_dim=embed_dim, context=context)
            for i in range(depth)])
        self.downsample = PatchMerging(dim) if downsample else None

    def forward(self, x):
        B, C, D, H, W = x.shape
        window_size, shift_size = get_window_size((D, H, W), self.window_size, self.shift_size)
        x = x.permute(0, 2, 3, 4, 1)  # b c d h w -> b d h w c
        Dp = int(np.ceil(D / window_size[0])) * window_size[0]
        Hp = int(np.ceil(H / window_size[1])) * window_size[1]
        Wp = int(np.ceil(W / window_size[2])) * window_size[2]
        attn_mask = compute_mask(Dp, Hp, Wp, window_size, shift_size, x.device)
        for blk in self.blocks:
            x = blk(x, attn_mask)
        x = x.view(B, D, H, W, -1)
        if self.downsample is not None:
            x = self.downsample(x)
        return x.permute(0, 4, 1, 2, 3)  # b d h w c -> b c d h w


class PatchEmbed3D(nn.Module):
    def __init__(self, patch_size=(2, 4, 4), in_chans=3, embed_dim=96):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv3d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x):
        _, _, D, H, W = x.size()
        if W % self.patch_size[2] != 0:
            x = F.pad(x, (0, self.patch_size[2] - W % self.patch_size[2]))
        if H % self.patch_size[1] != 0:
            x = F.pad(x, (0, 0, 0, self.patch_size[1] - H % self.patch_size[1]))
        if D % self.patch_size[0] != 0:
            x = F.pad(x, (0, 0, 0, 0, 0, self.patch_size[0] - D % self.patch_size[0]))
        return self.proj(x)


class SwinTransformer3D(nn.Module):
    """CET backbone `[B, 3, T, H, W]` → `[B, 8·embed, T, H / 16, W / 16]` (3 stages)."""

    def __init__(self, patch_size=(2, 4, 4), in_chans=3, embed_dim=96, depths=(2, 2, 4),
                 num_heads=(3, 6, 12), window_size=(2, 7, 7), mlp_ratio=4.0, qkv_bias=True,
                 drop_rate=0.0, drop_path_rate=0.2, context=False):
        super().__init__()
        self.num_layers = len(depths)
        self.patch_embed = PatchEmbed3D(patch_size, in_chans, embed_dim)
        self.num_features = int(embed_dim * 2 ** (self.num_layers - 1))
        self.upsample = nn.Sequential(
            nn.Upsample(scale_factor=(patch_size[0], 1, 1)),
            nn.Conv3d(self.num_features, self.num_features, (3, 1, 1), stride=1,
                      padding=(1, 0, 0)),
            nn.BatchNorm3d(self.num_features),
            nn.ELU(),
        )
        self.pos_drop = nn.Dropout(p=drop_rate)
        dpr = [x.item() for x in torch.linspace(0, drop_path_rate, sum(depths))]
        self.layers = nn.ModuleList()
        for i in range(self.num_layers):
            self.layers.append(BasicLayer(
                int(embed_dim * 2 ** i), depths[i], num_heads[i], window_size,
                dpr[sum(depths[:i]):sum(depths[:i + 1])], i < self.num_layers - 1, embed_dim,
                context, mlp_ratio, qkv_bias))
        self.norm = nn.LayerNorm(self.num_features)

    def forward(self, x):
        x = self.pos_drop(self.patch_embed(x))
        for layer in self.layers:
            x = layer(x.contiguous())
        x = x.permute(0, 2, 3, 4, 1)  # n c d h w -> n d h w c
        x = self.norm(x)
        x = x.permute(0, 4, 1, 2, 3)  # n d h w c -> n c d h w
        return self.upsample(x)


# ------------------------------------------------------------------ fusion and head


class MDEF(nn.Module):
    """Modal difference enhanced fusion, reference `l1_mean` (no parameters)."""

    def __init__(self, eps=1e-5):
        super().__init__()
        self.eps = eps

    def forward(self, f_rgb, f_nir):
        s_rgb = torch.exp(torch.mean(torch.abs(f_rgb), dim=(3, 4), keepdim=True))
        s_nir = torch.exp(torch.mean(torch.abs(f_nir), dim=(3, 4), keepdim=True))
        a_rgb = s_rgb / (s_rgb + s_nir + self.eps)
        a_nir = s_nir / (s_rgb + s_nir + self.eps)
        c = f_rgb.shape[1]
        c_rgb = torch.exp(torch.sum(torch.abs(f_rgb), dim=1, keepdim=True) / c)
        c_nir = torch.exp(torch.sum(torch.abs(f_nir), dim=1, keepdim=True) / c)
        b_rgb = c_rgb / (c_rgb + c_nir + self.eps)
        b_nir = c_nir / (c_rgb + c_nir + self.eps)
        return (a_rgb * f_rgb + a_nir * f_nir) + (b_rgb * f_rgb + b_nir * f_nir)


class RPPGNet(nn.Module):
    """`[B, C, T, H, W]` → `[B, frames]`: AdaptiveAvgPool3d((frames, 1, 1)), Conv3d C → 1."""

    def __init__(self, channels=384, frames=128):
        super().__init__()
        self.frames = frames
        self.poolspa = nn.AdaptiveAvgPool3d((frames, 1, 1))
        self.dense7 = nn.Conv3d(channels, 1, (1, 1, 1), stride=1, padding=0)

    def forward(self, x):
        return self.dense7(self.poolspa(x)).view(-1, self.frames)


class Fusion(nn.Module):
    """The reference `fusion()`: RGB and NIR backbones, MDEF, the shared rPPG head."""

    def __init__(self, frames=128, embed_dim=96, depths=(2, 2, 4), num_heads=(3, 6, 12),
                 window_size=(2, 7, 7), patch_size=(2, 4, 4), drop_path_rate=0.2,
                 context=False):
        super().__init__()
        kwargs = dict(patch_size=patch_size, in_chans=3, embed_dim=embed_dim, depths=depths,
                      num_heads=num_heads, window_size=window_size,
                      drop_path_rate=drop_path_rate, context=context)
        self.RGB_feature_extraction = SwinTransformer3D(**kwargs)
        self.NIR_feature_extraction = SwinTransformer3D(**kwargs)
        self.fusion = MDEF()
        self.rPPG_net = RPPGNet(self.RGB_feature_extraction.num_features, frames)

    def forward(self, rgb, nir):
        f_rgb = self.RGB_feature_extraction(rgb)
        f_nir = self.NIR_feature_extraction(nir)
        fused = self.fusion(f_rgb, f_nir)
        return self.rPPG_net(f_rgb), self.rPPG_net(f_nir), self.rPPG_net(fused)


# ------------------------------------------------------------------ stage-1 loss and step


class NegPearson(nn.Module):
    """Batch mean of `1 − |r|` (PhysNet-style loop over samples)."""

    def forward(self, preds, labels):
        loss = 0
        N = preds.shape[1]
        for i in range(preds.shape[0]):
            sum_x = torch.sum(preds[i])
            sum_y = torch.sum(labels[i])
            sum_xy = torch.sum(preds[i] * labels[i])
            sum_x2 = torch.sum(torch.pow(preds[i], 2))
            sum_y2 = torch.sum(torch.pow(labels[i], 2))
            pearson = (N * sum_xy - sum_x * sum_y) / torch.sqrt(
                (N * sum_x2 - torch.pow(sum_x, 2)) * (N * sum_y2 - torch.pow(sum_y, 2)))
            loss += 1 - torch.abs(pearson)
        return loss / preds.shape[0]


def psd_normalized(x, fs=30.0, bpm_min=40, bpm_max=180, eps=1e-8):
    """Hann-windowed DFT power of `[B, N]` at `bpm_min … bpm_max − 1` bpm (fractional
    bins), divided by its sum then by its maximum, per sample → `[B, K]`."""
    N = x.shape[-1]
    bpm = torch.arange(bpm_min, bpm_max, dtype=x.dtype, device=x.device)
    k = (bpm / 60.0) / (fs / N)
    t = torch.arange(N, dtype=x.dtype, device=x.device)
    phase = 2 * np.pi * k[:, None] * t[None, :] / N
    xw = x * torch.from_numpy(np.hanning(N).astype(np.float32)).to(x)
    re = xw @ torch.cos(phase).T
    im = xw @ torch.sin(phase).T
    p = re * re + im * im
    p = p / (p.sum(-1, keepdim=True) + eps)
    return p / (p.max(-1, keepdim=True).values + eps)


def spectral_loss(preds, labels, fs=30.0):
    """Per-sample mean squared distance of the normalised PSDs, batch mean."""
    d = psd_normalized(preds, fs) - psd_normalized(labels, fs)
    return torch.mean(torch.mean(d * d, dim=-1))


def stage1_loss(fused_rppg, label, fs=30.0):
    """`0.3·NegPearson + 0.3·spectral` of the fused rPPG `[B, T]` against the label."""
    return 0.3 * NegPearson()(fused_rppg, label) + 0.3 * spectral_loss(fused_rppg, label, fs)


def make_optimizer(model):
    """Adam lr 1e-4 with PyTorch's coupled (L2) weight decay 5e-5, as the reference."""
    return torch.optim.Adam(model.parameters(), lr=1e-4, weight_decay=5e-5)


def train_step(model, optimizer, rgb, nir, label, fs=30.0):
    """One stage-1 update (forward of both streams, loss, backward, Adam); the loss value."""
    optimizer.zero_grad()
    _, _, fused = model(rgb, nir)
    loss = stage1_loss(fused, label, fs)
    loss.backward()
    optimizer.step()
    return loss.detach()


def normalize(frames_u8):
    """uint8 clips `[B, T, H, W, C]` (numpy) → float32 tensor `[B, C, T, H, W]`,
    `(x / 255 − 0.5) / 0.25`."""
    x = torch.from_numpy(np.ascontiguousarray(frames_u8)).float()
    return ((x / 255.0 - 0.5) / 0.25).permute(0, 4, 1, 2, 3).contiguous()


def load_det_state_dict(model, state_dict):
    """Load numpy float tensors `{key: array}` (`strict=False`: integer buffers keep their
    computed values); raises if a float tensor of the model is not filled or a key unknown."""
    own = model.state_dict()
    unknown = sorted(set(state_dict) - set(own))
    missing = sorted(k for k, v in own.items() if v.is_floating_point() and k not in state_dict)
    if unknown or missing:
        raise ValueError(f"state dict: unknown keys {unknown[:5]}, unfilled float keys "
                         f"{missing[:5]}")
    model.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in state_dict.items()},
                          strict=False)
    return model
