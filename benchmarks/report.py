"""RESULTS.md from the measurements of one `python -m benchmarks` run."""

from __future__ import annotations

from typing import Any

from benchmarks import floor, pgd
from benchmarks.timing import Ratio, seconds_cell

GIB = 1024**3
OTHERS_NOISY = 0.10  # above this share of the CPU taken by other processes, the timings are flagged
LIMIT = 8 * GIB


def _times_table(times: dict[str, list[float]]) -> list[str]:
    lines = ["| case | seconds min / median / max |", "|---|---|"]
    lines += [f"| {name} | {seconds_cell(values)} |" for name, values in times.items()]
    return lines


def _ratio_rows(ratios: list[Ratio]) -> list[str]:
    return [f"| {r.name} | {r.cell()} | {r.verdict()} |" for r in ratios]


def _paper(peak: Any) -> str:
    if peak is None:
        return "Paper scale: not run (--quick)."
    verdict = "within" if peak.rss_bytes < LIMIT else "**over**"
    return (f"Paper scale ({peak.name}; see benchmarks/paper_scale.py for what ran): peak RSS "
            f"{peak.rss_bytes / 2**20:.0f} MiB in {peak.seconds:.0f} s — {verdict} the 8 GiB limit.")


def _others_line(share: float | None) -> str:
    if share is None:
        return "- other processes' CPU use: not measured (no /proc/stat)"
    line = f"- other processes' CPU use during the run: {share:.1%} of the machine's CPU time"
    if share > OTHERS_NOISY:
        return line + (" — **the timings were taken under load**, so they are noisy; the interleaving "
                       "keeps the ratios fair, not the absolute times")
    return line + " (an otherwise idle machine)"


def render(f: dict[str, Any]) -> str:
    m = f["machine"]
    others = f.get("others_cpu_share")
    rk, sw, tr = f["ranking"], f["sweep"], f["training"]
    all_ratios = sw["ratios"] + f["pgd"]["ratios"] + rk["ratios"] + tr["ratios"]
    out = [
        "# Benchmarks",
        "",
        f"Written by `{f['command'].strip()}` on {f['date']} in {f['total_s'] / 60:.1f} min. "
        f"Every timed case ran {f['repeats']} times after one untimed warm-up round, interleaved "
        "(A, B, A, B, …) so that each ratio compares runs taken under the same load; ratios are "
        "baseline time / our time per repeat (above 1: ours is faster), shown as min / median / max, "
        "and a target counts as met when the median reaches it.",
        "",
        "## Machine",
        "",
        *[f"- {key}: {value}" for key, value in m.items() if key != "load"],
        f"- 1-minute load average: {f['load_before']:.2f} before, {f['load_after']:.2f} after (the benchmark's "
        "own threads count in it)",
        _others_line(others),
        "- no GPU: every number below is CPU; the CUDA path of the train stage (bf16 autocast, "
        "channels_last) is implemented but was not measured" if m["gpu"].startswith("none") else
        f"- GPU: {m['gpu']}",
        "- item 5 (memory, separate processes) ran **concurrently** with the timings of items 1-4 to fit "
        "the time on a busy machine: peak RSS does not depend on load, but it added to the load the timings saw"
        if f["memory_concurrent"] else "- item 5 (memory) ran first, alone",
        f"- model: resnet18 (ImageNet stem) on mnist5k; {f['model_source']}",
        "",
        "## Summary",
        "",
        "| item | ratio min / median / max | target |",
        "|---|---|---|",
        *_ratio_rows(all_ratios),
        "",
        "## 1. FGSM ε-sweep vs torchattacks",
        "",
        f"{sw['examples']} test examples, batches of the stage's attack.batch_size, {len(sw['curve'])} ε values "
        f"({', '.join(format(r['epsilon'], 'g') for r in sw['curve'])}). torchattacks: a `torchattacks.FGSM` "
        "per ε (one gradient each), then the model on its output; the sweep: one gradient per batch "
        "reused for every ε. Both include the clean accuracy.",
        "",
        f"- adversarial examples bit-identical: {sw['identical_examples'][0]} of "
        f"{sw['identical_examples'][1]} (ε, batch) pairs",
        f"- identical accuracy and Algorithm 1 counts at every ε: {'yes' if sw['same_curve'] else '**no**'}",
        "",
        *_times_table(sw["times"]),
        "",
        "| ratio | min / median / max | target |",
        "|---|---|---|",
        *_ratio_rows(sw["ratios"]),
        "",
        "## 2-3. Kernel ranking: naive, exact, Taylor",
        "",
        f"{rk['examples']} examples of the rank split in batches of rank.batch_size, drop = activation, "
        f"{rk['sizes']['kernels']} conv1 kernels. Naive: `rank_by_hooks` (the whole network per kernel, a "
        "forward hook zeroing the channel); exact: `rank_conv1` (the stem once per batch, kernels stacked "
        "into passes of about 1,000 images, channels_last); taylor: `rank_taylor` (one forward and one "
        "backward pass per batch).",
        "",
        f"- exact per-kernel accuracies identical to the naive loop: {'yes' if rk['identical_accuracy'] else '**no**'}",
        f"- taylor vs exact on this model ({rk['compared_examples']} examples of the rank split): Spearman {rk['comparison']['spearman']:.3f} (score vs accuracy lost), "
        f"{rk['comparison']['spearman_loss']:.3f} (score vs exact loss); same set (S or S') for "
        f"{rk['comparison']['set_agreement']:.1%} of kernels; |S| exact {rk['sizes']['exact S']}, "
        f"taylor {rk['sizes']['taylor S']}",
        *([f"- hybrid (`rank_hybrid`, exact drops for the pairs a first-order margin screen flags) vs exact: "
           f"Spearman {rk['hybrid_comparison']['spearman']:.3f}; same set for "
           f"{rk['hybrid_comparison']['set_agreement']:.1%} of kernels; |S| hybrid {rk['sizes']['hybrid S']}; "
           f"{rk['hybrid_comparison']['exact_share']:.1%} of example–kernel drops run"]
          if "hybrid_comparison" in rk else []),
        "",
        *_times_table(rk["times"]),
        "",
        "| ratio | min / median / max | target |",
        "|---|---|---|",
        *_ratio_rows(rk["ratios"]),
        "",
        "## 4. Training throughput",
        "",
        f"The default run's training: {tr['epochs']} epochs of {tr['images']} training images (the first "
        f"images of the prepared train split) in batches of {tr['batch_size']}, checkpoints after epochs "
        f"{', '.join(map(str, tr['checkpoints']))}, CPU, float32. Train stage: `stages.train.main` in-process "
        "(DVCLive, progress bar, checkpoints, resume state, a validation pass per epoch). Bare loop: the same "
        "model, batches, order, SGD and scheduler, the same validation pass per epoch, no logging or files; "
        "its training steps alone are the second ratio.",
        "",
        "| case | images/s min / median / max |",
        "|---|---|",
        *[f"| {name} | {seconds_cell(v)} |" for name, v in tr["images_per_s"].items()],
        "",
        "| ratio | min / median / max | target |",
        "|---|---|---|",
        *_ratio_rows(tr["ratios"]),
        "",
        "## 5. Peak resident memory",
        "",
        "Each stage of the default run as its own process (the dvc.yaml command), peak RSS from that "
        "process's rusage; training cut to one epoch (same shapes, nothing accumulates across epochs).",
        "",
        "| stage | peak RSS (MiB) | seconds |",
        "|---|---|---|",
        *[f"| {p.name} | {p.rss_bytes / 2**20:.0f} | {p.seconds:.1f} |" for p in f["stage_peaks"]],
        "",
        _paper(f["paper_peak"]),
        "",
        "## 6. PGD vs torchattacks",
        "",
        *pgd.lines(f["pgd"]),
        "",
        "| ratio | min / median / max | target |",
        "|---|---|---|",
        *_ratio_rows(f["pgd"]["ratios"]),
        "",
        "## 7. Compute floor of the default run",
        "",
        *(floor.lines(f["floor"]) if "floor" in f else ["Not run (--skip-floor)."]),
    ]
    return "\n".join(out)
