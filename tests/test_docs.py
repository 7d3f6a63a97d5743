"""The documentation's links resolve, and the README stays a five-minute read.

Checks every relative link, `[text](path)` and `![alt](path)`, with or without
`#anchor`, in README.md, docs/**/*.md and experiments/reference/*.md: the path
must exist inside the repository and an anchor must name a heading of the
target (GitHub's slug rules) or an HTML `id` / `name` in it. Links inside code
(fenced blocks, `inline code`) are not links and are skipped, as are URLs with
a scheme (https:, mailto:). Reads text files only: no JAX, no ganad_jax import
(tests/conftest.py still imports JAX for the session; `--noconftest` skips it).
"""

import collections
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
README_MAX_LINES = 250
QUICKSTART_COMMANDS = (
    "pip install -e . && python experiments/train.py --config=configs/ae_digits.py "
    "--workdir=/tmp/ganad_quickstart",
    "pip install -e '.[test]' && python -m pytest -q tests",
)

_FENCE = re.compile(r"^ {0,3}(```|~~~)")
_INLINE_CODE = re.compile(r"(`+)(?:.+?)\1")
# [text](target "title") and ![alt](target); text may hold one level of brackets.
_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\".*\")?\s*$")
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
_HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_HTML_ID = re.compile(r"<[a-zA-Z][^>]*\s(?:id|name)=[\"']([^\"']+)[\"']")


def doc_files() -> list[pathlib.Path]:
  """README.md, every Markdown file under docs/ and experiments/reference/*.md."""
  files = [ROOT / "README.md"]
  files += sorted((ROOT / "docs").rglob("*.md"))
  files += sorted((ROOT / "experiments" / "reference").glob("*.md"))
  return files


def prose_lines(text: str):
  """(line number, line) of the lines outside fenced code blocks, inline code blanked."""
  for number, line in _raw_prose_lines(text):
    yield number, _INLINE_CODE.sub(lambda m: " " * len(m.group(0)), line)


def links(text: str) -> list[tuple[int, str]]:
  """(line number, target) of every inline link, image and reference definition."""
  found = []
  for number, line in prose_lines(text):
    found += [(number, m.group(1)) for m in _LINK.finditer(line)]
    definition = _REFERENCE_DEF.match(line)
    if definition:
      found.append((number, definition.group(1)))
  return found


def slug(heading: str) -> str:
  """GitHub's anchor of a heading: its rendered text, lowercased, punctuation dropped.

  As github/cmark-gfm and html-pipeline do: Markdown markup is rendered away
  (code backticks, emphasis stars, a link's target), then every character that
  is not a letter, digit, underscore, hyphen or space is removed, and spaces
  become hyphens (runs are not collapsed).
  """
  text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)
  text = text.replace("`", "").replace("*", "")
  text = re.sub(r"<[^>]+>", "", text)
  text = re.sub(r"[^\w\- ]", "", text.lower())
  return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
  """Every anchor a Markdown file defines: heading slugs (with GitHub's -1, -2 for repeats) and HTML ids."""
  seen = collections.Counter()
  found = set()
  for _, line in _raw_prose_lines(text):
    heading = _HEADING.match(line)
    if heading:
      base = slug(heading.group(2))
      found.add(base if seen[base] == 0 else f"{base}-{seen[base]}")
      seen[base] += 1
    found.update(m.group(1) for m in _HTML_ID.finditer(line))
  return found


def _raw_prose_lines(text: str):
  """Lines outside fenced code blocks, inline code kept (a heading's code counts)."""
  fence = None
  for number, line in enumerate(text.splitlines(), start=1):
    match = _FENCE.match(line)
    if match:
      if fence is None:
        fence = match.group(1)
      elif match.group(1) == fence:
        fence = None
      continue
    if fence is None:
      yield number, line


def broken_links(path: pathlib.Path, root: pathlib.Path = ROOT) -> list[str]:
  """One message per relative link of `path` that does not resolve (file, or anchor in it)."""
  problems = []
  text = path.read_text(encoding="utf-8")
  for number, target in links(text):
    if not target or _SCHEME.match(target) or target.startswith("//"):
      continue
    where = f"{path.relative_to(root)}:{number}: ({target})"
    file_part, _, anchor = target.partition("#")
    resolved = (path.parent / file_part).resolve() if file_part else path
    if root.resolve() not in (resolved, *resolved.parents):
      problems.append(f"{where} leaves the repository")
      continue
    if not resolved.exists():
      problems.append(f"{where} {file_part} does not exist")
      continue
    if anchor:
      if resolved.is_dir() or resolved.suffix != ".md":
        problems.append(f"{where} an anchor into a file that is not Markdown")
      elif anchor not in anchors(resolved.read_text(encoding="utf-8")):
        problems.append(f"{where} no heading or id #{anchor} in {resolved.relative_to(root)}")
  return problems


def quickstart_block(readme: str) -> list[str]:
  """The non-blank lines of the first fenced block under the README's '## Quickstart'."""
  lines = readme.splitlines()
  start = next((i for i, line in enumerate(lines) if re.match(r"^##\s+Quickstart\s*$", line)), None)
  if start is None:
    raise AssertionError("README.md has no '## Quickstart' heading")
  block, inside = [], False
  for line in lines[start + 1:]:
    if not inside and line.startswith("#"):
      break
    if _FENCE.match(line):
      if inside:
        return [l for l in block if l.strip()]
      inside = True
      continue
    if inside:
      block.append(line)
  raise AssertionError("README.md's Quickstart section has no complete fenced code block")


def test_doc_files_are_found():
  names = {str(p.relative_to(ROOT)) for p in doc_files()}
  assert {"README.md", "docs/README.md", "experiments/reference/README.md"} <= names
  assert any(name.startswith("docs/results/") for name in names)


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(path):
  problems = broken_links(path)
  assert not problems, "broken links:\n" + "\n".join(problems)


def test_readme_is_short():
  count = len((ROOT / "README.md").read_text(encoding="utf-8").splitlines())
  assert count <= README_MAX_LINES, (
      f"README.md has {count} lines, more than {README_MAX_LINES}: move the detail to docs/.")


def test_readme_quickstart_is_the_two_commands():
  block = quickstart_block((ROOT / "README.md").read_text(encoding="utf-8"))
  assert tuple(block) == QUICKSTART_COMMANDS


# The checker itself, on made-up files: it must find what it claims to check.


def test_slug_follows_github():
  assert slug("Honest vs paper_repro: GANomaly on MNIST") == "honest-vs-paper_repro-ganomaly-on-mnist"
  assert slug("Magnetic tiles, `folder` protocol, 64x64") == "magnetic-tiles-folder-protocol-64x64"
  assert slug("Resume, checks and **corrupt** checkpoints") == "resume-checks-and-corrupt-checkpoints"
  assert slug("Devices: one mesh, many hosts (bfloat16)") == "devices-one-mesh-many-hosts-bfloat16"
  assert slug("A [link](x.md) - and ± sign") == "a-link---and--sign"
  assert slug("Façade 2") == "façade-2"


def test_anchors_number_repeated_headings_and_skip_code():
  text = "# Intro\n## Intro\n```\n# not a heading\n```\n<a id=\"here\"></a>\n### `code` head\n"
  assert anchors(text) == {"intro", "intro-1", "here", "code-head"}


def test_links_found_and_code_skipped():
  text = ("See [a](a.md), ![img](img/x.png) and [b](b.md#part \"title\").\n"
          "`[not](code.md)` and [c](https://example.com)\n"
          "```\n[no](fenced.md)\n```\n[ref]: ref.md\n")
  assert links(text) == [(1, "a.md"), (1, "img/x.png"), (1, "b.md#part"),
                         (2, "https://example.com"), (6, "ref.md")]


def test_broken_links_are_reported(tmp_path):
  (tmp_path / "docs").mkdir()
  (tmp_path / "docs" / "target.md").write_text("# Target\n## Some part\n", encoding="utf-8")
  page = tmp_path / "docs" / "page.md"
  page.write_text("[ok](target.md#some-part) [self](#top) [gone](missing.md)\n"
                  "[bad anchor](target.md#other) [out](../../x.md) [web](https://x.org)\n"
                  "# Top\n", encoding="utf-8")
  problems = broken_links(page, tmp_path)
  assert len(problems) == 3, problems
  assert "missing.md does not exist" in problems[0]
  assert "no heading or id #other" in problems[1]
  assert "leaves the repository" in problems[2]


def test_quickstart_block_is_read_from_its_section():
  readme = "# x\n```\nnot this\n```\n## Quickstart\n\ntext\n```\none\n\ntwo\n```\n"
  assert quickstart_block(readme) == ["one", "two"]
