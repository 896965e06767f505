"""The README fits on a page, opens with the two commands CI runs, and every link of the documentation resolves."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
LINK = re.compile(r"\]\(([^)\s]+)\)")


def first_code_block(text: str) -> list[str]:
    """The commands of the README's first fenced block (comments dropped), and everything written before it."""
    before, _, rest = text.partition("```bash\n")
    block, _, _ = rest.partition("```")
    return before, [line for line in block.splitlines() if line and not line.startswith("#")]


def local_links(path: Path) -> list[tuple[str, Path]]:
    """Every relative link of a Markdown file (web links and in-page anchors left out), resolved from its folder."""
    links = []
    for target in LINK.findall(path.read_text()):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        links.append((target, (path.parent / target.split("#")[0]).resolve()))
    return links


def test_the_readme_fits_on_a_page():
    assert len(README.read_text().splitlines()) <= 300


def test_the_readme_starts_with_the_two_commands_and_ci_runs_the_second_verbatim():
    before, commands = first_code_block(README.read_text())
    assert "\n## " not in before, "the commands come before any section"
    install_and_start, tests = commands[:2]
    assert "pip install -r requirements.txt" in install_and_start and install_and_start.endswith("streamlit run app.py")
    assert "requirements-dev.txt" in tests and tests.endswith("pytest -q")
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert tests in ci, ".ci/run runs the README's test command verbatim"


def test_every_link_of_the_readme_and_the_docs_resolves_to_a_file():
    pages = [README, *sorted((ROOT / "docs").rglob("*.md"))]
    broken = [f"{page.relative_to(ROOT)}: {target}" for page in pages for target, path in local_links(page)
              if not path.is_file()]
    assert not broken, "links to missing files:\n" + "\n".join(broken)


def test_the_readme_links_the_documentation_of_every_topic():
    linked = {path.relative_to(ROOT).as_posix() for _, path in local_links(README)}
    for topic in ("cli", "api", "measurement-protocol", "benchmarks", "public-demo", "mathematics", "guide-2d",
                  "guide-images", "guide-compare", "guide-study"):
        assert f"docs/{topic}.md" in linked, topic


def test_every_file_the_docs_name_exists():
    """A file named in backticks by its path in the repository (`ui/jobs/timing.py`) is there: a move that forgets
    the docs fails here."""
    named = re.compile(r"`((?:diffusion|ui|app_pages|benchmarks|tests|checkpoints|docs|\.ci|\.streamlit)/[\w./-]*?"
                       r"\.(?:py|md|json|csv|png|toml))[`:]")
    missing = [f"{page.relative_to(ROOT)}: {path}" for page in [README, *sorted((ROOT / "docs").rglob("*.md"))]
               for path in named.findall(page.read_text()) if not (ROOT / path).is_file()]
    assert not missing, "files named by the docs that are not in the repository:\n" + "\n".join(missing)
