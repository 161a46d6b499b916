#!/usr/bin/env python3
"""Checks that our LoRA adapters and merged checkpoints mean the same thing in Hugging Face PEFT as in HiggsCluster.

For each layout it builds the tiny model from our base folder with the Python class of that layout, loads our adapter
with PeftModel.from_pretrained, and compares its logits with the logits of our merged checkpoint loaded without LoRA.
A key PEFT cannot place ("Found missing adapter keys") leaves its lora_B at zero, so that is a FAIL as well, and so is
an adapter that does not change the logits at all (the control). Prints one PASS/FAIL line per layout; exit 1 on FAIL.

Inputs come from `higgs adapter interop-fixture --out DIR` (DIR/{boson,transformers}/{base,adapter,merged}) or from
explicit folders. Needs torch, peft, safetensors and, per layout:
  boson:        a checkout of boson-ai/higgs-audio (--higgs-audio-src), whose boson_multimodal package has the class
  transformers: transformers >= 5.3 (HiggsAudioV2ForConditionalGeneration)

usage: check_peft_interop.py --fixture DIR [--layout boson|transformers|both] [--higgs-audio-src DIR]
       check_peft_interop.py --layout transformers --base DIR --adapter DIR --merged DIR
"""
import argparse
import os
import sys
import warnings


def load_class(layout, higgs_audio_src):
    """The model class that reads a checkpoint of this layout (imported lazily so --help works anywhere)."""
    if layout == "boson":
        if higgs_audio_src:
            sys.path.insert(0, os.path.abspath(higgs_audio_src))
        from boson_multimodal.model.higgs_audio import HiggsAudioModel
        return HiggsAudioModel
    import transformers
    for name in ("HiggsAudioV2ForConditionalGeneration", "HiggsAudioV2Model"):
        cls = getattr(transformers, name, None)
        if cls is not None:
            return cls
    raise ImportError(f"transformers {transformers.__version__} has no HiggsAudioV2 class (needs >= 5.3)")


def text_logits(model, input_ids):
    import torch
    with torch.no_grad():
        out = model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids))
    logits = out.logits if hasattr(out, "logits") else out[0]
    return logits.float()


def check(layout, base, adapter, merged, cls, atol):
    """Returns (ok, message)."""
    import torch
    from peft import PeftModel
    from safetensors import safe_open

    torch.manual_seed(0)
    # Plain text ids below the tiny model's special tokens (100..102), so no audio path is involved.
    input_ids = torch.randint(1, 90, (2, 12))

    plain = cls.from_pretrained(base, torch_dtype=torch.float32).eval()
    reference = text_logits(plain, input_ids)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        peft_model = PeftModel.from_pretrained(cls.from_pretrained(base, torch_dtype=torch.float32), adapter).eval()
    missing = [str(w.message) for w in caught if "missing adapter keys" in str(w.message).lower()]
    if missing:
        return False, "PEFT could not place every adapter key: " + missing[0][:300]

    with safe_open(os.path.join(adapter, "adapter_model.safetensors"), "pt") as f:
        in_file = sum(1 for k in f.keys() if ".lora_B." in k)
    placed = [p for n, p in peft_model.named_parameters() if "lora_B" in n]
    if len(placed) != in_file:
        return False, f"PEFT built {len(placed)} lora_B matrices, the adapter file has {in_file}"
    if not all(p.abs().sum().item() > 0 for p in placed):
        return False, "some lora_B stayed zero after loading (keys did not match the module names)"

    adapted = text_logits(peft_model, input_ids)
    merged_model = cls.from_pretrained(merged, torch_dtype=torch.float32).eval()
    folded = text_logits(merged_model, input_ids)
    if torch.allclose(adapted, reference, atol=atol):
        return False, "the adapter does not change the logits (control failed)"
    diff = (adapted - folded).abs().max().item()
    if diff > atol:
        return False, f"PEFT base+adapter and our merged checkpoint differ by {diff:.3g} (atol {atol})"
    return True, f"{in_file} LoRA targets placed; PEFT vs merged max |diff| {diff:.3g}"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--fixture", help="folder written by `higgs adapter interop-fixture --out DIR`")
    p.add_argument("--layout", choices=["boson", "transformers", "both"], default="both")
    p.add_argument("--base", help="base checkpoint folder (with --layout boson|transformers, instead of --fixture)")
    p.add_argument("--adapter", help="PEFT adapter folder (adapter_config.json + adapter_model.safetensors)")
    p.add_argument("--merged", help="checkpoint written by `higgs adapter merge`")
    p.add_argument("--higgs-audio-src", help="boson-ai/higgs-audio checkout (for the boson layout)")
    p.add_argument("--atol", type=float, default=1e-4, help="largest allowed logit difference (fp32)")
    args = p.parse_args()

    layouts = ["boson", "transformers"] if args.layout == "both" else [args.layout]
    if args.fixture:
        cases = [(l, *(os.path.join(args.fixture, l, part) for part in ("base", "adapter", "merged"))) for l in layouts]
    elif args.base and args.adapter and args.merged and args.layout != "both":
        cases = [(args.layout, args.base, args.adapter, args.merged)]
    else:
        p.error("give --fixture DIR, or --layout boson|transformers with --base, --adapter and --merged")

    failed = False
    for layout, base, adapter, merged in cases:
        try:
            ok, message = check(layout, base, adapter, merged, load_class(layout, args.higgs_audio_src), args.atol)
        except Exception as e:  # an import or load error is this layout's result, the other layout still runs
            ok, message = False, f"{type(e).__name__}: {e}"
        failed |= not ok
        print(f"{'PASS' if ok else 'FAIL'} {layout}: {message}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
