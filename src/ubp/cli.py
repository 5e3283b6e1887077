"""The `ubp` command: one sub-command per stage of the flow raw → entry → scores → report."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from ubp.layout import REFERENCES, TASKS


class _OneLine(click.ClickException):
    """A user-facing error: one clear line, exit status 1, no traceback."""


def _fail_cleanly(fn):
    """Turn ubp's own errors (`ubp.errors.UbpError`) into one-line CLI errors; anything else is a
    bug in ubp and keeps its traceback."""
    import functools

    from ubp.errors import UbpError

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UbpError as e:
            raise _OneLine(str(e)) from e

    return wrapper


def _logging() -> bool:
    """Progress logs at INFO, from rank 0 only under torchrun (the ranks would repeat each other); True on rank 0."""
    import logging

    main_rank = int(os.environ.get("RANK", "0")) == 0
    logging.basicConfig(level=logging.INFO if main_rank else logging.WARNING, format="%(asctime)s %(message)s",
                        datefmt="%H:%M:%S")
    return main_rank


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ubp")
def main() -> None:
    """Universal Behavioral Profiles: event logs in, one vector per user out."""


@main.command()
@click.option("--out", type=click.Path(path_type=Path), required=True, help="World directory to write.")
@click.option("--clients", type=int, default=None, help="Number of users (overrides --scale).")
@click.option("--scale", type=click.Choice(["tiny", "small", "medium", "full"]), default=None)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--complements", type=float, default=0.0, show_default=True,
              help="Chance that a purchase brings its buyer back a few days later for a session about the "
                   "complement of its category (and so on): sessions that depend on earlier purchases. "
                   "The oracle profile does not model these follow-ups.")
@_fail_cleanly
def synth(out: Path, clients: int | None, scale: str | None, seed: int, complements: float) -> None:
    """Generate a synthetic world in the raw challenge layout, with its oracle profile."""
    from ubp.synth.world import generate

    if clients is None and scale is None:
        scale = "small"
    summary = generate(out, n_users=clients, scale=scale, seed=seed, show_progress=sys.stderr.isatty(),
                       complements=complements)
    click.echo(summary.describe())


_CACHE = click.option("--cache", type=click.Path(path_type=Path), default=None,
                      help="Cache folder (fitted blocks, embedding windows). Default: $UBP_CACHE_DIR or ~/.cache/ubp.")
_DEVICE = click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
_ENGINE_OPTIONS = [
    click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
                 help="Where the per-shard maps run: here, or on Ray (the cluster at RAY_ADDRESS)."),
    click.option("--ray-runtime-env", default=None,
                 help="Ray runtime_env as JSON (default: $UBP_RAY_RUNTIME_ENV)."),
    click.option("--scratch", default=None,
                 help="Where Ray tasks write per-shard tables; a path or URI every node reaches "
                      "(default: $UBP_SCRATCH, else DIR/input/.ubp-scratch)."),
]


def _ENGINE(fn):
    """--engine, --ray-runtime-env and --scratch, turned into one `engines.Engine` argument `engine`."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, engine, ray_runtime_env, scratch, **kwargs):
        from ubp import engines

        return fn(*args, engine=engines.from_env(engine, ray_runtime_env, scratch), **kwargs)

    for option in reversed(_ENGINE_OPTIONS):
        wrapper = option(wrapper)
    return wrapper


_DATA_DIR = click.option("--data-dir", required=True, help="Log folder, or an object-store URI (s3://bucket/world).")


@main.command()
@_DATA_DIR
@click.option("--no-iso-timestamps", is_flag=True, help="Accept only 'YYYY-MM-DD HH:MM:SS' strings and naive datetimes.")
@click.option("--no-price-quantiles", is_flag=True, help="Reject float/decimal prices instead of bucketing them.")
@click.option("--no-hash-string-ids", is_flag=True, help="Reject string ids instead of hashing them to int64.")
@click.option("--no-text-vectors", is_flag=True, help="Reject free-text names/queries instead of embedding them.")
@click.option("--price-edges", type=click.Path(path_type=Path, exists=True, dir_okay=False), default=None,
              help="Bucket float prices with these edges (an earlier store's prepared/price_edges.json).")
@_fail_cleanly
@_ENGINE
def prepare(data_dir: str, no_iso_timestamps: bool, no_price_quantiles: bool, no_hash_string_ids: bool,
            no_text_vectors: bool, price_edges: Path | None, engine) -> None:
    """Validate the raw files (converting a real log's own types) and write the typed prepared store."""
    from ubp import engines
    from ubp.data.conversions import PrepareOptions
    from ubp.data.prepare import prepare as run_prepare

    options = PrepareOptions(iso_timestamps=not no_iso_timestamps, price_quantiles=not no_price_quantiles,
                             hash_string_ids=not no_hash_string_ids, text_vectors=not no_text_vectors,
                             price_edges=price_edges)
    with engines.use(engine):
        click.echo(run_prepare(data_dir, options).describe())


@main.command()
@_DATA_DIR
@_fail_cleanly
@_ENGINE
def split(data_dir: str, engine) -> None:
    """Split into the input window and the train/validation target windows (organisers' rules)."""
    from ubp import engines
    from ubp.data.split import split as run_split
    from ubp.pipeline import split_key, stamp_split

    key = split_key(data_dir)
    with engines.use(engine):
        click.echo(run_split(data_dir).describe())
    stamp_split(data_dir, key)


@main.command()
@_DATA_DIR
@click.option("--embeddings-dir", type=click.Path(path_type=Path), required=True)
@click.option("--no-relevant-check", is_flag=True, help="Do not require ids to be a permutation of relevant_clients.npy.")
@_fail_cleanly
def validate(data_dir: str, embeddings_dir: Path, no_relevant_check: bool) -> None:
    """Check an entry against the challenge rules."""
    from ubp import store
    from ubp.data.prepare import RELEVANT
    from ubp.evaluation.validate import validate_entry

    with store.local_copy(store.resolve(data_dir), [RELEVANT]) as local:
        problems = validate_entry(local, embeddings_dir, relevant_check=not no_relevant_check)
    for p in problems:
        click.echo(p, err=True)
    if problems:
        sys.exit(1)
    click.echo(f"{embeddings_dir}: valid entry")


@main.command()
@_DATA_DIR
@click.option("--embeddings-dir", type=click.Path(path_type=Path), required=True)
@click.option("--out", type=click.Path(path_type=Path), required=True)
@click.option("--tasks", multiple=True, type=click.Choice(TASKS), help="Default: all six.")
@click.option("--mode", type=click.Choice(["full", "quick"]), default="quick", show_default=True)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--orders", type=int, default=1, show_default=True, help="Score K times: behaviour-free row order k, network seed 1278+k.")
@click.option("--strict", is_flag=True, help="Relevant clients missing from the entry are an error.")
@click.option("--task", "user_tasks", multiple=True, metavar="NAME=FILE.parquet",
              help="A task of your own (repeatable), scored beside the built-in ones; see `ubp task-labels`.")
@_fail_cleanly
def evaluate(data_dir, embeddings_dir, out, tasks, mode, device, orders, strict, user_tasks) -> None:
    """Score an entry on the downstream tasks with the organisers' fixed protocol."""
    from ubp import store
    from ubp.evaluation.evaluate import evaluate as run_evaluate
    from ubp.evaluation.user_tasks import user_task_paths
    from ubp.pipeline import evaluation_files

    location = store.resolve(data_dir)
    with store.local_copy(location, evaluation_files(location)) as local:  # a store's targets, copied here
        result = run_evaluate(
            local, embeddings_dir, out, tasks=tasks or TASKS, mode=mode, device=device,
            orders=orders, strict=strict, show_progress=sys.stderr.isatty(),
            user_tasks=user_task_paths(user_tasks, TASKS),
        )
    click.echo(result.describe())


@main.command("task-labels")
@click.option("--data-dir", required=True, help="A prepared data directory (or object-store URI).")
@click.option("--column", type=click.Choice(["sku", "category", "price"]), required=True,
              help="What a purchase is matched on.")
@click.option("--values", required=True, help="Comma-separated values of COLUMN to predict, e.g. 11,22,33.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Task file (parquet) to write.")
@click.option("--days", type=int, default=14, show_default=True, help="Length of each future window.")
@click.option("--cutoff", type=click.DateTime(), default=None,
              help="Start of the train window (default: where `ubp split` starts it, the end of the input window).")
@click.option("--binary", is_flag=True, help="One 0/1 label (bought any of VALUES) per relevant client, "
              "instead of one label per value.")
@_fail_cleanly
def task_labels(data_dir: str, column: str, values: str, out: Path, days: int, cutoff, binary: bool) -> None:
    """Write a task file from the log: purchases of VALUES in the DAYS after the cutoff, then the DAYS after that."""
    import polars as pl

    from ubp import store
    from ubp.data.prepare import RELEVANT, read_prepared
    from ubp.data.split import target_starts
    from ubp.errors import UsageError
    from ubp.evaluation.user_tasks import labels_from_log, write_task_file

    try:
        wanted = [int(v) for v in values.split(",") if v.strip()]
    except ValueError as e:
        raise UsageError(f"--values {values!r}: expected comma-separated integers") from e
    products = read_prepared(data_dir, "product_properties").select("sku", "category", "price")
    buys = read_prepared(data_dir, "product_buy").join(products, on="sku", how="left", suffix="_product")
    buys = buys.select("client_id", "timestamp", pl.col(column).cast(pl.Int64)).collect()
    if cutoff is None:
        cutoff = target_starts(buys["timestamp"].max(), days)[0]
    clients = store.load_npy(store.join(store.resolve(data_dir), RELEVANT)) if binary else None
    rows = labels_from_log(buys, column, wanted, cutoff, days, clients)
    write_task_file(out, rows)
    click.echo(f"{out}: {len(rows)} rows, windows from {cutoff} ({days} days each)")


@main.command()
def blocks() -> None:
    """List every profile block with its description and options (type, default, help)."""
    from ubp.encoders.registry import describe_blocks

    click.echo("\n".join(describe_blocks()))


@main.command()
@click.option("--data-dir", required=True, help="Raw challenge directory (or object-store URI) to fit on.")
@click.option("--config", type=click.Path(path_type=Path), default=None, help="Profile recipe (TOML). Default: the shipped one.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Model folder to write.")
@_CACHE
@_DEVICE
@_fail_cleanly
@_ENGINE
def fit(data_dir: str, config: Path | None, out: Path, cache: Path | None, device: str, engine) -> None:
    """Fit a profile on a log's input window and save it as a model folder (for `ubp embed --model`)."""
    from ubp import distributed, engines
    from ubp.cache import cache_root
    from ubp.encoders.base import Run
    from ubp.pipeline import shared_split
    from ubp.profile import build_profile
    from ubp.recipe import load_recipe

    main_rank = _logging()
    recipe = load_recipe(config)
    with distributed.session(device) as here, engines.use(engine):
        window = shared_split(data_dir)
        run = Run(seed=recipe.seed, device=str(here), show_progress=sys.stderr.isatty() and main_rank)
        profile = build_profile(window, recipe, None, cache_root(cache) / "blocks", run, model_dir=out)
    if main_rank:
            click.echo(f"{out}: model of {profile['width']} columns fitted on {profile['n_clients']:,} clients "
                   f"(window before {window.cutoff}); cached blocks: {', '.join(profile['cached_blocks']) or 'none'}")


@main.command()
@click.option("--data-dir", required=True,
              help="Log in the challenge layout: a folder or an object-store URI (s3://bucket/world).")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Entry folder to write.")
@click.option("--model", type=click.Path(path_type=Path), default=None,
              help="A fitted profile (ubp fit / RUN/model): applied without refitting.")
@click.option("--as-of", "as_of", type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S.%f"]), default=None,
              help="With --model: embed from the events before this date only. Default: midnight after the last event.")
@click.option("--clients", type=click.Path(path_type=Path), default=None,
              help="With --model: .npy of client ids to embed. Default: the log's input/relevant_clients.npy.")
@click.option("--format", "fmt", type=click.Choice(["npy", "parquet"]), default="npy", show_default=True,
              help="npy: the challenge entry (float16); parquet: client_id + the columns.")
@click.option("--dtype", type=click.Choice(["float16", "float32"]), default="float32", show_default=True, help="Parquet values.")
@click.option("--columns", "layout", type=click.Choice(["list", "named"]), default="list", show_default=True,
              help="Parquet: one fixed-size list column `embedding`, or one named column per dimension.")
@click.option("--config", type=click.Path(path_type=Path), default=None,
              help="Without --model: fit this recipe (TOML) here, as `ubp run` does.")
@click.option("--blocks", "block_names", default=None, help="Without --model: fit these blocks (comma-separated) here.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the fit (--blocks).")
@_CACHE
@_DEVICE
@_fail_cleanly
@_ENGINE
def embed(data_dir: str, out: Path, model: Path | None, as_of, clients: Path | None, fmt: str, dtype: str, layout: str,
          config: Path | None, block_names: str | None, seed: int, cache: Path | None, device: str, engine) -> None:
    """Embed clients: with --model, a saved profile applied to any log at any date; with --config
    (a recipe) or --blocks, blocks fitted on the log's input window.

    Fitting here runs under `torchrun --nproc_per_node N -m ubp embed …` too: the processes train
    together (DDP) and each embeds a share of the clients; rank 0 writes.
    """
    from ubp import distributed, engines, store
    from ubp.cache import cache_root
    from ubp.errors import UsageError

    if sum(x is not None for x in (model, config, block_names)) != 1:
        raise UsageError("give exactly one of --model (apply a saved profile), --config (fit a recipe here) "
                         "and --blocks (fit blocks here)")
    main_rank = _logging()
    if model is not None:
        from ubp.embedding import embed_with_model

        with engines.use(engine):
            summary = embed_with_model(model, store.resolve(data_dir), out, cache_root(cache), as_of,
                                       clients, fmt, dtype, layout)
        click.echo(summary.describe())
        return
    if as_of is not None or clients is not None or fmt != "npy":
        raise UsageError("--as-of, --clients and --format go with --model; --config / --blocks fit and embed the input window")
    from ubp.encoders.base import Run
    from ubp.pipeline import shared_split
    from ubp.profile import build_profile
    from ubp.recipe import load_recipe, recipe_for_blocks

    if config is not None:
        recipe = load_recipe(config)
    else:
        recipe = recipe_for_blocks([b.strip() for b in block_names.split(",") if b.strip()], seed=seed)
    with distributed.session(device) as here, engines.use(engine):
        window = shared_split(data_dir)
        run = Run(seed=recipe.seed, device=str(here), show_progress=sys.stderr.isatty() and main_rank)
        profile = build_profile(window, recipe, out, cache_root(cache) / "blocks", run)
    if main_rank:
        names = ",".join(b.name for b in recipe.blocks)
        click.echo(f"{out}: {profile['n_clients']} clients x {profile['width']} columns ({names})")


@main.command()
@click.option("--entry", "entry_dir", type=click.Path(path_type=Path), required=True, help="Entry folder (npy or parquet).")
@click.option("--client", "client_id", type=int, default=None, help="One client id.")
@click.option("--clients", type=click.Path(path_type=Path), default=None, help=".npy of client ids.")
@click.option("-k", type=int, default=10, show_default=True, help="Neighbours per client.")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Write the neighbours as parquet here instead of printing.")
@_fail_cleanly
def similar(entry_dir: Path, client_id: int | None, clients: Path | None, k: int, out: Path | None) -> None:
    """Cosine nearest neighbours of clients in an entry (faiss; the index is saved beside the entry)."""
    import numpy as np

    from ubp.errors import UsageError
    from ubp.neighbours import neighbours

    if (client_id is None) == (clients is None):
        raise UsageError("give exactly one of --client ID and --clients FILE")
    if client_id is not None:
        ids = np.array([client_id], dtype=np.int64)
    else:
        from ubp.data.raw import read_relevant_clients

        ids = read_relevant_clients(clients)
    table = neighbours(entry_dir, ids, k)
    if out is not None:
        from ubp.io import write_with

        write_with(out, table.write_parquet)
        click.echo(f"{out}: {len(table):,} rows (client_id, rank, neighbour_id, similarity)")
    else:
        click.echo(table.write_csv(separator="\t"), nl=False)


@main.group()
def cache() -> None:
    """Show and free the cache (fitted blocks, embedding windows)."""


@cache.command("list")
@_CACHE
def cache_list(cache: Path | None) -> None:
    """Every cache entry: size, last use, what made it."""
    from ubp.cache import cache_root, entries

    root = cache_root(cache)
    found = entries(root)
    for e in found:
        click.echo(e.describe())
    click.echo(f"{root}: {len(found)} entries, {sum(e.size for e in found) / 2**20:.1f} MiB")


@cache.command("clear")
@click.option("--older-than", "older_than", default=None, help="Only entries unused for this long: 90s, 30m, 12h, 7d.")
@_CACHE
@_fail_cleanly
def cache_clear(older_than: str | None, cache: Path | None) -> None:
    """Remove cache entries (all, or those unused for --older-than)."""
    from ubp.cache import cache_root, clear, parse_age

    root = cache_root(cache)
    removed = clear(root, parse_age(older_than) if older_than else None)
    click.echo(f"{root}: removed {len(removed)} entries, {sum(e.size for e in removed) / 2**20:.1f} MiB")


def _run_options(fn):
    """Options shared by `run` and `ablate`, turned into one RunOptions + recipe."""
    import functools

    options = [
        click.option("--data-dir", default=None,
                     help="Raw challenge directory or object-store URI (s3://bucket/world). "
                          "Default: generate a synthetic world under OUT/world."),
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
        click.option("--references", default=",".join(REFERENCES), show_default=True,
                     help="Reference entries scored beside the profile (comma-separated; empty for none)."),
        _ENGINE,
        _CACHE,
        click.option("--task", "user_tasks", multiple=True, metavar="NAME=FILE.parquet",
                     help="A task of your own (repeatable), scored beside the built-in ones; see `ubp task-labels`."),
    ]

    @functools.wraps(fn)
    def wrapper(data_dir, config, out, scale, world_seed, mode, orders, device, references, engine, cache, user_tasks):
        from ubp.recipe import load_recipe

        recipe = load_recipe(config)  # checked before anything heavy is imported or any file written
        chosen = tuple(r for r in references.split(",") if r)
        if unknown := sorted(set(chosen) - set(REFERENCES)):
            from ubp.errors import UsageError

            raise UsageError(f"unknown reference {unknown[0]!r} in --references; choose from {', '.join(REFERENCES)}")

        from ubp import distributed, engines
        from ubp.evaluation.user_tasks import user_task_paths
        from ubp.pipeline import RunOptions

        main_rank = _logging()
        opts = RunOptions(out=out, data_dir=data_dir, scale=scale, world_seed=world_seed, mode=mode,
                          orders=orders, device=device, references=chosen, cache=cache,
                          show_progress=sys.stderr.isatty() and main_rank, user_tasks=tuple(user_task_paths(user_tasks, TASKS).items()))
        with distributed.session(device), engines.use(engine):
            return fn(opts, recipe)

    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper


@main.command()
@_fail_cleanly
@_run_options
def run(opts, recipe) -> None:
    """The whole job: world → split → blocks → profile → validate → evaluate → report."""
    from ubp import distributed
    from ubp.pipeline import run as run_pipeline
    from ubp.report import run_summary

    report = run_pipeline(opts, recipe)
    if distributed.is_main():
        click.echo(run_summary(report.parent))
        click.echo(f"report: {report}")


@main.command()
@_fail_cleanly
@_run_options
def ablate(opts, recipe) -> None:
    """Leave-one-block-out (and leave-one-objective-out) scores on the same split."""
    from ubp import distributed
    from ubp.ablation import ablate as run_ablation

    report = run_ablation(opts, recipe)
    if distributed.is_main():
        click.echo(f"ablation: {report}")

if __name__ == "__main__":
    main()
