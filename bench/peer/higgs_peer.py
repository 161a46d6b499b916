#!/usr/bin/python3
"""PyTorch peer of our training step: the Higgs Audio v2 training forward (Llama blocks with DualFFN audio layers,
text and audio heads), the dual next-token loss, LoRA on the configured linears, gradient clipping and AdamW.

Reads what `higgs-bench peer` writes into --dir:
  model/config.json + model/*.safetensors   base weights (boson_multimodal key layout)
  adapter/adapter_model.safetensors         LoRA A/B (PEFT keys), adapter/adapter_config.json
  batch.safetensors                          one collated batch (upstream HiggsAudioBatchInput field names)
  train.json                                 optimizer and loss settings
and prints one JSON line: the loss of every step, the seconds of every step, the torch version and thread count.

With --synthetic it needs no files: it builds a config (--shapes 3b: the released shapes; small: PeerBench's small
config), random weights in the base dtype on --device, LoRA (PEFT init) in fp32 and a batch of voice-clone-shaped rows
that each merge to exactly --seq positions, then times --steps steps after --warmup and prints `RESULT name median=...`
lines like `higgs-bench gpu`: step seconds, tokens/s, MFU and peak memory. On CUDA the base is bf16 and the loss fp32,
as in our GPU precision policy.

Runs on Debian's python3-torch (1.13: no scaled_dot_product_attention, so attention is spelled out when padding needs a
mask or SDPA is missing) and on a current CUDA PyTorch.
"""
import argparse
import glob
import json
import math
import os
import struct
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
import torch.utils.checkpoint

IGNORE = -100

_DTYPES = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "I32": np.int32, "I16": np.int16,
           "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_, "F16": np.float16}


def read_safetensors(path):
    """Minimal safetensors reader: 8-byte little-endian header size, JSON header, raw little-endian data."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    base = 8 + n
    out = {}
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        lo, hi = spec["data_offsets"]
        dt = spec["dtype"]
        if dt == "BF16":
            raw = np.frombuffer(blob, dtype=np.uint16, count=(hi - lo) // 2, offset=base + lo).astype(np.uint32) << 16
            arr = raw.view(np.float32)
        else:
            arr = np.frombuffer(blob, dtype=_DTYPES[dt], count=(hi - lo) // np.dtype(_DTYPES[dt]).itemsize, offset=base + lo)
        out[name] = torch.from_numpy(arr.copy()).reshape(spec["shape"])
    return out


class Lora(torch.nn.Module):
    def __init__(self, a, b, scaling):
        super().__init__()
        self.A = torch.nn.Parameter(a.clone())
        self.B = torch.nn.Parameter(b.clone())
        self.scaling = scaling


class Linear(torch.nn.Module):
    """Frozen weight plus an optional LoRA branch: x W^T + (x A^T) B^T * scaling."""

    def __init__(self, w):
        super().__init__()
        self.weight = torch.nn.Parameter(w, requires_grad=False)
        self.lora = None

    def forward(self, x):
        y = F.linear(x, self.weight)
        if self.lora is not None:
            h = x.to(self.lora.A.dtype)
            y = y + (F.linear(F.linear(h, self.lora.A), self.lora.B) * self.lora.scaling).to(y.dtype)
        return y


def rms_norm(x, w, eps):
    x32 = x.float()
    return w * (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype)


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class Attention(torch.nn.Module):
    def __init__(self, W, p, c):
        super().__init__()
        self.q, self.k, self.v, self.o = (Linear(W[p + n + ".weight"]) for n in ("q_proj", "k_proj", "v_proj", "o_proj"))
        self.h, self.kv, self.d = c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"]

    def forward(self, x, cos, sin, bias):
        b, l, _ = x.shape
        q = self.q(x).view(b, l, self.h, self.d).transpose(1, 2)
        k = self.k(x).view(b, l, self.kv, self.d).transpose(1, 2)
        v = self.v(x).view(b, l, self.kv, self.d).transpose(1, 2)
        cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        rep = self.h // self.kv
        if rep > 1:
            k = k.repeat_interleave(rep, dim=1)
            v = v.repeat_interleave(rep, dim=1)
        if bias is None:  # no padding: causal SDPA (flash attention on CUDA), as our model does
            o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.d) + bias
            o = torch.matmul(torch.softmax(scores, dim=-1), v)
        return self.o(o.transpose(1, 2).reshape(b, l, self.h * self.d))


class Mlp(torch.nn.Module):
    def __init__(self, W, p):
        super().__init__()
        self.gate, self.up, self.down = (Linear(W[p + n + ".weight"]) for n in ("gate_proj", "up_proj", "down_proj"))

    def forward(self, x):
        return self.down(F.silu(self.gate(x)) * self.up(x))


class DualFfnLayer(torch.nn.Module):
    """Shared attention; text rows through mlp, audio-code rows through audio_mlp, each with its own norms."""

    def __init__(self, W, j, c):
        super().__init__()
        p = "layers.%d." % j
        self.attn = Attention(W, p + "self_attn.", c)
        self.mlp = Mlp(W, p + "mlp.")
        self.audio_mlp = Mlp(W, p + "audio_mlp.")
        self.norms = {n: W[p + n + ".weight"] for n in ("input_layernorm", "post_attention_layernorm",
                                                          "audio_input_layernorm", "audio_post_attention_layernorm")}
        self.eps = c["rms_norm_eps"]

    def forward(self, x, ctx):
        n, eps = self.norms, self.eps
        m = ctx["codes"].unsqueeze(-1)
        hn = torch.where(m, rms_norm(x, n["audio_input_layernorm"], eps), rms_norm(x, n["input_layernorm"], eps))
        h = x + self.attn(hn, ctx["cos"], ctx["sin"], ctx["bias"])
        b, l, d = h.shape
        flat = h.reshape(b * l, d)
        out = flat
        tr, ar = ctx["text_rows"], ctx["audio_rows"]
        if tr.numel() > 0:
            out = out.index_add(0, tr, self.mlp(rms_norm(flat.index_select(0, tr), n["post_attention_layernorm"], eps)))
        if ar.numel() > 0:
            out = out.index_add(0, ar, self.audio_mlp(rms_norm(flat.index_select(0, ar), n["audio_post_attention_layernorm"], eps)))
        return out.view(b, l, d)


class HiggsPeer(torch.nn.Module):
    def __init__(self, cfg, W):
        super().__init__()
        t = cfg["text_config"]
        # with every layer dual-FFN, "dual_ffn_fast_forward" has no fast-forward layer left: the same model
        if cfg["audio_adapter_type"] not in ("dual_ffn", "dual_ffn_fast_forward") \
                or sorted(cfg["audio_dual_ffn_layers"]) != list(range(t["num_hidden_layers"])):
            sys.exit("peer: only configs with every layer dual-FFN are implemented")
        if cfg.get("use_audio_out_self_attention") or cfg.get("use_audio_out_embed_projector") or cfg.get("audio_embed_avg"):
            sys.exit("peer: audio self-attention, the audio-out embed projector and audio_embed_avg are not implemented")
        rs = t.get("rope_scaling")
        if rs and rs.get("rope_type", rs.get("type")) != "llama3":
            sys.exit("peer: only llama3 rope scaling is implemented")
        self.cfg, self.t = cfg, t
        self.embed = W["embed_tokens.weight"]
        self.codebook_embed = W["audio_codebook_embeddings.weight"]
        self.layers = torch.nn.ModuleList(DualFfnLayer(W, j, t) for j in range(t["num_hidden_layers"]))
        self.norm = W["norm.weight"]
        self.text_head = Linear(W["audio_decoder_proj.text_lm_head.weight"])
        self.audio_head = Linear(W["audio_decoder_proj.audio_lm_head.weight"])
        self.k = cfg["audio_num_codebooks"]
        self.cvocab = cfg["audio_codebook_size"] + 2
        d = t["head_dim"]
        inv = 1.0 / torch.pow(torch.tensor(float(t["rope_theta"])), torch.arange(0, d, 2, dtype=torch.int64).float() / d)
        self.inv_freq = llama3_scaled(inv, rs) if rs else inv
        self.checkpointing = False

    def linears(self):
        for name, mod in self.named_modules():
            if isinstance(mod, Linear):
                yield name, mod

    def embed_audio(self, ids):
        shift = (torch.arange(self.k) * self.cvocab).unsqueeze(-1)
        return F.embedding(ids + shift, self.codebook_embed).sum(0)

    def merge(self, batch, text_emb, audio_in, audio_out):
        """Replaces each <|AUDIO|> / <|AUDIO_OUT|> placeholder by its segment's frames; right padding to a multiple of 8."""
        ids, att, lab = batch["input_ids"], batch["attention_mask"], batch["label_ids"]
        b, s = ids.shape
        a_in, a_out = self.cfg["audio_in_token_idx"], self.cfg["audio_out_token_idx"]

        def seg_lengths(starts, total):
            st = starts.tolist()
            return [(st[i + 1] if i + 1 < len(st) else total) - st[i] for i in range(len(st))], st

        in_len, in_st = seg_lengths(batch["audio_in_ids_start"], audio_in.shape[0])
        out_len, out_st = seg_lengths(batch["audio_out_ids_start"], audio_out.shape[0])
        rows, n_in, n_out = [], 0, 0
        for r in range(b):
            src, tok, lbl, am, kind = [], [], [], [], []
            for i in range(s):
                v = int(ids[r, i])
                if v == a_in:
                    for j in range(in_len[n_in]):
                        src.append(("in", in_st[n_in] + j)); tok.append(a_in); lbl.append(IGNORE); am.append(1); kind.append(1)
                    n_in += 1
                elif v == a_out:
                    for j in range(out_len[n_out]):
                        src.append(("out", out_st[n_out] + j)); tok.append(a_out); lbl.append(IGNORE); am.append(1); kind.append(2)
                    n_out += 1
                else:
                    src.append(("text", r * s + i)); tok.append(v); lbl.append(int(lab[r, i])); am.append(int(att[r, i])); kind.append(0)
            rows.append((src, tok, lbl, am, kind))
        longest = max(len(x[0]) for x in rows)
        l0 = (longest + 7) // 8 * 8
        last = max(max((i for i, a in enumerate(x[3]) if a), default=-1) for x in rows)
        L = min(l0, (last + 1 + 7) // 8 * 8)
        pool = torch.cat([text_emb.new_zeros(1, text_emb.shape[-1]), text_emb.reshape(b * s, -1), audio_in, audio_out], 0)
        off = {"text": 1, "in": 1 + b * s, "out": 1 + b * s + audio_in.shape[0]}
        gather = torch.zeros(b, L, dtype=torch.long)
        labels = torch.full((b, L), IGNORE, dtype=torch.long)
        amask = torch.zeros(b, L, dtype=torch.long)
        kinds = torch.zeros(b, L, dtype=torch.long)
        for r, (src, tok, lbl, am, kind) in enumerate(rows):
            n = min(len(src), L)
            gather[r, :n] = torch.tensor([off[w] + j for w, j in src[:n]])
            labels[r, :n] = torch.tensor(lbl[:n])
            amask[r, :n] = torch.tensor(am[:n])
            kinds[r, :n] = torch.tensor(kind[:n])
        dev = pool.device
        gather, labels, amask, kinds = gather.to(dev), labels.to(dev), amask.to(dev), kinds.to(dev)
        emb = pool.index_select(0, gather.reshape(-1)).view(b, L, -1)
        pos = torch.where(amask == 0, torch.ones_like(amask), amask.cumsum(-1) - 1)
        return emb, labels, amask, pos, kinds

    def forward(self, batch):
        dev = self.embed.device
        text_emb = F.embedding(batch["input_ids"].to(dev), self.embed)
        audio_in = self.embed_audio(batch["audio_in_ids"].to(dev))
        audio_out = self.embed_audio(batch["audio_out_ids"].to(dev))
        h, labels, amask, pos, kinds = self.merge(batch, text_emb, audio_in, audio_out)
        b, L = amask.shape
        codes = kinds > 0
        valid = amask != 0
        bias = None
        if not (bool(valid.all()) and hasattr(F, "scaled_dot_product_attention")):
            allowed = torch.ones(L, L, dtype=torch.bool, device=dev).tril().unsqueeze(0) & valid.unsqueeze(1)
            empty = ~allowed.any(-1)
            allowed = allowed | (empty.unsqueeze(2) & torch.eye(L, dtype=torch.bool, device=dev).unsqueeze(0))
            bias = torch.zeros(b, 1, L, L, dtype=h.dtype, device=dev).masked_fill(~allowed.unsqueeze(1), float("-inf"))
        ang = pos.float().unsqueeze(-1) * self.inv_freq.to(dev)
        emb = torch.cat((ang, ang), -1)
        flat_codes = codes.reshape(-1)
        ctx = {"cos": emb.cos().to(h.dtype), "sin": emb.sin().to(h.dtype), "bias": bias, "codes": codes,
               "audio_rows": flat_codes.nonzero().squeeze(1), "text_rows": (~flat_codes).nonzero().squeeze(1)}
        for layer in self.layers:
            if self.checkpointing and torch.is_grad_enabled():
                h = torch.utils.checkpoint.checkpoint(layer, h, ctx, use_reentrant=False)
            else:
                h = layer(h, ctx)
        h = rms_norm(h, self.norm, self.t["rms_norm_eps"])
        logits = self.text_head(h)
        out_rows = (kinds == 2).reshape(-1).nonzero().squeeze(1)
        audio_logits = self.audio_head(h.reshape(b * L, -1).index_select(0, out_rows)).view(-1, self.k, self.cvocab).float()
        return logits, labels, audio_logits, int(amask.sum())


def higgs_loss(logits, labels, audio_logits, label_audio, text_w, audio_w):
    """Shifted text CE over trained tokens + mean over codebooks of the shifted per-codebook CE (a term without targets is 0)."""
    dev = logits.device
    label_audio = label_audio.to(dev)
    tgt = labels[:, 1:].reshape(-1)
    keep = (tgt != IGNORE).nonzero().squeeze(1)
    text = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).index_select(0, keep).float(), tgt.index_select(0, keep)) \
        if keep.numel() > 0 else torch.zeros((), device=dev)
    per = []
    for c in range(audio_logits.shape[1]):
        t = label_audio[c, 1:]
        kc = (t != IGNORE).nonzero().squeeze(1)
        per.append(F.cross_entropy(audio_logits[:-1, c].index_select(0, kc), t.index_select(0, kc)) if kc.numel() > 0
                   else torch.zeros((), device=dev))
    return text * text_w + torch.stack(per).mean() * audio_w


def llama3_scaled(inv_freq, rs):
    """Llama 3.1+ RoPE frequency scaling (transformers' _compute_llama3_parameters)."""
    factor, low, high = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
    old = rs["original_max_position_embeddings"]
    wavelen = 2 * math.pi / inv_freq
    scaled = torch.where(wavelen > old / low, inv_freq / factor, inv_freq)
    smooth = (old / wavelen - low) / (high - low)
    medium = (wavelen >= old / high) & (wavelen <= old / low)
    return torch.where(medium, (1 - smooth) * scaled / factor + smooth * scaled, scaled)


def lora_slots(model):
    """Our module paths (checkpoint names) for the peer's Linear objects, to find each LoRA pair by key."""
    names = {}
    for j, layer in enumerate(model.layers):
        p = "layers.%d." % j
        for short, lin in (("q_proj", layer.attn.q), ("k_proj", layer.attn.k), ("v_proj", layer.attn.v), ("o_proj", layer.attn.o)):
            names[p + "self_attn." + short] = lin
        for mlp_name, mlp in (("mlp", layer.mlp), ("audio_mlp", layer.audio_mlp)):
            for short, lin in (("gate_proj", mlp.gate), ("up_proj", mlp.up), ("down_proj", mlp.down)):
                names[p + mlp_name + "." + short] = lin
    names["audio_decoder_proj.text_lm_head"] = model.text_head
    names["audio_decoder_proj.audio_lm_head"] = model.audio_head
    return names


def targeted(path, targets):
    """PEFT's suffix rule."""
    return any(path == t or path.endswith("." + t) for t in targets)


def config_of(shapes, hidden, layers):
    """--shapes 3b: CheckpointBench.FullSize() (the released config); small: PeerBench.SmallConfig(hidden, layers)."""
    if shapes == "3b":
        t = {"vocab_size": 128256, "hidden_size": 3072, "intermediate_size": 8192, "num_hidden_layers": 28,
             "num_attention_heads": 24, "num_key_value_heads": 8, "head_dim": 128, "rms_norm_eps": 1e-5, "rope_theta": 500000.0,
             "rope_scaling": {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                              "original_max_position_embeddings": 8192}}
        ids = {"audio_in_token_idx": 128015, "audio_out_token_idx": 128016, "pad_token_id": 128001}
    else:
        t = {"vocab_size": 8192, "hidden_size": hidden, "intermediate_size": hidden * 11 // 4, "num_hidden_layers": layers,
             "num_attention_heads": hidden // 64, "num_key_value_heads": max(1, hidden // 256), "head_dim": 64,
             "rms_norm_eps": 1e-5, "rope_theta": 500000.0}
        ids = {"audio_in_token_idx": 8000, "audio_out_token_idx": 8001, "pad_token_id": 8005}
    return dict(ids, text_config=t, audio_adapter_type="dual_ffn", audio_dual_ffn_layers=list(range(t["num_hidden_layers"])),
                audio_num_codebooks=8, audio_codebook_size=1024)


def random_weights(cfg, dtype, device, gen):
    """N(0, 0.02) for every matrix and embedding, 1 for the norms (as `higgs-bench gpu` fills its model)."""
    t = cfg["text_config"]
    hd, inter, v = t["hidden_size"], t["intermediate_size"], t["vocab_size"]
    q, kv = t["num_attention_heads"] * t["head_dim"], t["num_key_value_heads"] * t["head_dim"]
    shapes = {"embed_tokens.weight": (v, hd), "norm.weight": (hd,),
              "audio_codebook_embeddings.weight": (cfg["audio_num_codebooks"] * (cfg["audio_codebook_size"] + 2), hd),
              "audio_decoder_proj.text_lm_head.weight": (v, hd),
              "audio_decoder_proj.audio_lm_head.weight": (cfg["audio_num_codebooks"] * (cfg["audio_codebook_size"] + 2), hd)}
    for j in range(t["num_hidden_layers"]):
        p = "layers.%d." % j
        shapes.update({p + "self_attn.q_proj.weight": (q, hd), p + "self_attn.k_proj.weight": (kv, hd),
                       p + "self_attn.v_proj.weight": (kv, hd), p + "self_attn.o_proj.weight": (hd, q)})
        for m in ("mlp.", "audio_mlp."):
            shapes.update({p + m + "gate_proj.weight": (inter, hd), p + m + "up_proj.weight": (inter, hd), p + m + "down_proj.weight": (hd, inter)})
        for n in ("input_layernorm", "post_attention_layernorm", "audio_input_layernorm", "audio_post_attention_layernorm"):
            shapes[p + n + ".weight"] = (hd,)
    W = {}
    for k, shape in shapes.items():
        w = torch.empty(shape, dtype=dtype, device=device)
        W[k] = w.fill_(1.0) if "norm" in k else w.normal_(0, 0.02, generator=gen)
    return W


def synthetic_batch(cfg, batch, seq, rng):
    """Collated voice-clone rows like PeerBench.MakeSample's (untrained text, audio-in, reference audio-out, trained text,
    trained target audio-out) whose target audio is sized so every row merges to exactly `seq` positions."""
    k, bins = cfg["audio_num_codebooks"], cfg["audio_codebook_size"]
    a_in, a_out, pad = cfg["audio_in_token_idx"], cfg["audio_out_token_idx"], cfg["pad_token_id"]
    bos, eos, out_bos = 10, 11, 12
    rows, ins, outs, out_trained = [], [], [], []
    for _ in range(batch):
        ids, lab = [], []

        def text(n, trained):
            for _ in range(n):
                v = int(torch.randint(100, 7900, (1,), generator=rng))
                ids.append(v); lab.append(v if trained else IGNORE)

        def tok(v, trained):
            ids.append(v); lab.append(v if trained else IGNORE)
        t1, t2 = int(torch.randint(40, 70, (1,), generator=rng)), int(torch.randint(20, 40, (1,), generator=rng))
        n_in, n_ref = int(torch.randint(40, 60, (1,), generator=rng)) + k + 1, int(torch.randint(50, 80, (1,), generator=rng)) + k + 1
        text(t1, False); tok(bos, False); tok(a_in, False); tok(eos, False)
        tok(out_bos, False); tok(a_out, False); tok(eos, False)
        text(t2, True); tok(out_bos, True); tok(a_out, True); tok(eos, True)
        n_target = seq - (len(ids) - 3) - n_in - n_ref   # the 3 placeholders become their segments' columns
        if n_target < 2:
            sys.exit("peer: --seq %d is shorter than a row's text and reference audio" % seq)
        rows.append((ids, lab)); ins.append(n_in); outs += [n_ref, n_target]; out_trained += [False, True]
    s = max(len(r[0]) for r in rows)
    input_ids = torch.full((batch, s), pad, dtype=torch.long)
    label_ids = torch.full((batch, s), IGNORE, dtype=torch.long)
    mask = torch.zeros(batch, s, dtype=torch.long)
    for r, (ids, lab) in enumerate(rows):
        input_ids[r, :len(ids)] = torch.tensor(ids); label_ids[r, :len(ids)] = torch.tensor(lab); mask[r, :len(ids)] = 1
    audio_out = torch.randint(0, bins, (k, sum(outs)), generator=rng)
    label_audio = audio_out.clone()
    starts_out = [sum(outs[:i]) for i in range(len(outs))]
    for st, n, trained in zip(starts_out, outs, out_trained):
        if not trained:
            label_audio[:, st:st + n] = IGNORE
    return {"input_ids": input_ids, "attention_mask": mask, "label_ids": label_ids,
            "audio_in_ids": torch.randint(0, bins, (k, sum(ins)), generator=rng),
            "audio_in_ids_start": torch.tensor([sum(ins[:i]) for i in range(len(ins))], dtype=torch.long),
            "audio_out_ids": audio_out, "audio_out_ids_start": torch.tensor(starts_out, dtype=torch.long),
            "label_audio_ids": label_audio}


def flops_per_token(t, seq_len):
    """GpuBench.FlopsPerToken: 4*N_active (forward + input-gradient backward through the frozen base) + 12*layers*hidden*T."""
    attn = t["hidden_size"] * t["num_attention_heads"] * t["head_dim"] * 2 + t["hidden_size"] * t["num_key_value_heads"] * t["head_dim"] * 2
    ffn = 3.0 * t["hidden_size"] * t["intermediate_size"]
    n_active = t["num_hidden_layers"] * (attn + ffn) + t["hidden_size"] * t["vocab_size"]
    return 4 * n_active + 12.0 * t["num_hidden_layers"] * t["hidden_size"] * seq_len


def result(name, xs, unit):
    """The `RESULT name median=... min=... max=... n=... unit=...` line of Stats.Line in the C# bench."""
    s = sorted(xs)
    med = s[len(s) // 2] if len(s) % 2 else (s[len(s) // 2 - 1] + s[len(s) // 2]) / 2
    print("RESULT %s median=%.5g min=%.5g max=%.5g n=%d unit=%s" % (name, med, s[0], s[-1], len(s), unit), flush=True)
    return med


def smi_process_mib():
    """This process's GPU memory per nvidia-smi (None where a container hides the pid or there is no nvidia-smi)."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for line in out.splitlines():
        pid, _, mib = line.partition(",")
        if pid.strip() == str(os.getpid()):
            return int(mib.strip())
    return None


def train_step(model, batch, opt, lora_params, train):
    opt.zero_grad(set_to_none=False)
    logits, labels, audio_logits, positions = model(batch)
    loss = higgs_loss(logits, labels, audio_logits, batch["label_audio_ids"], train["text_loss_weight"], train["audio_loss_weight"])
    loss.backward()
    torch.nn.utils.clip_grad_norm_(lora_params, train["max_grad_norm"])
    opt.step()
    return loss, positions


def run_synthetic(a):
    """Same shapes and choices as `higgs-bench gpu`; prints RESULT lines to compare with its own."""
    dev = torch.device(a.device)
    cuda = dev.type == "cuda"
    dtype = torch.bfloat16 if cuda else torch.float32   # our precision policy: bf16 base on CUDA, fp32 on the CPU
    gen = torch.Generator(device=dev).manual_seed(7)
    cfg = config_of(a.shapes, a.hidden, a.layers)
    t = cfg["text_config"]
    model = HiggsPeer(cfg, random_weights(cfg, dtype, dev, gen))
    model.checkpointing = bool(a.grad_checkpointing)
    targets = a.lora_targets.split(",")
    cpu_gen = torch.Generator().manual_seed(11)
    lora_params = []
    for path, lin in sorted(lora_slots(model).items()):
        if targeted(path, targets):
            fan_in = lin.weight.shape[1]
            bound = 1.0 / math.sqrt(fan_in)   # PEFT's init: A ~ U(+-1/sqrt(in)), B = 0
            A = (torch.rand(a.lora_r, fan_in, generator=cpu_gen) * 2 * bound - bound).to(dev)
            lin.lora = Lora(A, torch.zeros(lin.weight.shape[0], a.lora_r, device=dev), 2.0)   # alpha = 2r
            lora_params += [lin.lora.A, lin.lora.B]
    n_lora = sum(p.numel() for p in lora_params)
    # TrainOptions' defaults
    train = {"text_loss_weight": 1.0, "audio_loss_weight": 1.0, "max_grad_norm": 1.0}
    opt = torch.optim.AdamW(lora_params, lr=2e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.01)
    batch = synthetic_batch(cfg, a.batch, a.seq, torch.Generator().manual_seed(5))
    name = torch.cuda.get_device_name(dev) if cuda else "cpu"
    print("peer: PyTorch %s on %s, %s shapes, %s base, LoRA r%d fp32 on %d linears (%.1fM parameters), AdamW, checkpointing %s, "
          "batch %d x %d positions" % (torch.__version__, name, a.shapes, str(dtype).replace("torch.", ""), a.lora_r,
                                       len(lora_params) // 2, n_lora / 1e6, "on" if model.checkpointing else "off", a.batch, a.seq), flush=True)

    def sync():
        if cuda:
            torch.cuda.synchronize(dev)
    if cuda:
        torch.cuda.reset_peak_memory_stats(dev)
    seconds, positions = [], 0
    for s in range(a.warmup + a.steps):
        sync()
        t0 = time.perf_counter()
        loss, positions = train_step(model, batch, opt, lora_params, train)
        sync()
        if s >= a.warmup:
            seconds.append(time.perf_counter() - t0)
    if positions != a.batch * a.seq:
        sys.exit("peer: merged %d positions, expected %d" % (positions, a.batch * a.seq))
    fpt = flops_per_token(t, a.seq)
    result("peer_gpu_step_s", seconds, "s")
    result("peer_gpu_tokens_per_s", [positions / x for x in seconds], "tokens/s")
    result("peer_gpu_mfu", [positions / x * fpt / (a.peak_tflops * 1e12) for x in seconds], "fraction")
    if cuda:
        gib = 1024.0 ** 3
        result("peer_gpu_peak_allocated_GiB", [torch.cuda.max_memory_allocated(dev) / gib], "GiB")
        result("peer_gpu_peak_reserved_GiB", [torch.cuda.max_memory_reserved(dev) / gib], "GiB")
        mib = smi_process_mib()
        if mib is not None:   # the C# bench's gpu_peak_memory_GiB is this same nvidia-smi reading
            result("peer_gpu_peak_memory_GiB", [mib / 1024.0], "GiB")
    print("peer: last loss %.6f" % loss.item(), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", help="files written by `higgs-bench peer` (the CPU comparison)")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--synthetic", action="store_true", help="no files: random model and batch at --shapes on --device")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--shapes", choices=("3b", "small"), default="3b")
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=4096, help="merged positions per row")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--grad-checkpointing", type=int, default=1)
    ap.add_argument("--lora-r", type=int, default=16)
    ap.add_argument("--lora-targets", default="q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj")
    ap.add_argument("--peak-tflops", type=float, default=989.4)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.synthetic:
        return run_synthetic(a)
    if not a.dir:
        ap.error("--dir or --synthetic is required")
    cfg = json.load(open(os.path.join(a.dir, "model", "config.json")))
    W = {}
    for f in sorted(glob.glob(os.path.join(a.dir, "model", "*.safetensors"))):
        W.update({k: v.float() for k, v in read_safetensors(f).items()})
    train = json.load(open(os.path.join(a.dir, "train.json")))
    model = HiggsPeer(cfg, W)

    acfg = json.load(open(os.path.join(a.dir, "adapter", "adapter_config.json")))
    lw = read_safetensors(os.path.join(a.dir, "adapter", "adapter_model.safetensors"))
    scaling = acfg["lora_alpha"] / acfg["r"]
    targets = acfg["target_modules"]
    lora_params = []
    for path, lin in sorted(lora_slots(model).items()):
        if not targeted(path, targets):
            continue
        key = "base_model.model." + path
        lin.lora = Lora(lw[key + ".lora_A.weight"].float(), lw[key + ".lora_B.weight"].float(), scaling)
        lora_params += [lin.lora.A, lin.lora.B]
    n_pairs = sum(1 for k in lw if k.endswith(".lora_A.weight"))
    if 2 * n_pairs != len(lora_params):
        sys.exit("peer: %d LoRA pairs in the adapter file, %d matched the model" % (n_pairs, len(lora_params) // 2))

    batch = read_safetensors(os.path.join(a.dir, "batch.safetensors"))
    opt = torch.optim.AdamW(lora_params, lr=train["lr"], betas=(train["beta1"], train["beta2"]), eps=train["eps"],
                            weight_decay=train["weight_decay"])
    losses, seconds, positions = [], [], 0
    for _ in range(a.steps + 1):
        t0 = time.perf_counter()
        loss, positions = train_step(model, batch, opt, lora_params, train)
        seconds.append(time.perf_counter() - t0)
        losses.append(loss.item())
    print(json.dumps({"losses": losses, "seconds": seconds, "torch": torch.__version__, "threads": torch.get_num_threads(),
                      "positions": positions}))


if __name__ == "__main__":
    main()
