"""The documentation generator itself: Python source of a web app -> its routes (AST) -> Markdown or HTML.

Plain code with no telemetry: app.py measures it (track_operation, cache_lookup) from the outside.
"""

from __future__ import annotations

import ast
import html
from dataclasses import asdict, dataclass
from string import Template
from typing import Any, Final

#: Decorator attribute names that declare a route, per framework.
ROUTE_DECORATORS: Final = {
    "fastapi": {"get", "post", "put", "patch", "delete", "head", "options"},
    "flask": {"route"},
}
TEMPLATES: Final = {
    "markdown": ("# $title\n\n$routes\n", "- `$method $path` — $summary\n"),
    "html": ("<h1>$title</h1>\n<ul>\n$routes</ul>\n", "<li><code>$method $path</code> $summary</li>\n"),
}


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    summary: str


@dataclass(frozen=True)
class Analysis:
    framework: str
    routes: tuple[Route, ...]
    nodes: int

    def to_json(self) -> dict[str, Any]:
        return {"framework": self.framework, "routes": [asdict(r) for r in self.routes], "nodes": self.nodes}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Analysis:
        return cls(data["framework"], tuple(Route(**r) for r in data["routes"]), data["nodes"])


def analyse(source: str) -> Analysis:
    """Find the routes of a FastAPI or Flask app; raises SyntaxError on invalid Python."""
    tree = ast.parse(source)
    framework, routes = "unknown", []
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for decorator in node.decorator_list:
            if not (isinstance(decorator, ast.Call) and isinstance(decorator.func, ast.Attribute)):
                continue
            name = decorator.func.attr
            found = next((fw for fw, names in ROUTE_DECORATORS.items() if name in names), None)
            if found is None or not decorator.args or not isinstance(decorator.args[0], ast.Constant):
                continue
            framework = found
            method = "GET" if name == "route" else name.upper()
            summary = (ast.get_docstring(node) or node.name).splitlines()[0]
            routes.append(Route(method, str(decorator.args[0].value), summary))
    return Analysis(framework, tuple(routes), sum(1 for _ in ast.walk(tree)))


def render(analysis: Analysis, fmt: str, title: str, templates: dict[str, tuple[Template, Template]]) -> str:
    page, item = templates[fmt]
    escape = html.escape if fmt == "html" else str
    lines = "".join(
        item.substitute(method=r.method, path=escape(r.path), summary=escape(r.summary)) for r in analysis.routes
    )
    return page.substitute(title=escape(title), routes=lines)
