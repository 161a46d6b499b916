#!/usr/bin/python3
"""PyTorch peer of our training step: the Higgs Audio v2 training forward (Llama blocks with DualFFN audio layers,
text and audio heads), the dual next-token loss, LoRA on the configured linears, gradient clipping and AdamW.

Reads what `higgs-bench peer` writes into --dir:
  model/config.json + model/*.safetensors   base weights (boson_multimodal key layout)
  adapter/adapter_model.safetensors         LoRA A/B (PEFT keys), adapter/adapter_config.json
  batch.safetensors                          one collated batch (upstream HiggsAudioBatchInput field names)
  train.json                                 optimizer and loss settings
and prints one JSON line: the loss of every step, the seconds of every step, the torch version and thread count.

Written for Debian's python3-torch (1.13: no scaled_dot_product_attention, so attention is spelled out).
"""
import argparse
import glob
import json
import math
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

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
            y = y + F.linear(F.linear(x, self.lora.A), self.lora.B) * self.lora.scaling
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
        if cfg["audio_adapter_type"] != "dual_ffn" or sorted(cfg["audio_dual_ffn_layers"]) != list(range(t["num_hidden_layers"])):
            sys.exit("peer: only configs with every layer dual-FFN are implemented")
        if cfg.get("use_audio_out_self_attention") or cfg.get("use_audio_out_embed_projector") or cfg.get("audio_embed_avg"):
            sys.exit("peer: audio self-attention, the audio-out embed projector and audio_embed_avg are not implemented")
        if t.get("rope_scaling"):
            sys.exit("peer: rope scaling is not implemented")
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
        self.inv_freq = 1.0 / torch.pow(torch.tensor(float(t["rope_theta"])), torch.arange(0, d, 2, dtype=torch.int64).float() / d)

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
        pool = torch.cat([torch.zeros(1, text_emb.shape[-1]), text_emb.reshape(b * s, -1), audio_in, audio_out], 0)
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
        emb = pool.index_select(0, gather.reshape(-1)).view(b, L, -1)
        pos = torch.where(amask == 0, torch.ones_like(amask), amask.cumsum(-1) - 1)
        return emb, labels, amask, pos, kinds

    def forward(self, batch):
        text_emb = F.embedding(batch["input_ids"], self.embed)
        audio_in = self.embed_audio(batch["audio_in_ids"])
        audio_out = self.embed_audio(batch["audio_out_ids"])
        h, labels, amask, pos, kinds = self.merge(batch, text_emb, audio_in, audio_out)
        b, L = amask.shape
        codes = kinds > 0
        valid = amask != 0
        allowed = torch.ones(L, L, dtype=torch.bool).tril().unsqueeze(0) & valid.unsqueeze(1)
        empty = ~allowed.any(-1)
        allowed = allowed | (empty.unsqueeze(2) & torch.eye(L, dtype=torch.bool).unsqueeze(0))
        bias = torch.zeros(b, 1, L, L).masked_fill(~allowed.unsqueeze(1), float("-inf"))
        ang = pos.float().unsqueeze(-1) * self.inv_freq
        emb = torch.cat((ang, ang), -1)
        flat_codes = codes.reshape(-1)
        ctx = {"cos": emb.cos(), "sin": emb.sin(), "bias": bias, "codes": codes,
               "audio_rows": flat_codes.nonzero().squeeze(1), "text_rows": (~flat_codes).nonzero().squeeze(1)}
        for layer in self.layers:
            h = layer(h, ctx)
        h = rms_norm(h, self.norm, self.t["rms_norm_eps"])
        logits = self.text_head(h)
        out_rows = (kinds == 2).reshape(-1).nonzero().squeeze(1)
        audio_logits = self.audio_head(h.reshape(b * L, -1).index_select(0, out_rows)).view(-1, self.k, self.cvocab)
        return logits, labels, audio_logits, int(amask.sum())


def higgs_loss(logits, labels, audio_logits, label_audio, text_w, audio_w):
    """Shifted text CE over trained tokens + mean over codebooks of the shifted per-codebook CE (a term without targets is 0)."""
    tgt = labels[:, 1:].reshape(-1)
    keep = (tgt != IGNORE).nonzero().squeeze(1)
    text = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).index_select(0, keep), tgt.index_select(0, keep)) \
        if keep.numel() > 0 else torch.zeros(())
    per = []
    for c in range(audio_logits.shape[1]):
        t = label_audio[c, 1:]
        kc = (t != IGNORE).nonzero().squeeze(1)
        per.append(F.cross_entropy(audio_logits[:-1, c].index_select(0, kc), t.index_select(0, kc)) if kc.numel() > 0 else torch.zeros(()))
    return text * text_w + torch.stack(per).mean() * audio_w


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
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
    # Our module paths (checkpoint names) for the peer's Linear objects, to find each LoRA pair by key.
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
    lora_params = []
    for path, lin in sorted(names.items()):
        if not any(path == t or path.endswith("." + t) for t in targets):
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
        opt.zero_grad(set_to_none=False)
        logits, labels, audio_logits, positions = model(batch)
        loss = higgs_loss(logits, labels, audio_logits, batch["label_audio_ids"], train["text_loss_weight"], train["audio_loss_weight"])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(lora_params, train["max_grad_norm"])
        opt.step()
        seconds.append(time.perf_counter() - t0)
        losses.append(loss.item())
    print(json.dumps({"losses": losses, "seconds": seconds, "torch": torch.__version__, "threads": torch.get_num_threads(),
                      "positions": positions}))


if __name__ == "__main__":
    main()
