"""clear_output(wait=True) animations do not flicker: each frame replaces the last (an image,
HTML) without the output collapsing between them while the new frame's image decodes or its
HTML frame loads (as Jupyter keeps the output's height). The output's height is sampled at
every animation frame of the page, from the run's start to its end, with the frame it shows:
the heights compared are those from the second frame on (the first had nothing to replace)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from kernels import require_kernel
from module_chain import module_chain
from test_browser import (ARTIFACTS, browser, code_box, expect, open_worksheet,  # noqa: F401
                          page, run)

SAMPLE = """cell => {
  window.heights = [];
  const sample = () => {
    const out = cell.querySelector(".cellbus-output");
    const text = out?.querySelector(".cellbus-stdout")?.textContent ?? "";
    window.heights.push([out ? out.getBoundingClientRect().height : 0, text]);
    if (!window.stopSampling) requestAnimationFrame(sample);
  };
  sample();
}"""

PNG = r"""import struct, zlib
def png(w, h, shade):
    rows = b''.join(b'\0' + bytes([shade, 80, 160]) * w for _ in range(h))
    def chunk(kind, data):
        return (struct.pack('>I', len(data)) + kind + data
                + struct.pack('>I', zlib.crc32(kind + data)))
    return (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 8, 2, 0, 0, 0))
            + chunk(b'IDAT', zlib.compress(rows)) + chunk(b'IEND', b''))
"""

FRAMES = {
    "image": "display(Image(data=png(240, 180, i * 15), format='png'))",
    "html": "display(HTML(f'<div style=\"height:200px;background:#ddd\">frame {i}</div>'))",
}


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A chain whose device runs ipykernel (``python3``), which has clear_output."""
    require_kernel("python3")
    yield from module_chain(tmp_path_factory, "animation", device=("--kernels", "python3"),
                            log=ARTIFACTS / "browser-logs" / "test_browser_animation.log")


@pytest.mark.parametrize("kind", sorted(FRAMES))
def test_a_clear_output_animation_keeps_its_height(page: Any, web: Any, kind: str) -> None:
    cell = open_worksheet(page, web, kernel="python3").nth(0)
    out = cell.locator(".cellbus-output")
    code = (PNG + "import time\nfrom IPython.display import clear_output, display, Image, HTML\n"
            "for i in range(12):\n    clear_output(wait=True)\n    print('frame', i)\n"
            f"    {FRAMES[kind]}\n    time.sleep(0.2)\n")
    cell.evaluate(SAMPLE)  # every animation frame, so no frame's 0.2 s go unseen
    run(cell, code)
    expect(cell).to_have_attribute("data-status", "done", timeout=60_000)
    page.evaluate("window.stopSampling = true")
    samples = page.evaluate("window.heights")
    second = next((i for i, (_, text) in enumerate(samples)
                   if text.startswith("frame ") and text != "frame 0\n"), None)
    assert second is not None, samples
    heights = [height for height, _ in samples[second:]]
    full = [h for h in heights if h > 150]
    assert full, heights
    start = heights.index(full[0])
    assert min(heights[start:]) >= 0.9 * max(heights[start:]), [round(h) for h in heights]
    expect(out.locator(".cellbus-stdout")).to_have_text("frame 11\n")


def test_a_new_run_takes_the_height_of_its_own_output(page: Any, web: Any) -> None:
    """The hold is for frames within a run: a cell run again with less output shrinks as
    soon as the new output shows (its old output, stale, was replaced, not cleared)."""
    cell = open_worksheet(page, web, kernel="python3").nth(0)
    out = cell.locator(".cellbus-output")
    run(cell, "from IPython.display import display, HTML\nprint('tall')\n"
              "display(HTML('<div style=\"height:300px\">tall</div>'))")
    expect(cell).to_have_attribute("data-status", "done")
    expect(out.locator("iframe")).to_have_count(1)
    code_box(cell).press("Control+a")
    code_box(cell).press("Delete")  # (fill after a run puts the text in at the cursor)
    run(cell, "print('short')")
    page.wait_for_function("out => out.innerText.trim() === 'short'", arg=out.element_handle())
    assert out.evaluate("e => e.style.minHeight") == ""
    assert out.evaluate("e => e.getBoundingClientRect().height") < 100
