"""The streaming executor: results, provenance, progress, cancellation, determinism, LoRAs."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from merges.engine import ENGINE_VERSION, methods, run_recipe
from merges.engine.blocks import block_index
from merges.engine.executor import MergeCancelled, MergeError, execute
from merges.engine.recipe import RecipeError, merge_key

from .merge_fixtures import BIG_KEY, SLICE, checkpoint, leftovers, recipe, write

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def models(tmp_path: Path) -> dict[str, dict[str, torch.Tensor]]:
    sds = {
        "a": checkpoint(1),
        "b": checkpoint(2, drop=("first_stage_model.decoder.conv_in.weight",)),
        "c": checkpoint(3),
        "d": checkpoint(4),
    }
    write(tmp_path / "a.safetensors", sds["a"], {"sd_merge_models": json.dumps({"e" * 64: {"name": "older"}})})
    for name in "bcd":
        write(tmp_path / f"{name}.safetensors", sds[name])
    return sds


def paths(tmp_path: Path, names: str = "abcd") -> dict[str, Path]:
    return {n: tmp_path / f"{n}.safetensors" for n in names}


def f32(t: torch.Tensor) -> torch.Tensor:
    return t.to(torch.float32)


def test_weighted_sum_is_exact_and_keeps_what_it_cannot_merge(tmp_path, models) -> None:
    r = recipe([{"id": "m", "op": "weighted_sum", "inputs": ["a", "b"], "alpha": 0.3}], ["a", "b"])
    out = tmp_path / "out.safetensors"
    res = execute(r, paths(tmp_path, "ab"), out, chunk_elems=SLICE)
    got = load_file(str(out))
    a, b = models["a"], models["b"]
    assert set(got) == set(a)
    for k in a:
        if k in b and a[k].is_floating_point():
            assert torch.equal(got[k], (f32(a[k]) * 0.7 + f32(b[k]) * 0.3).half()), k
        else:
            assert torch.equal(got[k], a[k]), k
    assert res.passthrough_keys == [
        "cond_stage_model.transformer.text_model.embeddings.position_ids",
        "first_stage_model.decoder.conv_in.weight",
    ]
    assert res.tensors == len(a) and res.bytes == out.stat().st_size
    assert res.sha256 == hashlib.sha256(out.read_bytes()).hexdigest()
    assert res.merge_key == merge_key(r, res.input_sha256s, ENGINE_VERSION)
    assert leftovers(tmp_path, {"a.safetensors", "b.safetensors", "c.safetensors", "d.safetensors", "out.safetensors"}) == []


def test_provenance_metadata(tmp_path, models) -> None:
    r = recipe([{"id": "m", "op": "weighted_sum", "inputs": ["a", "b"], "alpha": 0.3}], ["a", "b"])
    res = execute(r, paths(tmp_path, "ab"), tmp_path / "out.safetensors")
    from merges.engine.safetensors_io import read_header_path

    meta = read_header_path(tmp_path / "out.safetensors").metadata
    shas = res.input_sha256s
    assert shas["a"] == hashlib.sha256((tmp_path / "a.safetensors").read_bytes()).hexdigest()
    assert json.loads(meta["mergeworks_inputs"]) == shas
    assert meta["mergeworks_engine_version"] == ENGINE_VERSION
    embedded = json.loads(meta["mergeworks_recipe"])
    # Inputs by hash: no local paths in a file that may be published.
    assert embedded["inputs"] == {"a": {"sha256": shas["a"]}, "b": {"sha256": shas["b"]}}
    assert meta["mergeworks_merge_key"] == res.merge_key
    sd_recipe = json.loads(meta["sd_merge_recipe"])
    assert sd_recipe["primary_model_hash"] == shas["a"]
    assert sd_recipe["secondary_model_hash"] == shas["b"]
    assert sd_recipe["interp_method"] == "Weighted sum" and sd_recipe["multiplier"] == 0.3
    models_meta = json.loads(meta["sd_merge_models"])
    assert models_meta[shas["a"]]["name"] == "a"
    assert "e" * 64 in models_meta  # lineage carried over from input a


def test_input_hashes_given_by_the_caller_are_used(tmp_path, models) -> None:
    r = recipe([{"id": "m", "op": "weighted_sum", "inputs": ["a", "b"]}], ["a", "b"])
    res = execute(r, paths(tmp_path, "ab"), tmp_path / "o.safetensors", input_sha256s={"a": "1" * 64, "b": "2" * 64})
    assert res.input_sha256s == {"a": "1" * 64, "b": "2" * 64}


def test_block_weights_follow_the_block_of_each_key(tmp_path, models) -> None:
    blocks = [round(i / 25, 4) for i in range(26)]
    r = recipe(
        [{"id": "m", "op": "weighted_sum", "inputs": ["a", "c"], "alpha": {"blocks": blocks}}], ["a", "c"], dtype="fp32"
    )
    execute(r, paths(tmp_path, "ac"), tmp_path / "out.safetensors", chunk_elems=SLICE)
    got = load_file(str(tmp_path / "out.safetensors"))
    a, c = models["a"], models["c"]
    seen = set()
    for k in a:
        if not a[k].is_floating_point():
            continue
        alpha = blocks[block_index(k, "sd1")]
        seen.add(block_index(k, "sd1"))
        assert torch.equal(got[k], f32(a[k]) * (1 - alpha) + f32(c[k]) * alpha), k
    assert len(seen) == 26  # every block exercised


OPS = [
    ("weighted_sum", ["a", "b"], {"alpha": 0.25}, lambda t, p: methods.weighted_sum(t[0], t[1], 0.25)),
    ("add_difference", ["a", "b", "c"], {"alpha": 0.6}, lambda t, p: methods.add_difference(*t, 0.6)),
    ("triple_sum", ["a", "b", "c"], {"alpha": 0.2, "beta": 0.3}, lambda t, p: methods.triple_sum(*t, 0.2, 0.3)),
    ("sum_twice", ["a", "b", "c"], {"alpha": 0.2, "beta": 0.3}, lambda t, p: methods.sum_twice(*t, 0.2, 0.3)),
    ("slerp", ["a", "b"], {"alpha": 0.4}, lambda t, p: methods.slerp(t[0], t[1], 0.4)),
    (
        "task_arithmetic",
        ["a", "b", "c"],
        {"alpha": 0.8, "weights": [1.0, 0.5]},
        lambda t, p: methods.task_arithmetic(t[0], t[1:], [1.0, 0.5], 0.8),
    ),
    (
        "ties",
        ["a", "b", "c", "d"],
        {"alpha": 1.0, "density": 0.3},
        lambda t, p: methods.ties(t[0], t[1:], [1.0, 1.0, 1.0], 1.0, 0.3),
    ),
    (
        "dare",
        ["a", "b", "c"],
        {"alpha": 1.0, "drop_rate": 0.5},
        lambda t, p: methods.dare(t[0], t[1:], [1.0, 1.0], 1.0, 0.5, methods.dare_key_seed(7, "m", p)),
    ),
    ("model_stock", ["a", "b", "c", "d"], {}, lambda t, p: methods.model_stock(t[0], t[1:])),
]


@pytest.mark.parametrize(("op", "inputs", "params", "ref"), OPS, ids=[o[0] for o in OPS])
def test_each_op_through_the_executor_equals_the_method(tmp_path, models, op, inputs, params, ref) -> None:
    r = recipe([{"id": "m", "op": op, "inputs": inputs, **params}], inputs, dtype="fp32", seed=7)
    execute(r, paths(tmp_path), tmp_path / "out.safetensors", chunk_elems=SLICE)
    got = load_file(str(tmp_path / "out.safetensors"))
    for k, v in models["a"].items():
        if not v.is_floating_point() or any(k not in models[n] for n in inputs):
            continue
        expected = ref([models[n][k] for n in inputs], k)
        assert torch.equal(got[k], expected), (op, k)


def test_chained_steps_keep_float32_between_steps(tmp_path, models) -> None:
    r = recipe(
        [
            {"id": "mix", "op": "weighted_sum", "inputs": ["a", "c"], "alpha": 0.4},
            {"id": "tune", "op": "add_difference", "inputs": ["mix", "c", "d"], "alpha": 0.5},
            {"id": "out", "op": "slerp", "inputs": ["tune", "mix"], "alpha": 0.3},
        ],
        ["a", "c", "d"],
        dtype="bf16",
    )
    execute(r, paths(tmp_path, "acd"), tmp_path / "out.safetensors", chunk_elems=SLICE)
    got = load_file(str(tmp_path / "out.safetensors"))
    a, c, d = models["a"], models["c"], models["d"]
    for k in (BIG_KEY, "first_stage_model.decoder.conv_in.weight"):
        mix = methods.weighted_sum(a[k], c[k], 0.4)
        tune = methods.add_difference(mix, c[k], d[k], 0.5)
        assert torch.equal(got[k], methods.slerp(tune, mix, 0.3).to(torch.bfloat16)), k


def test_pieces_with_shared_steps_and_inputs_equal_the_methods(tmp_path, models, monkeypatch) -> None:
    """Slices are evaluated in small pieces through reused scratch buffers; a step
    or input read twice must not see what another step overwrote in place."""
    from merges.engine import executor

    monkeypatch.setattr(executor, "PIECE_ELEMS", 96)  # several pieces per slice, a ragged last one
    r = recipe(
        [
            {"id": "mix", "op": "weighted_sum", "inputs": ["a", "c"], "alpha": 0.4},
            {"id": "tune", "op": "add_difference", "inputs": ["mix", "c", "d"], "alpha": 0.5},
            {"id": "out", "op": "triple_sum", "inputs": ["tune", "mix", "a"], "alpha": 0.25, "beta": 0.125},
        ],
        ["a", "c", "d"],
        dtype="fp16",
    )
    execute(r, paths(tmp_path, "acd"), tmp_path / "out.safetensors", chunk_elems=SLICE)
    got = load_file(str(tmp_path / "out.safetensors"))
    a, c, d = models["a"], models["c"], models["d"]
    checked = 0
    for k in a:
        if not a[k].is_floating_point():
            continue
        mix = methods.weighted_sum(a[k], c[k], 0.4)
        tune = methods.add_difference(mix, c[k], d[k], 0.5)
        assert torch.equal(got[k], methods.triple_sum(tune, mix, a[k], 0.25, 0.125).to(torch.float16)), k
        checked += 1
    assert checked > 10


def test_a_step_read_many_times_is_computed_once_per_piece(tmp_path, models, monkeypatch) -> None:
    """Each step reads the two before it: evaluated as a tree that is fib(26) ≈ 121k
    evaluations per piece, so without sharing this run would not finish."""
    from merges.engine import executor

    monkeypatch.setattr(executor, "PIECE_ELEMS", 1024)
    steps = [
        {"id": "s0", "op": "weighted_sum", "inputs": ["a", "c"], "alpha": 0.3},
        {"id": "s1", "op": "weighted_sum", "inputs": ["c", "d"], "alpha": 0.6},
    ]
    for k in range(2, 26):
        steps.append({"id": f"s{k}", "op": "add_difference", "inputs": [f"s{k - 1}", f"s{k - 2}", "a"], "alpha": 0.25})
    execute(recipe(steps, ["a", "c", "d"], dtype="fp32"), paths(tmp_path, "acd"), tmp_path / "out.safetensors", chunk_elems=SLICE)
    got = load_file(str(tmp_path / "out.safetensors"))
    a, c, d = models["a"], models["c"], models["d"]
    for k in (BIG_KEY, "first_stage_model.decoder.conv_in.weight"):
        chain = [methods.weighted_sum(a[k], c[k], 0.3), methods.weighted_sum(c[k], d[k], 0.6)]
        for _ in range(2, 26):
            chain.append(methods.add_difference(chain[-1], chain[-2], a[k], 0.25))
        assert torch.equal(got[k], chain[-1]), k


def test_progress_reports_every_tensor_and_all_bytes(tmp_path, models) -> None:
    calls: list[tuple[int, int, int, int]] = []
    r = recipe([{"id": "m", "op": "weighted_sum", "inputs": ["a", "b"]}], ["a", "b"])
    res = run_recipe(r, paths(tmp_path, "ab"), tmp_path / "out.safetensors", progress=lambda *a: calls.append(a))
    n = res.tensors
    assert calls[0][:2] == (0, n)
    assert calls[-1][0] == n and calls[-1][2] == calls[-1][3]
    assert [c[0] for c in calls] == sorted(c[0] for c in calls)
    assert [c[2] for c in calls] == sorted(c[2] for c in calls)


def test_cancellation_leaves_nothing_behind(tmp_path, models) -> None:
    polls = []

    def should_cancel() -> bool:
        polls.append(1)
        return len(polls) > 5

    r = recipe([{"id": "m", "op": "weighted_sum", "inputs": ["a", "b"]}], ["a", "b"])
    with pytest.raises(MergeCancelled):
        run_recipe(r, paths(tmp_path, "ab"), tmp_path / "out.safetensors", should_cancel=should_cancel)
    assert leftovers(tmp_path, {f"{n}.safetensors" for n in "abcd"}) == []


def test_failed_run_keeps_an_existing_output(tmp_path, models) -> None:
    out = tmp_path / "out.safetensors"
    out.write_bytes(b"previous result")
    r = recipe([{"id": "m", "op": "weighted_sum", "inputs": ["a", "b"]}], ["a", "b"])
    with pytest.raises(MergeCancelled):
        run_recipe(r, paths(tmp_path, "ab"), out, should_cancel=lambda: True)
    assert out.read_bytes() == b"previous result"
    assert leftovers(tmp_path, {f"{n}.safetensors" for n in "abcd"} | {"out.safetensors"}) == []


def test_shape_mismatch_is_refused(tmp_path, models) -> None:
    write(tmp_path / "odd.safetensors", checkpoint(5, reshape={BIG_KEY: (70, 300)}))
    r = recipe([{"id": "m", "op": "weighted_sum", "inputs": ["a", "odd"]}], ["a", "odd"])
    with pytest.raises(MergeError) as info:
        execute(r, {"a": tmp_path / "a.safetensors", "odd": tmp_path / "odd.safetensors"}, tmp_path / "out.safetensors")
    assert info.value.code == "shape_mismatch" and BIG_KEY in str(info.value)
    assert not (tmp_path / "out.safetensors").exists()


def test_missing_input_file_names_the_input(tmp_path, models) -> None:
    r = recipe([{"id": "m", "op": "weighted_sum", "inputs": ["a", "zz"]}], ["a", "zz"])
    with pytest.raises(RecipeError) as info:
        execute(r, {"a": tmp_path / "a.safetensors", "zz": tmp_path / "nope.safetensors"}, tmp_path / "o.safetensors")
    assert info.value.errors[0][0] == "inputs.zz"


DETERMINISM_RECIPE = recipe(
    [
        {"id": "s", "op": "slerp", "inputs": ["a", "b"], "alpha": 0.3},
        {"id": "t", "op": "ties", "inputs": ["a", "s", "c"], "density": 0.4},
        {"id": "r", "op": "dare", "inputs": ["a", "t", "d"], "drop_rate": 0.6},
        {"id": "k", "op": "model_stock", "inputs": ["a", "r", "c", "d"]},
        {"id": "w", "op": "weighted_sum", "inputs": ["k", "b"], "alpha": {"blocks": [0.1] * 13 + [0.7] * 13}},
    ],
    ["a", "b", "c", "d"],
    seed=11,
)


def test_two_runs_and_any_thread_count_give_identical_bytes(tmp_path, models) -> None:
    digests = set()
    for i, threads in enumerate((1, 2, 3, 1)):
        out = tmp_path / f"out{i}.safetensors"
        execute(DETERMINISM_RECIPE, paths(tmp_path), out, threads=threads, chunk_elems=SLICE)
        digests.add(hashlib.sha256(out.read_bytes()).hexdigest())
    assert len(digests) == 1


def test_torch_thread_count_does_not_change_the_output(tmp_path, models) -> None:
    """Separate processes with torch.set_num_threads 1 and 2 write the same bytes."""
    script = (
        "import sys, json, torch; torch.set_num_threads(int(sys.argv[1]));"
        "from merges.engine.executor import execute;"
        "execute(json.loads(sys.argv[2]), json.loads(sys.argv[3]), sys.argv[4], chunk_elems=int(sys.argv[5]))"
    )
    inputs = json.dumps({k: str(v) for k, v in paths(tmp_path).items()})
    digests = []
    for n in (1, 2):
        out = tmp_path / f"t{n}.safetensors"
        subprocess.run(
            [sys.executable, "-c", script, str(n), json.dumps(DETERMINISM_RECIPE), inputs, str(out), str(SLICE)],
            check=True,
            cwd=ROOT,
            timeout=300,
        )
        digests.append(hashlib.sha256(out.read_bytes()).hexdigest())
    assert digests[0] == digests[1]


def test_non_float_input_and_output_dtypes(tmp_path, models) -> None:
    write(tmp_path / "a32.safetensors", checkpoint(1, dtype=torch.float32))
    r = recipe([{"id": "m", "op": "weighted_sum", "inputs": ["a32", "b"], "alpha": 0.5}], ["a32", "b"], dtype="fp32")
    execute(r, {"a32": tmp_path / "a32.safetensors", "b": tmp_path / "b.safetensors"}, tmp_path / "o.safetensors")
    got = load_file(str(tmp_path / "o.safetensors"))
    assert got[BIG_KEY].dtype == torch.float32
    # The key b lacks is copied from a32 as is (same dtype: byte copy).
    assert torch.equal(got["first_stage_model.decoder.conv_in.weight"], load_file(str(tmp_path / "a32.safetensors"))["first_stage_model.decoder.conv_in.weight"])
    r16 = recipe([{"id": "m", "op": "weighted_sum", "inputs": ["a32", "b"]}], ["a32", "b"], dtype="fp16")
    execute(r16, {"a32": tmp_path / "a32.safetensors", "b": tmp_path / "b.safetensors"}, tmp_path / "o16.safetensors")
    got16 = load_file(str(tmp_path / "o16.safetensors"))
    assert got16["first_stage_model.decoder.conv_in.weight"].dtype == torch.float16  # cast on the way


# -- LoRAs -----------------------------------------------------------------------------------------


def _tiny(arch: str):
    from merges.engine.ldm_convert import pipeline_to_ldm
    from merges.engine.tiny import tiny_sd1_components, tiny_sdxl_components

    components = (tiny_sd1_components if arch == "sd1" else tiny_sdxl_components)(seed=0)
    return components, {k: v.clone().contiguous() for k, v in pipeline_to_ldm(components, arch).items()}


def _diffusers_fused(components, arch: str, lora: dict[str, torch.Tensor], strength: float) -> dict[str, torch.Tensor]:
    from merges.engine.ldm_convert import pipeline_to_ldm
    from merges.engine.tiny import build_pipeline

    pipe = build_pipeline(components, arch)
    pipe.load_lora_weights({k: v.clone() for k, v in lora.items()})
    pipe.fuse_lora(lora_scale=strength)
    pipe.unload_lora_weights()
    return pipeline_to_ldm(components, arch)


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["sd1", "sdxl"])
def test_apply_lora_bakes_what_diffusers_fuses(tmp_path, arch) -> None:
    pytest.importorskip("peft")
    from .lora_helpers import kohya_lora

    components, base = _tiny(arch)
    lora = kohya_lora(components, arch, seed=7)
    write(tmp_path / "base.safetensors", base)
    write(tmp_path / "style.safetensors", lora)
    r = recipe(
        [{"id": "out", "op": "apply_lora", "inputs": ["base", "style"], "strength": 0.7}],
        ["base", "style"],
        architecture=arch,
        dtype="fp32",
    )
    execute(r, paths_of(tmp_path, "base", "style"), tmp_path / "out.safetensors", chunk_elems=SLICE)
    ours = load_file(str(tmp_path / "out.safetensors"))
    theirs = _diffusers_fused(components, arch, lora, 0.7)
    assert set(ours) == set(theirs)
    changed = [k for k in theirs if not torch.equal(theirs[k], base[k])]
    assert len(changed) > 20
    for k in theirs:
        delta = (theirs[k] - base[k]).abs().max().item()
        err = (theirs[k] - ours[k]).abs().max().item()
        assert err <= 1e-5 + 1e-5 * delta, (k, err, delta)


def paths_of(tmp_path: Path, *names: str) -> dict[str, Path]:
    return {n: tmp_path / f"{n}.safetensors" for n in names}


def test_merge_loras_then_apply_equals_applying_both(tmp_path) -> None:
    from merges.engine.lora import lora_key_delta, map_lora_to_base, merge_lora_modules, parse_lora_modules

    from .lora_helpers import kohya_lora

    components, base = _tiny("sd1")
    l1 = kohya_lora(components, "sd1", seed=1, rank=2, conv_rank=2)
    l2 = kohya_lora(components, "sd1", seed=2, rank=3, conv_rank=1)
    write(tmp_path / "base.safetensors", base)
    write(tmp_path / "l1.safetensors", l1)
    write(tmp_path / "l2.safetensors", l2)

    # merge_loras on its own: a LoRA file, module by module what merge_lora_modules gives.
    r = recipe([{"id": "m", "op": "merge_loras", "inputs": ["l1", "l2"], "weights": [1.0, 0.5]}], ["l1", "l2"], dtype="fp32")
    res = execute(r, paths_of(tmp_path, "l1", "l2"), tmp_path / "merged.safetensors")
    merged = load_file(str(tmp_path / "merged.safetensors"))
    assert res.tensors == len(merged)
    mods1, mods2 = parse_lora_modules(l1), parse_lora_modules(l2)
    name = sorted(mods1)[0]
    want = merge_lora_modules(
        [({r_: l1[t] for r_, t in mods1[name].keys.items()}, 1.0), ({r_: l2[t] for r_, t in mods2[name].keys.items()}, 0.5)],
        "concat",
        None,
    )
    assert torch.equal(merged[f"{name}.lora_down.weight"], want["down"])
    assert torch.equal(merged[f"{name}.lora_up.weight"], want["up"])

    # merge then apply == base + delta(l1) + 0.5 delta(l2), within fp32 rounding.
    r2 = recipe(
        [
            {"id": "m", "op": "merge_loras", "inputs": ["l1", "l2"], "weights": [1.0, 0.5]},
            {"id": "out", "op": "apply_lora", "inputs": ["base", "m"], "strength": 1.0},
        ],
        ["base", "l1", "l2"],
        dtype="fp32",
    )
    execute(r2, paths_of(tmp_path, "base", "l1", "l2"), tmp_path / "out.safetensors", chunk_elems=SLICE)
    got = load_file(str(tmp_path / "out.safetensors"))
    t1 = {n: {r_: l1[t] for r_, t in m.keys.items()} for n, m in mods1.items()}
    t2 = {n: {r_: l2[t] for r_, t in m.keys.items()} for n, m in mods2.items()}
    map1, map2 = map_lora_to_base(mods1, base.keys(), "sd1"), map_lora_to_base(mods2, base.keys(), "sd1")
    for key in map1:
        want_w = base[key] + lora_key_delta(base[key].shape, map1[key], mods1, t1) + 0.5 * lora_key_delta(
            base[key].shape, map2[key], mods2, t2
        )
        assert torch.allclose(got[key], want_w, atol=1e-5, rtol=1e-5), key
    assert leftovers(tmp_path, {"base.safetensors", "l1.safetensors", "l2.safetensors", "merged.safetensors", "out.safetensors"}) == []


def test_lora_where_a_checkpoint_belongs_is_refused(tmp_path) -> None:
    from .lora_helpers import kohya_lora

    components, base = _tiny("sd1")
    write(tmp_path / "base.safetensors", base)
    write(tmp_path / "style.safetensors", kohya_lora(components, "sd1", seed=1))
    r = recipe([{"id": "m", "op": "weighted_sum", "inputs": ["base", "style"]}], ["base", "style"])
    with pytest.raises(RecipeError) as info:
        execute(r, paths_of(tmp_path, "base", "style"), tmp_path / "o.safetensors")
    assert info.value.errors == [("steps[0].inputs[1]", "'style' is a lora, weighted_sum needs a checkpoint")]


def test_cuda_request_without_cuda_is_a_clear_error(tmp_path, models) -> None:
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    r = recipe([{"id": "m", "op": "weighted_sum", "inputs": ["a", "b"]}], ["a", "b"])
    with pytest.raises(MergeError) as info:
        execute(r, paths(tmp_path, "ab"), tmp_path / "o.safetensors", device="cuda")
    assert info.value.code == "bad_device"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_itself_and_is_close_to_cpu(tmp_path, models) -> None:
    outs = []
    for i in range(2):
        out = tmp_path / f"cuda{i}.safetensors"
        execute(DETERMINISM_RECIPE, paths(tmp_path), out, device="cuda", chunk_elems=SLICE)
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]
    execute(DETERMINISM_RECIPE, paths(tmp_path), tmp_path / "cpu.safetensors", chunk_elems=SLICE)
    cpu, gpu = load_file(str(tmp_path / "cpu.safetensors")), load_file(str(tmp_path / "cuda0.safetensors"))
    for k in cpu:
        assert torch.allclose(cpu[k].float(), gpu[k].float(), atol=2e-2, rtol=1e-2), k


def test_engine_imports_no_django() -> None:
    code = "import sys, merges.engine.executor, merges.engine.cli, merges.engine.recipe; print('django' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True, env={**os.environ})
    assert out.stdout.strip() == "False"
