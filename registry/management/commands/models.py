"""manage.py models [--model NAME] [--json]: the registered models, their
versions and aliases."""

from mlserving.commands import ScriptableCommand
from registry import selectors

COLUMNS = [
    ("VERSION", "version"),
    ("STATUS", "status"),
    ("SERVES WITH", "serving_runtime"),
    ("FORMAT", "format"),
    ("FEATURES", "n_features"),
    ("ACTIVE", "is_active"),
    ("ALIASES", "aliases"),
]


def model_result(model) -> dict:
    """One model as the command reports it: versions oldest first, each
    with the aliases that point at it, and the model's aliases."""
    aliases = selectors.model_aliases(model=model)
    by_version: dict[str, list[str]] = {}
    for alias, version in aliases.items():
        by_version.setdefault(version, []).append(alias)
    active = selectors.model_version_get_active(model=model)
    return {
        "name": model.name,
        "active_version": active.version if active else None,
        "aliases": aliases,
        "versions": [
            {
                "version": row.version,
                "status": row.status,
                "serving_runtime": row.serving_runtime,
                "format": row.format,
                "n_features": row.n_features,
                "is_active": row.is_active,
                "aliases": by_version.get(row.version, []),
            }
            for row in selectors.model_version_list(model=model)
        ],
    }


def _cell(value) -> str:
    if value is True:
        return "yes"
    if value is False:
        return ""
    if value is None:
        return "-"
    if isinstance(value, list):
        return ", ".join(value) or "-"
    return str(value)


def table(rows: list[dict]) -> list[str]:
    """Aligned lines of COLUMNS for `rows` (version dicts)."""
    cells = [[title for title, _ in COLUMNS]]
    cells += [[_cell(row[key]) for _, key in COLUMNS] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
    return [
        "  ".join(
            cell.ljust(width) for cell, width in zip(line, widths, strict=True)
        ).rstrip()
        for line in cells
    ]


class Command(ScriptableCommand):
    help = (
        "List every registered model (or the one --model names) with its "
        "versions (status, serving runtime, format, features, active) and "
        "its aliases."
    )

    def add_arguments(self, parser):
        parser.add_argument("--model", help="Only this model (3 if unknown).")

    def run(self, *, model=None, **options) -> dict:
        if model:
            models = [selectors.model_get(name=model)]
        else:
            models = [
                selectors.model_get(name=name) for name in selectors.model_names()
            ]
        return {"models": [model_result(m) for m in models]}

    def render(self, result: dict) -> str:
        if not result["models"]:
            return "No registered models."
        blocks = []
        for model in result["models"]:
            aliases = ", ".join(
                f"{alias} -> {version}" for alias, version in model["aliases"].items()
            )
            lines = [f"{model['name']}  (aliases: {aliases or 'none'})"]
            if model["versions"]:
                lines += [f"  {line}" for line in table(model["versions"])]
            else:
                lines.append("  no versions")
            blocks.append("\n".join(lines))
        return "\n\n".join(blocks)
