"""libertem-server's pieces without a server: paths, masks, plans, messages, files, code."""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest

from libertem.web import codegen, exports
from libertem.web.analyses import AnalysisError, as_2d, detector_call, evaluate_call, roi_call
from libertem.web.paths import PathRefused, list_directory, resolve
from libertem.web.plan import make_plan
from libertem.web.protocol import decode_images, encode_images

REPO = Path(__file__).resolve().parents[2]


# paths ------------------------------------------------------------------------------
@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "a.npy").write_bytes(b"x")
    (tmp_path / "secret.txt").write_text("outside")
    os.symlink(tmp_path / "secret.txt", root / "link_out")
    os.symlink(tmp_path, root / "dir_out")
    os.symlink(root / "sub" / "a.npy", root / "link_in")
    return Path(os.path.realpath(root))


@pytest.mark.parametrize(
    "bad",
    ["..", "../secret.txt", "sub/../../secret.txt", "/etc/passwd", "link_out", "dir_out/x"],
)
def test_paths_outside_root_refused(tree, bad):
    with pytest.raises(PathRefused):
        resolve(tree, bad)


def test_paths_inside_root_resolve(tree):
    assert resolve(tree, "") == tree
    assert resolve(tree, "sub/a.npy") == tree / "sub" / "a.npy"
    assert resolve(tree, "link_in") == tree / "sub" / "a.npy"


def test_listing_hides_links_that_leave_the_root(tree):
    listing = list_directory(tree, "")
    names = [e["name"] for e in listing["entries"]]
    assert names == ["sub", "link_in"]
    assert listing["parent"] is None
    sub = list_directory(tree, "sub")
    assert sub["path"] == "sub" and sub["parent"] == ""
    assert sub["entries"][0] == {**sub["entries"][0], "name": "a.npy", "kind": "file", "size": 1}
    with pytest.raises(PathRefused, match="not a folder"):
        list_directory(tree, "sub/a.npy")


# masks and plans ----------------------------------------------------------------------
def test_as_2d():
    assert as_2d((4, 5)) == (4, 5)
    assert as_2d((7,)) == (1, 7)
    assert as_2d((2, 3, 5)) == (6, 5)


def _radius2(shape, cx, cy):
    y, x = np.mgrid[: shape[0], : shape[1]]
    return (y - cy) ** 2 + (x - cx) ** 2


def test_detector_masks_match_numpy():
    shape = (20, 30)
    r2 = _radius2(shape, 12.5, 8.0)
    ring = evaluate_call(
        detector_call({"shape": "ring", "cx": 12.5, "cy": 8, "ri": 3, "ro": 6}, shape), shape
    )
    assert np.array_equal(ring, (r2 <= 36) & (r2 > 9))
    disk = evaluate_call(
        detector_call({"shape": "disk", "cx": 12.5, "cy": 8, "r": 4}, shape), shape
    )
    assert np.array_equal(disk, r2 <= 16)
    rect = evaluate_call(
        detector_call({"shape": "rect", "x": 3, "y": 2, "width": 5, "height": 4}, shape), shape
    )
    expected = np.zeros(shape, bool)
    expected[2:6, 3:8] = True
    assert np.array_equal(rect, expected)
    point = evaluate_call(detector_call({"shape": "point", "cx": 7.2, "cy": 4.9}, shape), shape)
    assert np.argwhere(point).tolist() == [[4, 7]]
    assert evaluate_call(detector_call({"shape": "whole"}, shape), shape).all()


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"shape": "ring", "cx": 1, "cy": 1, "ri": 5, "ro": 2}, "inner radius"),
        ({"shape": "disk", "cx": 1, "cy": 1, "r": -1}, "at least 0"),
        ({"shape": "disk", "cx": "a", "cy": 1, "r": 1}, "'cx' must be a number"),
        ({"shape": "point", "cx": 99, "cy": 1}, "outside"),
        ({"shape": "star"}, "unknown detector shape"),
    ],
)
def test_bad_detectors_name_the_problem(spec, message):
    with pytest.raises(AnalysisError, match=message):
        detector_call(spec, (10, 10))


def test_roi_shapes():
    assert roi_call(None, (4, 4)) is None
    with pytest.raises(AnalysisError, match="roi"):
        roi_call({"shape": "ring", "cx": 1, "cy": 1, "ri": 0, "ro": 1}, (4, 4))
    roi = evaluate_call(roi_call({"shape": "disk", "cx": 2, "cy": 1, "r": 1}, (4, 5)), (4, 5))
    assert np.array_equal(roi, _radius2((4, 5), 2, 1) <= 1)


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"kind": "nope"}, "unknown analysis kind"),
        ({"kind": "pick", "x": 16, "y": 0}, "x must be an integer in 0..15"),
        ({"kind": "com", "params": {"cx": 1, "cy": 1, "r": 1, "ri": 2}}, "inner radius"),
        ({"kind": "com", "params": {"cx": 1, "cy": 1, "regression": 3}}, "regression"),
        (
            {
                "kind": "navsum",
                "roi": {"shape": "rect", "x": 20, "y": 20, "width": 1, "height": 1},
            },
            "selects no frame",
        ),
        ("navsum", "must be an object"),
    ],
)
def test_bad_analyses_name_the_problem(spec, message):
    with pytest.raises(AnalysisError, match=message):
        make_plan(spec, (16, 16), (8, 8))


# messages and downloads ------------------------------------------------------------------
def test_image_message_round_trip():
    a = np.arange(12, dtype=np.float64).reshape(3, 4)
    b = np.full((2, 5), np.nan, dtype=np.float32)
    message = encode_images({"run": "r1", "final": True}, {"a": a, "b": b})
    assert message[:4] == b"LTIM" and (len(message) - 8 - 4 * (12 + 10)) % 4 == 0
    header, images = decode_images(message)
    assert header["run"] == "r1" and header["final"] is True
    assert [i["name"] for i in header["images"]] == ["a", "b"]
    assert images["a"].dtype == np.float32 and np.array_equal(images["a"], a)
    assert np.isnan(images["b"]).all() and images["b"].shape == (2, 5)


def test_npy_and_tiff_downloads():
    import tifffile

    counts = np.arange(20, dtype=np.float64).reshape(4, 5)
    assert np.array_equal(np.load(io.BytesIO(exports.to_npy(counts))), counts)
    t32 = tifffile.imread(io.BytesIO(exports.to_tiff(counts / 3, 32)))
    assert t32.dtype == np.float32 and np.allclose(t32, counts / 3)
    exact = tifffile.imread(io.BytesIO(exports.to_tiff(counts, 16)))
    assert exact.dtype == np.uint16 and np.array_equal(exact, counts)
    raw = exports.to_tiff(counts - 5.5, 16)
    scaled = tifffile.imread(io.BytesIO(raw))
    assert scaled.min() == 0 and scaled.max() == 65535
    with tifffile.TiffFile(io.BytesIO(raw)) as f:
        meta = json.loads(f.pages[0].description)
    assert meta["offset"] == -5.5 and np.isclose(meta["scale"], 19 / 65535)
    field = np.stack([counts, -counts], axis=-1)
    pages = tifffile.imread(io.BytesIO(exports.to_tiff(field, 32)))
    assert pages.shape == (2, 4, 5)
    with pytest.raises(exports.ExportError, match="16 or 32"):
        exports.to_tiff(counts, 8)


def test_png_downloads():
    import matplotlib.image

    data = np.arange(20, dtype=np.float64).reshape(4, 5)
    data[0, 0] = np.nan
    png = matplotlib.image.imread(io.BytesIO(exports.to_png(data, cmap="gray")))
    assert png.shape == (4, 5, 4)
    assert png[0, 0, 3] == 0  # NaN is transparent
    assert np.allclose(png[3, 4, :3], 1) and np.allclose(png[0, 1, :3], 0)
    wheel = exports.to_png(np.stack([data, data], axis=-1))
    assert matplotlib.image.imread(io.BytesIO(wheel)).shape == (4, 5, 4)
    with pytest.raises(exports.ExportError, match="colour map"):
        exports.to_png(data, cmap="nope")
    with pytest.raises(exports.ExportError, match="percentiles"):
        exports.to_png(data, low=50, high=10)


def test_percentile_limits_like_numpy():
    data = np.array([[0.0, 1, 2], [3, np.nan, 100]])
    lo, hi = exports.limits(data, 10, 90, log=False)
    finite = data[np.isfinite(data)]
    assert np.isclose(lo, np.percentile(finite, 10)) and np.isclose(hi, np.percentile(finite, 90))
    lo, hi = exports.limits(data, 0, 100, log=True)
    assert np.isclose(hi, np.log1p(100))


# generated code --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "spec",
    [
        {"kind": "virtual", "detector": {"shape": "ring", "cx": 4, "cy": 4, "ri": 1, "ro": 3}},
        {"kind": "com", "params": {"cx": 4, "cy": 4, "r": None}},
        {"kind": "pick", "x": 2, "y": 3},
        {"kind": "framesum", "mean": True, "roi": {"shape": "disk", "cx": 2, "cy": 2, "r": 1}},
        {"kind": "navsum"},
    ],
)
def test_generated_code_compiles(spec):
    plan = make_plan(spec, (6, 6), (8, 8))
    code = codegen.CodeContext(
        context_expr='Context.make_with("inline")',
        context_imports=(),
        filetype="npy",
        load_kwargs={"path": "/data/x.npy"},
        nav_2d=(6, 6),
        sig_2d=(8, 8),
        base_name="x_" + plan.label,
    )
    script = codegen.python_script(plan, code)
    compile(script, "script.py", "exec")
    assert "ctx.load('npy', path='/data/x.npy')" in script
    nb = json.loads(codegen.notebook(plan, code))
    assert nb["nbformat"] == 4
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            compile("".join(cell["source"]), "cell", "exec")


# the committed front end -------------------------------------------------------------------
def test_built_front_end_matches_its_sources():
    """web/build.mjs writes a hash of web/src into the bundle: rebuild after editing."""
    src = REPO / "web" / "src"
    digest = hashlib.sha256()
    for name in sorted(os.listdir(src)):
        digest.update(name.encode() + b"\n")
        digest.update((src / name).read_bytes())
    static = REPO / "src" / "libertem" / "web" / "static"
    first = (static / "app.js").read_text().splitlines()[0]
    assert first == f"// sources-sha256: {digest.hexdigest()}", "run `npm run build` in web/"
    for name in ("index.html", "style.css"):
        assert (static / name).read_bytes() == (REPO / "web" / "static" / name).read_bytes()
