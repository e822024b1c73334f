"""make-plots end to end on a synthetic output: files, layout, report, cutflow CSV, filters, bad input."""
from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

import plots_synthetic as syn
from pc_core.errors import OutputError, PocketCoffeaError
from pc_core.output import normalise
from pc_plots.cli import make_plots_command
from pc_plots.style import StyleError


@pytest.fixture(scope="module")
def coffea_file(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("run")
    return syn.save(syn.build_output(), folder / "output_all.coffea")


def invoke(*args):
    return CliRunner().invoke(make_plots_command, [*args, "-ll", "WARNING"], catch_exceptions=True)


def test_end_to_end_two_workers_all_formats(coffea_file, tmp_path):
    out = tmp_path / "plots"
    result = invoke("-i", str(coffea_file), "-o", str(out), "-j", "2", "--format", "png,pdf", "--format", "svg",
                    "-oy", syn.YEAR, "-oh", "jet_pt|jet_eta_phi")
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert f"Report: {out / 'index.html'}" in result.output
    for year in (syn.YEAR,):
        for cat in syn.CATEGORIES:
            folder = out / year / cat
            for name in ("jet_pt", "jet_eta_phi", "cutflow"):
                png = folder / f"{name}.png"
                with Image.open(png) as image:
                    assert image.size[0] > 400 and image.size[1] > 300
                assert (folder / f"{name}.pdf").read_bytes().startswith(b"%PDF")
                assert b"<svg" in (folder / f"{name}.svg").read_bytes()[:2000]
                with Image.open(folder / "thumbs" / f"{name}.png") as thumb:
                    assert thumb.size[0] == 320
    assert not list(out.rglob("*.tmp"))  # atomic writes leave no temporaries
    html = (out / "index.html").read_text()
    referenced = [r for r in re.findall(r'(?:src|href)="([^"#]+)"', html) if not r.startswith("data:")]
    assert len(referenced) >= 2 * 3 * 4
    for rel in referenced:
        assert (out / rel).is_file(), rel
    assert f'id="{syn.YEAR}--SR"' in html and "By variable" in html


def test_cutflow_csv_numbers(coffea_file, tmp_path):
    out = tmp_path / "plots"
    result = invoke("-i", str(coffea_file), "-o", str(out), "-oy", syn.YEAR, "-oh", "^ht$")
    assert result.exit_code == 0, result.output + repr(result.exception)
    raw = syn.build_output()
    norm = normalise(raw)
    with open(out / syn.YEAR / "SR" / "cutflow.csv") as f:
        rows = {r["sample"]: r for r in csv.DictReader(f)}
    assert set(rows) == {"TTTo", "DY", "DATA_Mu"}
    dy_sets = ["DY_M50_2022_postEE", "DY_M10_2022_postEE"]
    assert float(rows["DY"]["presel"]) == sum(raw["cutflow"]["presel"][d] for d in dy_sets)
    assert float(rows["DY"]["SR"]) == sum(raw["cutflow"]["SR"][d]["DY"] for d in dy_sets)
    assert float(rows["DY"]["weighted_yield"]) == pytest.approx(sum(norm["sumw"]["SR"][d]["DY"] for d in dy_sets), rel=1e-5)
    html = (out / "index.html").read_text()
    assert "<table class=\"cutflow\">" in html and "weighted yield" in html


def test_filters_and_layout(coffea_file, tmp_path):
    out = tmp_path / "plots"
    result = invoke("-i", str(coffea_file), "-o", str(out), "-oc", "SR", "-oy", syn.YEAR, "-oh", "^jet", "-e", "phi",
                    "--no-cutflow")
    assert result.exit_code == 0, result.output + repr(result.exception)
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files == [f"{syn.YEAR}/SR/jet_pt.png", f"{syn.YEAR}/SR/thumbs/jet_pt.png", "index.html"]


def test_options_log_density_no_ratio_no_syst(coffea_file, tmp_path):
    out = tmp_path / "plots"
    result = invoke("-i", str(coffea_file), "-o", str(out), "-oy", syn.YEAR, "-oc", "baseline", "--log-y", "--log-x",
                    "--density", "--no-ratio", "--no-syst", "--no-cutflow")
    assert result.exit_code == 0, result.output + repr(result.exception)
    for name in syn.HISTOGRAMS:
        with Image.open(out / syn.YEAR / "baseline" / f"{name}.png") as image:
            assert image.size[0] > 400


def test_year_combination_from_style_and_input_folder_default(coffea_file, tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "output_all.coffea").write_bytes(coffea_file.read_bytes())
    (folder / "parameters_dump.yaml").write_text("plotting_style:\n  labels: {DY: 'Drell-Yan'}\n")
    style = tmp_path / "style.yaml"
    style.write_text(f"year_combinations:\n  Run3: ['{syn.YEAR}', '{syn.YEAR2}']\ncms:\n  text: Work in progress\n")
    result = invoke("-inp", str(folder), "-op", str(style), "-oy", "Run3", "-oh", "jet_pt", "--no-cutflow")
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert (folder / "plots" / "Run3" / "SR" / "jet_pt.png").is_file()
    assert not (folder / "plots" / syn.YEAR).exists()


def test_refuses_to_overwrite_without_flag(coffea_file, tmp_path):
    out = tmp_path / "plots"
    assert invoke("-i", str(coffea_file), "-o", str(out), "-oh", "^ht$", "--no-cutflow").exit_code == 0
    plot = out / syn.YEAR / "SR" / "ht.png"
    before = (plot.stat().st_mtime_ns, plot.read_bytes())
    result = invoke("-i", str(coffea_file), "-o", str(out), "-oh", "^ht$", "--no-cutflow")
    assert result.exit_code != 0
    assert isinstance(result.exception, PocketCoffeaError)
    assert "--overwrite" in str(result.exception) and str(out) in str(result.exception)
    assert (plot.stat().st_mtime_ns, plot.read_bytes()) == before
    result = invoke("-i", str(coffea_file), "-o", str(out), "-oh", "^ht$", "--no-cutflow", "--overwrite")
    assert result.exit_code == 0, repr(result.exception)
    assert plot.stat().st_mtime_ns != before[0]


def test_accumulates_explicit_files_and_globs(tmp_path):
    a = syn.save(syn.build_output(seed=1, two_years=False), tmp_path / "output_job_1.coffea")
    b = syn.build_output(seed=2, two_years=False)
    syn.save(b, tmp_path / "output_job_2.coffea")
    out = tmp_path / "plots"
    result = invoke("-i", str(tmp_path / "output_job_*.coffea"), "-o", str(out), "-oh", "^ht$")
    assert result.exit_code == 0, result.output + repr(result.exception)
    with open(out / syn.YEAR / "SR" / "cutflow.csv") as f:
        rows = {r["sample"]: r for r in csv.DictReader(f)}
    a_raw = syn.build_output(seed=1, two_years=False)
    expected = a_raw["cutflow"]["SR"]["TTTo_2022_postEE"]["TTTo"] + b["cutflow"]["SR"]["TTTo_2022_postEE"]["TTTo"]
    assert float(rows["TTTo"]["SR"]) == expected
    assert a.is_file()


def test_output_missing_keys_is_a_clear_error(tmp_path):
    broken = syn.build_output(two_years=False)
    del broken["datasets_metadata"]
    path = syn.save(broken, tmp_path / "broken.coffea")
    result = invoke("-i", str(path), "-o", str(tmp_path / "plots"))
    assert isinstance(result.exception, OutputError)
    assert str(path) in str(result.exception) and "datasets_metadata" in str(result.exception)
    assert not (tmp_path / "plots").exists()  # nothing written on bad input


def test_unknown_sample_in_style_names_it(coffea_file, tmp_path):
    style = tmp_path / "style.yaml"
    style.write_text("labels:\n  TTbar: 't#bar{t}'\n")
    result = invoke("-i", str(coffea_file), "-o", str(tmp_path / "plots"), "-op", str(style))
    assert isinstance(result.exception, StyleError)
    message = str(result.exception)
    assert str(style) in message and "'TTbar'" in message and "labels" in message and "TTTo" in message
    assert not (tmp_path / "plots").exists()


@pytest.mark.parametrize("text,expected", [
    ("labels: {DY: 'x'\ncolors: [", "malformed YAML at line"),
    ("- just\n- a list\n", "top level must be a mapping"),
    ("figure:\n  widht: 3\n", "unknown key 'widht'"),
    ("blinding:\n  - ranges: [[5, 1]]\n", "low must be < high"),
])
def test_malformed_style_yaml(coffea_file, tmp_path, text, expected):
    style = tmp_path / "style.yaml"
    style.write_text(text)
    result = invoke("-i", str(coffea_file), "-o", str(tmp_path / "plots"), "-op", str(style))
    assert isinstance(result.exception, StyleError), repr(result.exception)
    assert expected in str(result.exception) and str(style) in str(result.exception)


def test_console_script_prints_one_line_and_exits_1(tmp_path):
    missing = tmp_path / "nope.coffea"
    script = Path(sys.executable).parent / "make-plots"
    cmd = [str(script)] if script.exists() else [sys.executable, "-c", "from pc_plots.cli import main; main()"]
    result = subprocess.run([*cmd, "-i", str(missing), "-o", str(tmp_path / "p")], capture_output=True, text=True,
                            env=dict(os.environ, COLUMNS="300"))
    assert result.returncode == 1
    assert "Error:" in result.stderr and str(missing) in result.stderr and "Traceback" not in result.stderr


def test_bad_options(coffea_file, tmp_path):
    result = invoke("-i", str(coffea_file), "-o", str(tmp_path / "p"), "--format", "jpg")
    assert result.exit_code == 2 and "accepted: png, pdf, svg" in result.output
    result = invoke("-i", str(coffea_file), "-o", str(tmp_path / "p"), "-oc", "nothing")
    assert "No category matches" in str(result.exception) and "baseline, SR" in str(result.exception)
    result = invoke("-i", str(coffea_file), "-o", str(tmp_path / "p"), "-oh", "nothing")
    assert "No histogram matches" in str(result.exception) and "jet_pt" in str(result.exception)
    result = invoke("-i", str(coffea_file))
    assert "-o/--outputdir" in str(result.exception)
    assert not (tmp_path / "p").exists()
