"""Preview rendering benchmark: a 4x4 grid batched vs one image at a time, and vs plain diffusers.

    .venv/bin/python bench/render_bench.py                 # CPU, tiny SD1 pipeline
    .venv/bin/python bench/render_bench.py --device cuda   # GPU, SD1.5 topology, random weights

CPU: the tiny real-topology SD1 pipeline (``merges.engine.tiny``) is saved as a
single-file checkpoint with a weightless config folder and loaded the way
workers load it (``hub.previews.renderer.pipeline.load_pipeline``). The 4x4 grid
(4 prompts x 4 seeds) is rendered by ``render_grid`` with all 16 images in
one batch and with batches of one; the ratio batched/sequential is the
target (<= 0.6). Both use the renderer's batch-invariant mode, and the bench
checks that both grids are bit-identical. A plain diffusers loop (no
invariance mode) is timed too, to show what that mode costs.

GPU: an SD1.5-topology pipeline (UNet 320/640/1280/1280, CLIP-L-sized text
encoder, SD VAE) with random weights in fp16 renders the 4x4 grid at 512x512,
20 steps, through ``render_grid``; a plain diffusers loop renders the same 16
images at batch sizes 1, 2, 4, 8 and 16. Reported: images/s, peak GPU memory,
and the renderer's images/s as a share of the best plain batch size (target
>= 70%). The tokenizer is the tiny BPE one (no downloads); token ids are a
small part of the 49,408-entry embedding, which does not change the cost.

Times are the best of ``--repeats`` runs after a warm-up.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

PROMPTS = [
    "a photo of a cat sitting on a red chair, highly detailed",
    "portrait of a woman with long hair, digital painting",
    "landscape with mountains and a lake at sunset, cinematic lighting",
    "an astronaut riding a horse on the moon, oil painting",
]
SEEDS = [1, 2, 3, 4]
NEGATIVE = "low quality, blurry, watermark"


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return min(times)


def plain_loop(pipe, batch: int, size: int, steps: int) -> list:
    """What a diffusers user writes: the 16 images in chunks of ``batch``, one generator per image."""
    cells = [(p, s) for p in PROMPTS for s in SEEDS]
    images = []
    for i in range(0, len(cells), batch):
        chunk = cells[i : i + batch]
        out = pipe(
            prompt=[p for p, _ in chunk],
            negative_prompt=[NEGATIVE] * len(chunk),
            num_inference_steps=steps,
            guidance_scale=7.0,
            width=size,
            height=size,
            generator=[torch.Generator("cpu").manual_seed(s) for _, s in chunk],
            output_type="pil",
        )
        images.extend(out.images)
    return images


def cpu_bench(args) -> None:
    from merges.engine.tiny import save_single_file, tiny_sd1_components, write_pipeline_config_dir
    from hub.previews.renderer.pipeline import load_pipeline, sampler_set
    from hub.previews.renderer.render import ModelInfo, render_grid
    from hub.previews.renderer.spec import parse_spec

    torch.set_num_threads(args.threads or torch.get_num_threads())
    with tempfile.TemporaryDirectory(prefix="render-bench-") as tmp:
        components = tiny_sd1_components(0)
        config = write_pipeline_config_dir(components, Path(tmp) / "sd15", "sd1")
        ckpt = save_single_file(components, Path(tmp) / "tiny.safetensors", "sd1")
        pipe = load_pipeline("sd1", ckpt, config)
    spec = parse_spec(
        {"prompts": PROMPTS, "seeds": SEEDS, "negative": NEGATIVE, "steps": args.steps, "cfg": 7.0,
         "size": [args.size, args.size]}
    )
    model = ModelInfo(hash="bench")
    print(f"CPU ({torch.get_num_threads()} threads), tiny SD1 pipeline, 4x4 grid, {args.size}x{args.size}, "
          f"{args.steps} steps, Euler a")
    render_grid(pipe, spec, model, batch_size=16)  # warm-up
    results = {}

    def run(batch: int):
        results[batch] = render_grid(pipe, spec, model, batch_size=batch)

    batched = best_of(lambda: run(16), args.repeats)
    sequential = best_of(lambda: run(1), args.repeats)
    same = np.array_equal(np.asarray(results[16].grid), np.asarray(results[1].grid))
    print(f"  renderer, batch of 16      {batched:7.3f} s  ({16 / batched:6.2f} images/s)")
    print(f"  renderer, one at a time    {sequential:7.3f} s  ({16 / sequential:6.2f} images/s)")
    print(f"  ratio batched/sequential   {batched / sequential:7.3f}   (target <= 0.6)  "
          f"{'OK' if batched / sequential <= 0.6 else 'MISSED'}")
    print(f"  batched grid == sequential grid, bit for bit: {same}")

    sampler_set(pipe, "Euler a")
    with torch.inference_mode():
        plain_loop(pipe, 16, args.size, args.steps)
        plain_batched = best_of(lambda: plain_loop(pipe, 16, args.size, args.steps), args.repeats)
        plain_seq = best_of(lambda: plain_loop(pipe, 1, args.size, args.steps), args.repeats)
    print(f"  plain diffusers, batch 16  {plain_batched:7.3f} s  ({16 / plain_batched:6.2f} images/s)")
    print(f"  plain diffusers, batch 1   {plain_seq:7.3f} s  ({16 / plain_seq:6.2f} images/s)")
    print(f"  renderer batched / plain batched {batched / plain_batched:6.2f}x time "
          "(the cost of batch-invariant numerics on the CPU)")


def sd15_pipeline(device: str):
    """SD1.5 topology with random weights (fp16 on CUDA), built in memory."""
    from diffusers import AutoencoderKL, EulerAncestralDiscreteScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from merges.engine.tiny import tiny_tokenizer

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
        block_out_channels=(320, 640, 1280, 1280),
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        cross_attention_dim=768, attention_head_dim=8,
    )
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2,
        block_out_channels=(128, 256, 512, 512),
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        sample_size=512, scaling_factor=0.18215,
    )
    tokenizer = tiny_tokenizer()
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
        max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=768,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    ))
    scheduler = EulerAncestralDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000, steps_offset=1,
    )
    pipe = StableDiffusionPipeline(
        unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipe.to(device, torch.float16)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def gpu_bench(args) -> None:
    from hub.previews.renderer.render import ModelInfo, render_grid
    from hub.previews.renderer.spec import parse_spec

    device = args.device
    if not torch.cuda.is_available():
        sys.exit("--device cuda: no CUDA device is available")
    pipe = sd15_pipeline(device)
    size, steps = 512, 20
    spec = parse_spec({"prompts": PROMPTS, "seeds": SEEDS, "negative": NEGATIVE, "steps": steps, "cfg": 7.0,
                       "size": [size, size]})
    print(f"{torch.cuda.get_device_name(device)}, SD1.5 topology (random weights, fp16), 4x4 grid, "
          f"{size}x{size}, {steps} steps, Euler a")

    def measure(label: str, fn) -> float:
        fn()  # warm-up (cuDNN autotuning, allocator)
        torch.cuda.reset_peak_memory_stats(device)
        seconds = best_of(fn, args.repeats)
        peak = torch.cuda.max_memory_allocated(device) / 1024**3
        print(f"  {label:28s} {16 / seconds:7.2f} images/s  {seconds:7.2f} s/grid  peak {peak:6.2f} GiB")
        return 16 / seconds

    with torch.inference_mode():
        plain = {}
        for batch in (1, 2, 4, 8, 16):
            try:
                plain[batch] = measure(f"plain diffusers, batch {batch}", lambda b=batch: plain_loop(pipe, b, size, steps))
            except torch.cuda.OutOfMemoryError:
                torch.cuda.empty_cache()
                print(f"  plain diffusers, batch {batch}: out of memory")
    ours = measure(
        f"renderer, batch {args.batch_size}",
        lambda: render_grid(pipe, spec, ModelInfo(hash="bench"), batch_size=args.batch_size),
    )
    best_batch = max(plain, key=plain.get)
    share = ours / plain[best_batch]
    print(f"  renderer / best plain (batch {best_batch}): {share:.1%}   (target >= 70%)  "
          f"{'OK' if share >= 0.7 else 'MISSED'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu (tiny pipeline) or cuda[:n] (SD1.5 topology)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size", type=int, default=64, help="CPU image side (the GPU part is always 512)")
    parser.add_argument("--steps", type=int, default=4, help="CPU steps (the GPU part is always 20)")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (default: torch's choice)")
    parser.add_argument("--batch-size", type=int, default=16, help="GPU: the renderer's batch size")
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.device.startswith("cuda"):
        gpu_bench(args)
    else:
        cpu_bench(args)


if __name__ == "__main__":
    main()
