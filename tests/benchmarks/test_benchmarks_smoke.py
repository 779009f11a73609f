"""The benchmark scripts run: ``benchmarks/gpu.sh --smoke`` on the CPU (tiny shapes, 2
steps, every method and precision, the table written between its markers) and the CPU
benchmarks with ``--quick``.  Their figures are not checked here, only that each one
runs and reports; the measured ratios are in docs/benchmarks.md."""

import json
import re
import subprocess
import sys

import pytest

from tests.support import REPO, subprocess_env

pytestmark = [pytest.mark.subprocess]

RESULT = re.compile(r"^RESULT (\S+) = ([0-9.]+)", re.M)


def test_gpu_script_smoke_writes_its_table(tmp_path):
    doc = tmp_path / "benchmarks.md"
    doc.write_text(
        "# Benchmarks\n\nbefore\n\n<!-- gpu-results:begin -->\nold\n<!-- gpu-results:end -->\n\nafter\n"
    )
    rows = tmp_path / "rows.json"
    proc = subprocess.run(
        ["bash", "benchmarks/gpu.sh", "--smoke", "--out", str(doc), "--json", str(rows)],
        cwd=REPO,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    result = json.loads(rows.read_text())
    assert result["device"].startswith("CPU")
    got = {(r["method"], r["precision"]) for r in result["rows"]}
    assert got == {(m, p) for m in ("mla", "concat") for p in ("fp32", "bf16", "fp16")}
    assert all(r["samples_per_s"] > 0 and r["batch"] == 2 for r in result["rows"])
    assert all(r["gpus"] == 1 for r in result["rows"])  # no DDP rows with --smoke
    text = doc.read_text()
    assert text.startswith("# Benchmarks\n\nbefore\n") and text.rstrip().endswith("after")
    assert "old" not in text and text.count("<!-- gpu-results:begin -->") == 1
    table = [
        line
        for line in text.splitlines()
        if line.startswith("| mla ") or line.startswith("| concat ")
    ]
    assert len(table) == 6
    assert "Card: **CPU:" in text
    assert "timed through the plugin's MultimodalTrainer" in text  # MMF is here


def test_gpu_script_runs_without_mmf_from_the_core(tmp_path):
    """The lent GPU machines have PyTorch but not MMF: the script builds the same networks
    from mla_plugin.core there."""
    proc = subprocess.run(
        ["bash", "benchmarks/gpu.sh", "--smoke", "--core", "--precisions", "fp32"],
        cwd=REPO,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "core models" in proc.stdout and "mla_plugin.core" in proc.stdout
    assert "mmf" not in {m.split(".")[0] for m in _modules_imported_by_core_path()}


def _modules_imported_by_core_path():
    code = (
        "import sys; sys.argv=['x']; sys.path.insert(0, 'benchmarks'); import bench_gpu; "
        "bench_gpu._core(); print('\\n'.join(sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.split()


def test_cpu_benchmarks_quick():
    """Each CPU benchmark's --quick run (one process, so the imports are paid once);
    bench_ddp.py is left out (three fresh process groups: too slow for a test)."""
    names = ["bench_mla_vs_concat", "bench_hgm", "bench_fusion", "bench_framework", "bench_data"]
    code = (
        "import sys; sys.path.insert(0, 'benchmarks')\n"
        "import importlib\n"
        f"for name in {names!r}:\n"
        "    print('=== ' + name, flush=True)\n"
        "    importlib.import_module(name).main(['--quick'])\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = dict(RESULT.findall(proc.stdout))
    for key in (
        "mla_over_concat_step_time",
        "hgm_on_over_off_step_time",
        "hgm_hook_overhead",
        "entropy_over_fixed_eval_time",
        "plugin_over_plain_train_in_process",
        "decode_over_cache_per_epoch",
    ):
        assert key in results and float(results[key]) > 0, (key, proc.stdout[-3000:])


def test_methods_benchmark_quick():
    """bench_methods.py --quick: a ratio row for every registered method of the modulation
    and staged sets, OGM-GE and MLA (its own process: the methods it builds are many)."""
    code = (
        "import sys; sys.path.insert(0, 'benchmarks')\n"
        "import bench_methods\n"
        "print('ROWS ' + ' '.join(bench_methods.methods()), flush=True)\n"
        "bench_methods.main(['--quick'])\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = re.search(r"^ROWS (.*)$", proc.stdout, re.M).group(1).split()
    assert {"ogm_ge", "mla"} <= set(rows) and "concat" not in rows
    results = dict(RESULT.findall(proc.stdout))
    assert set(results) == {f"{m}_over_concat_step_time" for m in rows}, proc.stdout[-3000:]
    assert all(float(v) > 0 for v in results.values())
    table = [line for line in proc.stdout.splitlines() if line.startswith("| ")]
    assert len(table) == len(rows) + 1  # the header and one row per method
