"""One design system: colours are defined once, as tokens in app.css's :root."""

from __future__ import annotations

import re
from pathlib import Path

from django.conf import settings

COLOUR = re.compile(r"#[0-9a-fA-F]{3,8}\b|\b(?:rgba?|hsla?)\(")


def test_stylesheets_use_the_colour_tokens_outside_their_definitions():
    css = Path(settings.BASE_DIR) / "static" / "css"
    found = []
    for path in sorted(css.glob("*.css")):
        text = path.read_text()
        if path.name == "app.css":
            # The tokens themselves: the first :root block.
            text = text[text.index("}", text.index(":root")) :]
        found += [
            f"{path.name}: {line.strip()}" for line in text.splitlines() if COLOUR.search(line)
        ]
    assert found == []
