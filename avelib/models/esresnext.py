"""ESResNeXt-FBSP: AudioCLIP's audio tower (trainable Fourier front end + attention-gated ResNeXt).

Computes the same function as the official AudioCLIP audio tower in eval mode, with the same
state_dict key names (`fbsp.{m,fb,fc}`, `window`, `conv1`, `bn1`, `layerN.i.*`, `attN.*`, `fc`),
so official checkpoints load without renaming. Widths/depths and the STFT framing are
parameters so that a small CPU profile runs the very same code path.

Pipeline for a waveform [B, N] (int16 amplitude range, see `AudioTowerConfig`):
  rescale to [-1, 1] -> frames (zero-padded ends, periodic Blackman-Harris window, zero-padded to
  n_fft) -> FBSP "learnable DFT" -> bins split into `bands` channels -> power in dB
  -> ResNeXt trunk with attention gates -> avg-pool x gate -> fc -> [B, out_dim].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

# the official front end replaces non-positive powers by this before log10
LOG10_EPS = 1e-18
# the FBSP formula adds these to avoid 0/0
FBSP_EPS = 1e-8


@dataclass(frozen=True)
class AudioTowerConfig:
    """Sizes of the audio tower (paper values are the official AudioCLIP ones)."""

    n_fft: int = 2048  # FBSP input length (frames are zero-padded to it); bins = n_fft//2 + 1
    win_length: int = 1654  # samples per frame
    hop_length: int = 561  # samples between frame starts
    bands: int = 3  # the spectrum is cut into this many equal bands = the trunk's input channels
    layers: tuple[int, int, int, int] = (3, 4, 6, 3)  # bottlenecks per stage
    width: int = 64  # stem channels; stage k has planes width * 2**k, output planes * 4
    groups: int = 32  # ResNeXt cardinality
    width_per_group: int = 4  # ResNeXt 32x4d
    out_dim: int = 1024  # fc output = joint embedding size

    @property
    def num_bins(self) -> int:
        # the official layer rounds n_fft/2 (python banker's rounding) then adds 1
        return int(round(self.n_fft / 2)) + 1

    @property
    def feature_dim(self) -> int:
        return self.width * 8 * 4


def blackman_harris(length: int) -> torch.Tensor:
    """Periodic 4-term Blackman-Harris window (the DFT-even variant), float64 [length]."""
    coeffs = (0.35875, 0.48829, 0.14128, 0.01168)
    # periodic: one period of length `length` (denominator = length, not length - 1)
    phase = 2.0 * math.pi * torch.arange(length, dtype=torch.float64) / length
    w = torch.zeros(length, dtype=torch.float64)
    for k, a in enumerate(coeffs):
        w = w + ((-1) ** k) * a * torch.cos(k * phase)
    return w


class FBSP(nn.Module):
    """Trainable Fourier layer of complex frequency B-spline (fbsp) wavelet filters (no bias, normalized).

    Each output bin k is a complex filter over the frame: sqrt(fb_k) * w_k(t) * exp(-i fc_k t),
    t in pi * linspace(-1, 1, L); w_k = sinc(fb_k t / m_k) raised to the (real) power m_k, where a
    negative sinc lobe raised to m gives phase pi * m. Initialized (m=0, fb=1, fc=k) it is the DFT
    up to the 1/sqrt(L) normalization.
    """

    def __init__(self, num_bins: int) -> None:
        super().__init__()
        self.num_bins = num_bins
        self.m = nn.Parameter(torch.zeros(num_bins))
        self.fb = nn.Parameter(torch.ones(num_bins))
        self.fc = nn.Parameter(torch.arange(num_bins, dtype=torch.float32))
        # the official training normalizes these gradients by their max-norm (keeps fc/fb/m steps
        # comparable despite fc spanning 0..1024); same hooks here so fine-tuning behaves alike
        self.defer_normalization = False  # data parallel: normalize the summed gradient instead
        for p in (self.m, self.fb, self.fc):
            p.register_hook(self._normalize_hook)

    def _normalize_hook(self, grad: torch.Tensor) -> torch.Tensor:
        return grad if self.defer_normalization else _inf_normalize_grad(grad)

    def normalize_gradients(self) -> None:
        """The hooks' max-norm rule on the accumulated `.grad` (after a deferred, summed backward)."""
        for p in (self.m, self.fb, self.fc):
            if p.grad is not None:
                p.grad.copy_(_inf_normalize_grad(p.grad))

    def filters(self, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Real and imaginary filter banks, each [num_bins, length] (already / sqrt(length)).

        The float32 operation order follows the official layer on purpose: in quiet (high-frequency)
        bins the power is a tiny difference of large terms, so its dB value, and through the network
        the embedding, depends on the exact rounding of these weights. In particular the time grid
        must stay torch's float32 linspace and sin/cos torch's own: a float64 grid rounded to float32
        (20 of 2048 points differ by one ulp) or float64 weights move the embeddings by ~20 %
        (measured against the official code's outputs, tests/test_conformance.py).
        """
        t = math.pi * torch.linspace(-1.0, 1.0, length, dtype=self.m.dtype, device=self.m.device)
        t = t[None, :] + FBSP_EPS  # [1,L]
        m, fb, fc = self.m[:, None], self.fb[:, None], self.fc[:, None]  # [K,1]
        arg = fb * t / (m + FBSP_EPS)  # [K,L]
        sinc = torch.where(arg == 0, torch.ones_like(arg), torch.sin(arg) / arg)
        # sinc ** m as a complex power of a real number: |s|^m * exp(i * m * angle(s))
        mag = torch.sqrt(sinc * sinc)
        angle = torch.atan2(torch.zeros_like(sinc), sinc)  # 0, or pi on negative lobes
        amp = (mag * mag) ** (0.5 * m)
        win_re, win_im = amp * torch.cos(m * angle), amp * torch.sin(m * angle)  # [K,L]
        ker_re, ker_im = torch.cos(fc * t), -torch.sin(fc * t)  # [K,L], exp(-i fc t)
        gain = fb.sqrt()  # [K,1]
        real = gain * (win_re * ker_re - win_im * ker_im) / math.sqrt(length)
        imag = gain * (win_re * ker_im + win_im * ker_re) / math.sqrt(length)
        return real, imag

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """frames [..., L] real -> (real, imag) spectra [..., num_bins]."""
        real, imag = self.filters(frames.shape[-1])
        return F.linear(frames, real), F.linear(frames, imag)

    def norm_loss(self, length: int) -> torch.Tensor:
        """AudioCLIP's `loss_ttf`: MSE of each normalized filter's L2 norm to 1."""
        real, imag = self.filters(length)
        norms = torch.sqrt((real * real + imag * imag).sum(dim=-1))  # [K]
        return F.mse_loss(norms, torch.ones_like(norms))


def _inf_normalize_grad(grad: torch.Tensor) -> torch.Tensor:
    return grad / (grad.abs().max() + FBSP_EPS)


class AttentionGate(nn.Module):
    """Depthwise + pointwise conv, BN, sigmoid on the max-pooled block input -> multiplicative mask."""

    def __init__(self, in_ch: int, out_ch: int, kernel: tuple[int, int]) -> None:
        super().__init__()
        pad = (kernel[0] // 2, kernel[1] // 2)
        self.conv_depth = nn.Conv2d(in_ch, in_ch, kernel, padding=pad, groups=in_ch)
        self.conv_point = nn.Conv2d(in_ch, out_ch, 1)
        self.bn = nn.BatchNorm2d(out_ch)

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        x = F.adaptive_max_pool2d(x, size)  # [B,Cin,h,w] at the gated tensor's size
        return torch.sigmoid(self.bn(self.conv_point(self.conv_depth(x))))  # [B,Cout,h,w]


class ResNeXtBottleneck(nn.Module):
    """torchvision-style bottleneck (stride on the grouped 3x3), same key names as torchvision."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int, groups: int, width_per_group: int) -> None:
        super().__init__()
        width = int(planes * (width_per_group / 64.0)) * groups
        out = planes * self.expansion
        self.conv1 = nn.Conv2d(inplanes, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, groups=groups, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.downsample: nn.Module | None = None
        if stride != 1 or inplanes != out:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, out, 1, stride=stride, bias=False), nn.BatchNorm2d(out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        skip = x if self.downsample is None else self.downsample(x)
        return F.relu(y + skip)


# gate kernels: alternate along frequency (3,1) and time (1,5); the last spans both
_GATE_KERNELS = ((3, 1), (1, 5), (3, 1), (1, 5), (3, 5))


class ESResNeXtFBSP(nn.Module):
    """Audio tower: int16-range waveform [B, N] or [B, C, N] -> embedding [B, out_dim]."""

    def __init__(self, cfg: AudioTowerConfig) -> None:
        super().__init__()
        if cfg.n_fft < cfg.win_length:
            raise ValueError(f"audio tower: n_fft {cfg.n_fft} must be >= win_length {cfg.win_length}")
        if cfg.num_bins < cfg.bands:
            raise ValueError(f"audio tower: {cfg.num_bins} bins cannot make {cfg.bands} bands")
        self.cfg = cfg
        w = cfg.width
        self.fbsp = FBSP(cfg.num_bins)
        self.register_buffer("window", blackman_harris(cfg.win_length).float())
        self.conv1 = nn.Conv2d(cfg.bands, w, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(w)
        inplanes = w
        gate_in = w
        for i, (n_blocks, kernel) in enumerate(zip(cfg.layers, _GATE_KERNELS)):
            planes = w * 2**i
            blocks = []
            for j in range(n_blocks):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(ResNeXtBottleneck(inplanes, planes, stride, cfg.groups, cfg.width_per_group))
                inplanes = planes * ResNeXtBottleneck.expansion
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
            self.add_module(f"att{i + 1}", AttentionGate(gate_in, inplanes, kernel))
            gate_in = inplanes
        self.att5 = AttentionGate(inplanes, inplanes, _GATE_KERNELS[4])
        self.fc = nn.Linear(inplanes, cfg.out_dim)
        self._init_weights()

    def _init_weights(self) -> None:
        # the official random init (before any checkpoint): He fan-out convs, BN weight 1 / bias 0
        for mod in self.modules():
            if isinstance(mod, nn.Conv2d):
                nn.init.kaiming_normal_(mod.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(mod, nn.BatchNorm2d):
                nn.init.ones_(mod.weight)
                nn.init.zeros_(mod.bias)

    @property
    def band_height(self) -> int:
        return self.cfg.num_bins // self.cfg.bands

    def frames(self, x: torch.Tensor) -> torch.Tensor:
        """[R, N] -> windowed frames [R, T, n_fft], T = 1 + ceil((N - win) / hop) (>= 1)."""
        cfg = self.cfg
        n = x.shape[-1]
        n_frames = 1 if n <= cfg.win_length else 1 + math.ceil((n - cfg.win_length) / cfg.hop_length)
        total = (n_frames - 1) * cfg.hop_length + cfg.win_length
        extra = max(total - n, 0)
        x = F.pad(x, (extra // 2, extra - extra // 2))  # zeros split around the signal
        fr = x.unfold(-1, cfg.win_length, cfg.hop_length) * self.window  # [R,T,win]
        pad = cfg.n_fft - cfg.win_length
        return F.pad(fr, (pad // 2, pad - pad // 2))  # [R,T,n_fft]

    def spectrogram_db(self, x: torch.Tensor) -> torch.Tensor:
        """int16-range waveform [R, N] -> power in dB [R, bands, H, T]."""
        # the official tower maps [-32768, 32767] linearly onto [-1, 1] (note the tiny offset)
        x = (x + 32768.0) * 2.0 / 65535.0 - 1.0
        fr = self.frames(x)  # [R,T,n_fft]
        h = self.band_height
        re, im = self.fbsp(fr)  # [R,T,K] each
        re, im = re[..., : h * self.cfg.bands], im[..., : h * self.cfg.bands]  # top bins unused
        power = re * re + im * im
        power = torch.where(power > 0, power, torch.full_like(power, LOG10_EPS))
        db = 10.0 * torch.log10(power)  # [R,T,bands*H]
        r, t = db.shape[0], db.shape[1]
        return db.transpose(1, 2).reshape(r, self.cfg.bands, h, t)  # [R,bands,H,T]

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """dB spectrogram [R, bands, H, T] -> pooled, gated features [R, F]."""
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.max_pool2d(x, 3, stride=2, padding=1)
        for i in range(1, 5):
            layer: nn.Module = getattr(self, f"layer{i}")
            gate: AttentionGate = getattr(self, f"att{i}")
            y = layer(x)
            x = y * gate(x, y.shape[-2:])  # gate computed from the block input
        pooled = x.mean(dim=(-2, -1), keepdim=True)  # [R,F,1,1]
        pooled = pooled * self.att5(x, (1, 1))
        return pooled.flatten(1)  # [R,F]

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """wave [B, N] or [B, C, N], int16 amplitude range -> [B, out_dim]; channels are summed
        after pooling, as the official tower does for multi-channel input."""
        if wave.dim() == 2:
            wave = wave[:, None, :]  # [B,1,N]
        if wave.dim() != 3:
            raise ValueError(f"audio tower: expected [B, N] or [B, C, N], got {tuple(wave.shape)}")
        b, c, n = wave.shape
        db = self.spectrogram_db(wave.reshape(b * c, n).float())  # [B*C,bands,H,T]
        feats = self.trunk(db).reshape(b, c, -1).sum(dim=1)  # [B,F]
        return self.fc(feats)  # [B,out_dim]

    def fbsp_loss(self) -> torch.Tensor:
        return self.fbsp.norm_loss(self.cfg.n_fft)
