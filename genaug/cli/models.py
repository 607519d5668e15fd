"""`genaug models`: list the model presets, their weight files and whether they are in the cache."""

from __future__ import annotations

import json

import click

from genaug import weights
from genaug.registry import REGISTRY


def _rows() -> list[dict]:
    defaults = {m.default_preset for m in REGISTRY.methods()}
    rows = []
    for preset in REGISTRY.presets():
        rows.append({
            "name": preset.name, "method": preset.method, "default": preset.name in defaults,
            "description": preset.description, "random_init": preset.random_init, **weights.status(preset),
        })
    return rows


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--method", type=str, default=None, help="Only presets of this method (mask, noise).")
def models(as_json: bool, method: str | None) -> None:
    """List model presets with their weight files, cache location and whether the files are present."""
    if method is not None:
        try:
            REGISTRY.method(method)
        except ValueError as err:
            raise click.BadParameter(str(err), param_hint="--method") from err
    rows = [r for r in _rows() if method in (None, r["method"])]
    if as_json:
        click.echo(json.dumps({"home": str(weights.genaug_home()), "presets": rows}, indent=2))
        return
    click.echo(f"weights cache: {weights.genaug_home()}  (set $GENAUG_HOME to move it)")
    for r in rows:
        state = "random weights" if r["random_init"] else ("ready" if r["ready"] else "missing")
        flag = " (default)" if r["default"] else ""
        click.echo(f"\n{r['name']}{flag}  [{r['method']}]  {state}")
        click.echo(f"  {r['description']}")
        for f in r["files"]:
            mark = "present" if f["present"] else "MISSING"
            member = f"  (member {f['archive_member']})" if f["archive_member"] else ""
            click.echo(f"  {mark:8} {f['path']}")
            click.echo(f"           from {f['url']}{member}")
        if r["converted"]:
            click.echo(f"  converted {r['converted']} (used instead of the files above)")
        elif r["convertible"]:
            click.echo(f"  tip: `genaug convert --preset {r['name']}` makes later loads faster")
