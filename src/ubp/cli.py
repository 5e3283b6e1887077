"""The `ubp` command: one sub-command per stage of the flow raw → entry → scores → report."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ubp.layout import TASKS


class UbpError(click.ClickException):
    """A user-facing error: one clear line, exit status 1, no traceback."""


def _fail_cleanly(fn):
    """Turn the package's input errors into one-line CLI errors instead of tracebacks."""
    import functools

    from ubp.config import ConfigError
    from ubp.errors import InputError

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (InputError, ConfigError, FileNotFoundError, KeyError, ValueError) as e:
            raise UbpError(str(e).strip("'\"")) from e

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ubp")
def main() -> None:
    """Universal Behavioral Profiles: event logs in, one vector per user out."""


ENGINE_OPTIONS = [
    click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
                 help="Where the per-shard maps run: here, or on Ray (the cluster at RAY_ADDRESS)."),
    click.option("--ray-runtime-env", default=None,
                 help="Ray runtime_env as JSON (default: $UBP_RAY_RUNTIME_ENV)."),
    click.option("--scratch", default=None,
                 help="Where Ray tasks write per-shard tables; a path or URI every node reaches "
                      "(default: $UBP_SCRATCH, else DIR/input/.ubp-scratch)."),
]


def _engine_options(fn):
    """--engine, --ray-runtime-env and --scratch, turned into one `engines.Engine` argument `engine`."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, engine, ray_runtime_env, scratch, **kwargs):
        from ubp import engines

        return fn(*args, engine=engines.from_env(engine, ray_runtime_env, scratch), **kwargs)

    for option in reversed(ENGINE_OPTIONS):
        wrapper = option(wrapper)
    return wrapper


@main.command()
@click.option("--out", type=click.Path(path_type=Path), required=True, help="World directory to write.")
@click.option("--clients", type=int, default=None, help="Number of users (overrides --scale).")
@click.option("--scale", type=click.Choice(["tiny", "small", "medium", "full"]), default=None)
@click.option("--seed", type=int, default=0, show_default=True)
@_fail_cleanly
def synth(out: Path, clients: int | None, scale: str | None, seed: int) -> None:
    """Generate a synthetic world in the raw challenge layout, with its oracle profile."""
    from ubp.synth.world import generate

    if clients is None and scale is None:
        scale = "small"
    summary = generate(out, n_users=clients, scale=scale, seed=seed, show_progress=sys.stderr.isatty())
    click.echo(summary.describe())


@main.command()
@click.option("--data-dir", type=click.Path(path_type=Path), required=True)
@_fail_cleanly
def prepare(data_dir: Path) -> None:
    """Validate the raw files and write the typed prepared store."""
    from ubp.data.prepare import prepare as run_prepare

    click.echo(run_prepare(data_dir).describe())


@main.command()
@click.option("--data-dir", type=click.Path(path_type=Path), required=True)
@_fail_cleanly
def split(data_dir: Path) -> None:
    """Split into the input window and the train/validation target windows (organisers' rules)."""
    from ubp.data.split import split as run_split

    click.echo(run_split(data_dir).describe())


@main.command()
@click.option("--data-dir", type=click.Path(path_type=Path), required=True)
@click.option("--embeddings-dir", type=click.Path(path_type=Path), required=True)
@click.option("--no-relevant-check", is_flag=True, help="Do not require ids to be a permutation of relevant_clients.npy.")
@_fail_cleanly
def validate(data_dir: Path, embeddings_dir: Path, no_relevant_check: bool) -> None:
    """Check an entry against the challenge rules."""
    from ubp.evaluation.validate import validate_entry

    problems = validate_entry(data_dir, embeddings_dir, relevant_check=not no_relevant_check)
    for p in problems:
        click.echo(p, err=True)
    if problems:
        sys.exit(1)
    click.echo(f"{embeddings_dir}: valid entry")


@main.command()
@click.option("--data-dir", type=click.Path(path_type=Path), required=True)
@click.option("--embeddings-dir", type=click.Path(path_type=Path), required=True)
@click.option("--out", type=click.Path(path_type=Path), required=True)
@click.option("--tasks", multiple=True, type=click.Choice(TASKS), help="Default: all six.")
@click.option("--mode", type=click.Choice(["full", "quick"]), default="quick", show_default=True)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--orders", type=int, default=1, show_default=True, help="Score K times: behaviour-free row order k, network seed 1278+k.")
@click.option("--strict", is_flag=True, help="Relevant clients missing from the entry are an error.")
@_fail_cleanly
def evaluate(data_dir, embeddings_dir, out, tasks, mode, device, orders, strict) -> None:
    """Score an entry on the downstream tasks with the organisers' fixed protocol."""
    from ubp.evaluation.evaluate import evaluate as run_evaluate

    result = run_evaluate(
        data_dir, embeddings_dir, out, tasks=tasks or TASKS, mode=mode, device=device,
        orders=orders, strict=strict, show_progress=sys.stderr.isatty(),
    )
    click.echo(result.describe())


@main.command()
def blocks() -> None:
    """List the registered profile blocks."""
    from ubp.encoders import REGISTRY

    for name in REGISTRY.names():
        click.echo(name)


@main.command()
@click.option("--data-dir", required=True, help="A data folder or an object-store URI (s3://bucket/world).")
@click.option("--blocks", "block_names", required=True, help="Comma-separated block names, e.g. features,counts.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Entry folder to write.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--cache", type=click.Path(path_type=Path), default=None, help="Fitted-block cache (default: OUT/blocks).")
@_fail_cleanly
@_engine_options
def embed(data_dir: str, block_names: str, out: Path, seed: int, device: str, cache: Path | None, engine) -> None:
    """Fit blocks on the input window and write an entry for the relevant clients."""
    from ubp import engines
    from ubp.data.window import InputWindow
    from ubp.encoders.base import Run
    from ubp.pipeline import _device
    from ubp.profile import build_profile
    from ubp.recipe import recipe_for_blocks

    recipe = recipe_for_blocks([b.strip() for b in block_names.split(",") if b.strip()], seed=seed)
    window = InputWindow.open(data_dir)
    run = Run(seed=seed, device=_device(device), show_progress=sys.stderr.isatty())
    with engines.use(engine):
        profile = build_profile(window, recipe, out, cache or out / "blocks", run)
    click.echo(f"{out}: {profile['n_clients']} clients x {profile['width']} columns ({block_names})")


def _run_options(fn):
    """Options shared by `run` and `ablate`, turned into one RunOptions + recipe."""
    import functools

    options = [
        click.option("--data-dir", default=None,
                     help="Raw challenge directory. Default: generate a synthetic world under OUT/world."),
        click.option("--config", type=click.Path(path_type=Path), default=None,
                     help="Profile recipe (TOML). Default: the shipped one."),
        click.option("--out", type=click.Path(path_type=Path), default=Path("runs/default"), show_default=True),
        click.option("--scale", type=click.Choice(["tiny", "small", "medium", "full"]), default="small",
                     show_default=True, help="Size of the generated world when --data-dir is not given."),
        click.option("--world-seed", type=int, default=1, show_default=True),
        click.option("--mode", type=click.Choice(["full", "quick"]), default="quick", show_default=True),
        click.option("--orders", type=int, default=5, show_default=True,
                     help="Score K times: behaviour-free row order k, network seed 1278+k."),
        click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True),
    ]

    @functools.wraps(fn)
    @_engine_options
    def wrapper(data_dir, config, out, scale, world_seed, mode, orders, device, engine):
        import logging

        from ubp import engines
        from ubp.pipeline import RunOptions
        from ubp.recipe import load_recipe

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
        opts = RunOptions(out=out, data_dir=data_dir, scale=scale, world_seed=world_seed, mode=mode,
                          orders=orders, device=device, show_progress=sys.stderr.isatty())
        with engines.use(engine):
            return fn(opts, load_recipe(config))

    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper


@main.command()
@_fail_cleanly
@_run_options
def run(opts, recipe) -> None:
    """The whole job: world → split → blocks → profile → validate → evaluate → report."""
    from ubp.pipeline import run as run_pipeline

    click.echo(f"report: {run_pipeline(opts, recipe)}")


@main.command()
@_fail_cleanly
@_run_options
def ablate(opts, recipe) -> None:
    """Leave-one-block-out (and leave-one-objective-out) scores on the same split."""
    from ubp.ablation import ablate as run_ablation

    click.echo(f"ablation: {run_ablation(opts, recipe)}")

if __name__ == "__main__":
    main()
