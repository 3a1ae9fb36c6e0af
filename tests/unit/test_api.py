import inspect

import pytest

import es_semantic
from es_semantic.indexing.async_indexer import AsyncIndexer
from es_semantic.indexing.indexer import Indexer
from es_semantic.search.searcher import AsyncSearcher, Searcher


def test_all_matches_public_names():
    public = {n for n in dir(es_semantic) if not n.startswith("_") and n[0].isupper()}
    assert public <= set(es_semantic.__all__)
    for name in es_semantic.__all__:
        assert hasattr(es_semantic, name), name
    for name in ("Encoder", "CrossEncoder", "Indexer", "Searcher", "AsyncSearcher"):
        assert name in es_semantic.__all__


def _public_methods(cls):
    """Public methods and the constructor (inherited ones included)."""
    return {
        n: inspect.signature(m)
        for n, m in inspect.getmembers(cls, inspect.isfunction)
        if not n.startswith("_") or n == "__init__"
    }


@pytest.mark.parametrize(
    ("sync_cls", "async_cls"), [(Searcher, AsyncSearcher), (Indexer, AsyncIndexer)]
)
def test_sync_and_async_twins_have_the_same_api(sync_cls, async_cls):
    sync, async_ = _public_methods(sync_cls), _public_methods(async_cls)
    assert "__init__" in sync and set(sync) == set(async_)
    for name, signature in sync.items():
        assert list(signature.parameters) == list(async_[name].parameters), name
        for param, mine in signature.parameters.items():
            theirs = async_[name].parameters[param]
            assert (mine.kind, mine.default) == (theirs.kind, theirs.default), (name, param)
            if param not in ("es", "self"):  # the client differs: sync vs async
                # the async twin may also take the async form of an iterable
                widened = f"{mine.annotation} | Async{mine.annotation}"
                assert theirs.annotation in (mine.annotation, widened), (name, param)
        assert inspect.iscoroutinefunction(getattr(async_cls, name)) or name == "__init__"


def test_indexer_options_are_explicit_keywords():
    """A misspelt option is a TypeError (and a mypy error), not silently ignored."""
    params = inspect.signature(Indexer).parameters
    assert not any(p.kind is p.VAR_KEYWORD for p in params.values())
    assert {"batch_size", "dead_letter", "chunking", "metadata_fields"} <= set(params)
    with pytest.raises(TypeError, match="batch_szie"):
        Indexer(None, "docs", None, batch_szie=3)


def test_the_parity_check_catches_a_drift():
    class Sync:
        def __init__(self, es, index, *, size: int = 10) -> None: ...
        def search(self, query, *, k: int = 10): ...

    class Async:
        def __init__(self, es, index, *, size: int = 20) -> None: ...
        async def search(self, query, *, k: int = 10): ...

    with pytest.raises(AssertionError):
        test_sync_and_async_twins_have_the_same_api(Sync, Async)


def test_every_lazy_name_is_in_all_and_loads():
    from es_semantic import _WHERE

    assert set(es_semantic.__all__) == {*_WHERE, "__version__"}
    for name in _WHERE:
        assert getattr(es_semantic, name).__name__ == name


def test_lazy_cli_help_lines_match_the_commands():
    """The group lists commands without importing them: its lines must stay true."""
    from es_semantic.cli import COMMANDS, cli

    for name, (_, _, line) in COMMANDS.items():
        command = cli.get_command(None, name)
        assert command is not None and command.name == name
        first_paragraph = " ".join((command.help or "").strip().split("\n\n")[0].split())
        assert first_paragraph == line, name


def test_cli_help_imports_neither_torch_nor_the_client():
    import subprocess
    import sys

    code = (
        "import sys; from es_semantic.cli import main; sys.argv = ['es-semantic', '--help']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('torch', 'transformers', 'elasticsearch') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "Commands:" in out.stdout and out.stdout.strip().endswith("[]")
