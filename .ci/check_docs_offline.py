"""Check that the built documentation renders its maths offline, in a headless browser.

Usage: python .ci/check_docs_offline.py docs/_build/html [page.html ...]

For each page (default: every page with maths in it, at most a few): the HTML must load MathJax from the
build itself (no ``http(s)://`` script), and Chromium, started headless with every host name made
unresolvable (so nothing can come from the network), must replace every formula by MathJax's rendered
output: the DOM after the scripts ran holds one ``mjx-container`` per formula and no raw LaTeX is left in
a maths element. Exits non-zero, naming the page and what is wrong, otherwise.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

MATH_SPAN = re.compile(r'<(span|div) class="math notranslate nohighlight">(.*?)</\1>', re.S)
REMOTE_SCRIPT = re.compile(r'<script[^>]+src="(https?:)?//[^"]*"', re.I)


def browser() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    sys.exit("check_docs_offline: no Chromium found (Debian: apt-get install chromium)")


def rendered_dom(page: Path, exe: str) -> str:
    with tempfile.TemporaryDirectory(prefix="gseq-chromium-") as profile:
        cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", f"--user-data-dir={profile}",
               "--host-resolver-rules=MAP * ~NOTFOUND", "--allow-file-access-from-files",
               "--virtual-time-budget=20000", "--dump-dom", page.resolve().as_uri()]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"{exe} failed on {page} ({done.returncode}): {done.stderr[-2000:]}")
    return done.stdout


def check(page: Path, exe: str) -> list[str]:
    html = page.read_text(encoding="utf-8")
    problems = [f"{page}: loads a script from the network ({m.group(0)[:120]})" for m in REMOTE_SCRIPT.finditer(html)]
    formulas = len(MATH_SPAN.findall(html))
    if formulas == 0:
        return problems + [f"{page}: holds no formula to check"]
    dom = rendered_dom(page, exe)
    rendered = dom.count("<mjx-container")
    raw = [body.strip()[:60] for _, body in MATH_SPAN.findall(dom) if "\\(" in body or "\\[" in body]
    if rendered < formulas or raw:
        problems.append(f"{page}: {formulas} formulas, {rendered} rendered by MathJax; raw LaTeX left: {raw[:3]}")
    else:
        print(f"{page}: {formulas} formulas, all rendered offline ({rendered} mjx-container elements)")
    return problems


def main(argv: list[str]) -> int:
    if not argv:
        sys.exit(__doc__)
    root = Path(argv[0])
    pages = [root / p for p in argv[1:]] or sorted(
        p for p in root.rglob("*.html") if "_static" not in p.parts and MATH_SPAN.search(p.read_text(encoding="utf-8"))
    )[:4]
    if not pages:
        sys.exit(f"check_docs_offline: no page with maths under {root}")
    exe = browser()
    problems = [p for page in pages for p in check(page, exe)]
    for p in problems:
        print(p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
