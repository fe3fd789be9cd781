"""Issue 18's fine-tune candidates and their verdict in one call of a lent GPU machine (docs/ablation.md, "How to
run the GPU candidates").

    make gpu-pack                            # here, once: .gpu/ (base weights, wheels; benchmarks.training.gpu_pack)
    bash benchmarks/training/gpu_run.sh      # there (carry .gpu): python -m benchmarks.training.gpu_run run
    .venv/bin/python -m benchmarks.training.gpu_run import --from DIR  # here: the winner as models/gpu-<name>

`run` trains each candidate on CUDA (bf16), evaluates base and every candidate with benchmarks.evaluation.evaluate
(out-of-source folds; a torch encoder on the GPU, exact kNN through benchmarks/training/flat_faiss.py), each
evaluation in its own process beside the next training, fine-tunes the best candidate once more with the injection
fold's families held out of training too (benchmarks/training/heldout.py's protocol), and writes under --out:
run.log, results.json (every report's numbers), verdict.md, and the winner's fp16 weights (weights.partNN +
winner.json). It stops starting work that its time estimate says cannot finish inside --budget-s. `--smoke` runs
the same steps on CPU with a few hundred rows and two steps per training.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from benchmarks.training import flat_faiss

flat_faiss.install()  # before anything imports index: the GPU machine has no faiss

from benchmarks.layout import DATA_DIR, REPO, REPORTS_DIR  # noqa: E402
from benchmarks.training import gpu_pack  # noqa: E402
from benchmarks.training.gpu_verdict import collect, verdict_markdown  # noqa: E402
from index.training_config import TrainConfig  # noqa: E402

# Full data (max_examples above every label's train rows: all ~30k rows, the look-alike families included), 128
# tokens (the 90th percentile of train texts; 32 before), two epochs, batch 64.
CANDIDATES: dict[str, TrainConfig] = {
    "triplet-hn": TrainConfig(
        loss="triplet-soft",
        epochs=2.0,
        batch_size=64,
        max_seq_length=128,
        max_examples=12_000,
        hard_negatives=True,
        bf16=True,
    ),
    "softmax": TrainConfig(
        loss="softmax", epochs=2.0, batch_size=64, max_seq_length=128, max_examples=12_000, bf16=True
    ),
}
HELDOUT_FOLD = "prompt-injection"
# Seconds on one H100 (16 cores), from CPU rates measured here and known speed-ups; printed as the budget and used
# to skip work that cannot finish. See docs/ablation.md for how each was derived.
ESTIMATE_S = {"setup": 45, "train": 75, "evaluate": 180, "ship": 20}
SMOKE_ROWS = 400
EVAL_THREADS = "4"  # BLAS threads per evaluation process: four run side by side on 16 cores


class Log:
    """Prints with the elapsed time and appends to run.log (what comes back even when the call is cut off)."""

    def __init__(self, path: Path, started: float) -> None:
        self.path, self.started = path, started
        path.parent.mkdir(parents=True, exist_ok=True)

    def __call__(self, message: str) -> None:
        line = f"[{time.monotonic() - self.started:6.0f}s] {message}"
        print(line, flush=True)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(line + "\n")


def preflight(device: str, say: Callable[[str], None]) -> dict[str, str]:
    """Versions of what the run needs; exits with what is missing and how to fix it."""
    import importlib.metadata

    problems, versions = [], {"python": sys.version.split()[0]}
    for name in ("torch", "transformers", "sentence-transformers", "datasets", "tokenizers", "onnxruntime", "numpy"):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            problems.append(f"package {name} is missing (carry .gpu: `make gpu-pack` downloads its wheel)")
    if not (gpu_pack.PACK_DIR / gpu_pack.BASE_PACK / gpu_pack.WEIGHTS_FILE).is_file():
        problems.append(f"{gpu_pack.PACK_DIR}/{gpu_pack.BASE_PACK} is missing: run `make gpu-pack` and carry .gpu")
    if not (DATA_DIR / "safety.jsonl").is_file():
        problems.append(f"{DATA_DIR / 'safety.jsonl'} is missing")
    if not problems:  # the imports training and evaluation need, before minutes are spent
        try:
            import datasets  # noqa: F401
            from sentence_transformers.base.sampler import BatchSamplers  # noqa: F401
            from sentence_transformers.sentence_transformer.training_args import (  # noqa: F401
                SentenceTransformerTrainingArguments,
            )

            import index  # noqa: F401
            from benchmarks.evaluation import evaluate  # noqa: F401
        except Exception as exc:  # any import failure ends the run here, with its cause
            problems.append(f"import failed: {type(exc).__name__}: {exc}")
    if not problems and device == "cuda":
        import torch

        if not torch.cuda.is_available():
            problems.append("torch sees no CUDA device (use --smoke for a CPU dry run)")
        else:
            versions["gpu"] = torch.cuda.get_device_name(0)
    if problems:
        for problem in problems:
            say(f"MISSING: {problem}")
        sys.exit(2)
    say("preflight ok: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    return versions


def plan(smoke: bool) -> dict[str, TrainConfig]:
    if not smoke:
        return dict(CANDIDATES)
    return {
        name: replace(config, max_steps=2, batch_size=8, max_seq_length=32, max_examples=20, dev_sample=50)
        for name, config in CANDIDATES.items()
    }


def run(args: argparse.Namespace) -> None:
    started = time.monotonic()
    deadline = started + args.budget_s
    out, work = Path(args.out), Path(args.work)
    say = Log(out / "run.log", started)
    device = "cpu" if args.smoke else "cuda"
    versions = preflight(device, say)
    candidates = plan(args.smoke)
    n_train = len(candidates) + 1  # + the held-out fine-tune
    est = ESTIMATE_S
    say(
        f"budget {args.budget_s}s; estimated on one H100: setup {est['setup']}s, {n_train} trainings x {est['train']}s"
        f" (sequential), {n_train + 1} evaluations x {est['evaluate']}s (in parallel beside training; the last ends"
        f" ~{est['evaluate']}s after the last training), ship {est['ship']}s: total ~"
        f"{est['setup'] + n_train * est['train'] + est['evaluate'] + est['ship']}s"
    )
    from index import load_rows

    work.mkdir(parents=True, exist_ok=True)
    base_st = work / "base"
    kept = gpu_pack.unpack_base(gpu_pack.PACK_DIR / gpu_pack.BASE_PACK, base_st)
    kept_file = work / "kept.json"
    kept_file.write_text(json.dumps(kept.tolist()))
    rows = load_rows(DATA_DIR / "safety.jsonl")
    data_file = DATA_DIR / "safety.jsonl"
    if args.smoke:
        rows = rows[:: max(1, len(rows) // SMOKE_ROWS)]
        data_file = work / "smoke.jsonl"
        data_file.write_text("".join(json.dumps(row_dict(r)) + "\n" for r in rows))
    say(f"base unpacked ({len(kept)} vocabulary rows); {len(rows)} rows")

    evals: dict[str, subprocess.Popen[bytes]] = {}

    def start_eval(name: str, st_dir: Path) -> None:
        if time.monotonic() + est["evaluate"] > deadline - est["ship"]:
            say(f"SKIPPED evaluation of {name}: not enough time left for it")
            return
        command = [sys.executable, "-m", "benchmarks.training.gpu_run", "evaluate", "--st-dir", str(st_dir),
                   "--name", name, "--device", device, "--kept", str(kept_file), "--data", str(data_file)]  # fmt: skip
        env = {
            **os.environ,
            **{v: EVAL_THREADS for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")},
        }
        log = (work / f"eval-{name}.log").open("wb")
        evals[name] = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        say(f"evaluating {name} in the background (pid {evals[name].pid}, log {log.name})")

    start_eval("base", base_st)
    records: dict[str, dict[str, Any]] = {}

    def train_one(name: str, config: TrainConfig, train_rows: Sequence[Any]) -> None:
        if time.monotonic() + est["train"] + est["evaluate"] > deadline - est["ship"]:
            say(f"SKIPPED training {name}: not enough time left to train and evaluate it")
            return
        from index.training import fine_tune

        say(f"training {name}: {json.dumps(config.to_dict(), sort_keys=True)}")
        t0 = time.monotonic()
        records[name] = fine_tune(config, train_rows, work / name, base_dir=base_st, device=device, say=say)
        say(f"trained {name} in {time.monotonic() - t0:.0f}s: dev {records[name]['dev']}")
        start_eval(name, work / name)

    for name, config in candidates.items():
        train_one(name, config, rows)
    # The held-out protocol for the injection fold: the recipe that leads on the quick dev check (the out-of-source
    # numbers are not in yet) trains again without the fold's families, and is judged on that fold only.
    from benchmarks.evaluation.evaluate import FOLDS

    trained = [n for n in candidates if n in records]
    if trained:
        lead = max(trained, key=lambda n: float(records[n]["dev"].get("auprc_centroid", 0.0)))
        held_rows = [r for r in rows if r.family not in FOLDS[HELDOUT_FOLD]]
        train_one(f"heldout-{HELDOUT_FOLD}-{lead}", candidates[lead], held_rows)
    wait_for(evals, deadline - est["ship"], work, say)
    results = collect({name: REPORTS_DIR / f"evaluate-gpu-{name}-torch.json" for name in evals}, HELDOUT_FOLD)
    results["records"], results["versions"] = records, versions
    results["budget_s"], results["smoke"] = args.budget_s, args.smoke
    (out / "results.json").write_text(json.dumps(results, indent=2, default=float))
    (out / "verdict.md").write_text(verdict_markdown(results, HELDOUT_FOLD))
    say("verdict:\n" + (out / "verdict.md").read_text())
    ship(results, records, candidates, work, kept, out, say)
    say(f"done in {time.monotonic() - started:.0f}s")


def wait_for(evals: dict[str, subprocess.Popen[bytes]], until: float, logs: Path, say: Callable[[str], None]) -> None:
    for name, process in evals.items():
        try:
            code = process.wait(timeout=max(1.0, until - time.monotonic()))
            say(f"evaluation of {name} finished (exit {code})")
        except subprocess.TimeoutExpired:
            process.kill()
            code = None
            say(f"evaluation of {name} STOPPED at the time limit")
        if code != 0:  # its log stays on the machine: bring back the end of it
            tail = (logs / f"eval-{name}.log").read_text(errors="replace").splitlines()[-25:]
            say(f"last lines of eval-{name}.log:\n" + "\n".join(tail))


def ship(
    results: dict[str, Any],
    records: dict[str, dict[str, Any]],
    candidates: dict[str, TrainConfig],
    work: Path,
    kept: Any,
    out: Path,
    say: Callable[[str], None],
) -> None:
    """The winner's fp16 weights (chosen on out-of-source dev AUPRC) and its record, in parts that can come back."""
    from safetensors.numpy import load_file

    winner = results.get("winner")
    if winner is None or winner not in records:
        say("nothing shipped: no candidate was evaluated")
        return
    tensors = load_file(str(work / winner / "model.safetensors"))
    blob = gpu_pack.pack_weights(tensors, [int(i) for i in kept])
    parts = gpu_pack.write_parts(blob, out, "weights")
    meta = {"name": winner, "config": candidates[winner].to_dict(), "record": records[winner]}
    (out / "winner.json").write_text(json.dumps(meta, indent=2, default=float))
    say(f"shipped {winner}: {len(parts)} parts, {len(blob) / 2**20:.1f} MiB")


def row_dict(row: Any) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(row)


def evaluate_one(args: argparse.Namespace) -> None:
    """One model's evaluation (a child process of `run`): benchmarks.evaluation.evaluate with a torch encoder."""
    if args.device == "cuda":
        import torch  # noqa: F401  # the FAISS stand-in searches on the GPU once torch is imported

    from benchmarks.evaluation import evaluate as evaluation
    from benchmarks.training.torch_encoder import TorchEncoder

    kept = json.loads(Path(args.kept).read_text()) if args.kept else []
    encoder = TorchEncoder(Path(args.st_dir), args.name, args.device, known_ids=kept)
    namespace = argparse.Namespace(
        model_dir=args.st_dir,
        name=f"gpu-{args.name}",
        variant="torch",
        data=args.data,
        prevalence=0.2,
        min_instruction_recall=evaluation.MIN_INSTRUCTION_RECALL,
        min_oos_instruction_recall=evaluation.MIN_OOS_INSTRUCTION_RECALL,
        limit=0,
        write_config=False,
    )
    evaluation.evaluate(namespace, encoder)


def import_model(args: argparse.Namespace) -> None:
    """The shipped winner as an ONNX model directory here: the real base's fp32 rows for tokens not shipped."""
    from safetensors.numpy import load_file, save_file

    from index import base_model_dir, export_onnx
    from index.training_config import EXPORT_MAX_TOKENS, TRAIN_CONFIG_FILE

    folder = Path(args.source)
    meta = json.loads((folder / "winner.json").read_text())
    tuned, kept = gpu_pack.unpack_weights(gpu_pack.read_parts(folder, "weights"))
    base = base_model_dir()
    tensors = load_file(str(base / "model.safetensors"))
    foreign = sorted(set(tuned) - set(tensors))
    if foreign:
        sys.exit(f"the shipped weights hold tensors the base model lacks: {foreign[:5]}")
    kept_from_base = sorted(set(tensors) - set(tuned))
    if kept_from_base:  # e.g. a buffer one transformers version saves and another does not
        print(f"not in the shipped weights, kept from the base model: {kept_from_base}")
    for name, value in tuned.items():
        if name == gpu_pack.EMBEDDINGS:
            tensors[name] = tensors[name].copy()
            tensors[name][kept] = value
        else:
            tensors[name] = value
    name = args.name or f"gpu-{meta['name']}"
    st_dir = Path(args.work) / name
    gpu_pack.copy_st_files(base, st_dir)
    save_file(tensors, str(st_dir / "model.safetensors"))
    (st_dir / TRAIN_CONFIG_FILE).write_text(TrainConfig.from_dict(meta["config"]).to_json() + "\n")
    out = Path(args.out) if args.out else REPO / "models" / name
    export_onnx(st_dir, out, name, EXPORT_MAX_TOKENS, {"training": meta["record"]}, copy_source=True, progress=print)
    print(
        f"wrote {out}; judge it here: "
        f".venv/bin/python -m benchmarks.evaluation.evaluate --model-dir {out} --name {name}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="train, evaluate and judge the candidates (on the GPU machine)")
    p_run.add_argument("--out", default=os.environ.get("OUT", str(REPO / "var" / "gpu-run" / "out")))
    p_run.add_argument("--work", default=str(REPO / "var" / "gpu-run" / "work"))
    p_run.add_argument("--budget-s", type=float, default=540.0)
    p_run.add_argument("--smoke", action="store_true", help="CPU dry run: a few hundred rows, two steps a training")
    p_eval = sub.add_parser("evaluate", help="(internal) one model's evaluation")
    p_eval.add_argument("--st-dir", required=True)
    p_eval.add_argument("--name", required=True)
    p_eval.add_argument("--device", default="cuda")
    p_eval.add_argument("--kept", default="")
    p_eval.add_argument("--data", default=None)
    p_import = sub.add_parser("import", help="export the shipped winner to models/ (here)")
    p_import.add_argument("--from", dest="source", required=True, help="the folder the device call's files are in")
    p_import.add_argument("--name", default="")
    p_import.add_argument("--out", default="")
    p_import.add_argument("--work", default=str(REPO / "var" / "gpu-run" / "import"))
    args = parser.parse_args()
    {"run": run, "evaluate": evaluate_one, "import": import_model}[args.command](args)


if __name__ == "__main__":
    main()
