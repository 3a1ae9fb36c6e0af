"""The quickstart corpus (docstrings of the installed Python standard library) and its demo."""

from __future__ import annotations

import importlib
import inspect
import warnings
from collections.abc import Iterator
from typing import Any

# Modules imported for their docstrings: side-effect free, present on every CPython >= 3.10.
STDLIB_MODULES = (
    "abc argparse array ast asyncio base64 bisect bz2 calendar cmath codecs collections "
    "concurrent.futures configparser contextlib copy csv dataclasses datetime decimal difflib "
    "dis email enum fileinput fnmatch fractions ftplib functools gc getpass gettext glob gzip "
    "hashlib heapq hmac html http.client http.server imaplib importlib inspect io ipaddress "
    "itertools json locale logging lzma mailbox math mimetypes multiprocessing numbers operator "
    "os pathlib pickle platform plistlib pprint queue random re sched secrets select selectors "
    "shelve shlex shutil signal smtplib socket socketserver sqlite3 ssl statistics string struct "
    "subprocess sys tarfile tempfile textwrap threading time timeit tokenize trace traceback "
    "types typing unicodedata unittest urllib.parse urllib.request uuid venv warnings weakref "
    "wave xml.etree.ElementTree xml.dom.minidom zipfile zlib zoneinfo collections.abc "
    "email.message email.utils email.mime.text logging.handlers os.path importlib.metadata "
    "urllib.error http.cookies http.cookiejar unittest.mock multiprocessing.pool xml.sax "
    "xml.sax.saxutils json.decoder json.encoder pydoc pdb cProfile pstats cmd code codeop "
    "filecmp graphlib netrc optparse poplib quopri reprlib rlcompleter stat symtable tabnanny "
    "tracemalloc zipapp zipimport compileall py_compile modulefinder runpy sysconfig keyword "
    "token colorsys binascii copyreg doctest"
).split()

DEMO_QUERIES = (
    "how do I read a csv file",
    "run a shell command and capture its output",
    "compress data so it takes less space",
    "generate a secure random token for a password reset",
    "parse command line options",
)


KIND_ORDER = {"module": 0, "class": 1, "function": 2, "method": 3}


def stdlib_documents(limit: int | None = None) -> list[dict[str, Any]]:
    """One document per module, class, function and method docstring (id, title, text, module,
    kind); with ``limit``, modules first, then classes, functions and methods across all
    modules, so that a small corpus still spans the whole library."""
    docs: list[dict[str, Any]] = []
    with warnings.catch_warnings():  # deprecated modules warn on import and attribute access
        warnings.simplefilter("ignore")
        for name in STDLIB_MODULES:
            try:
                module = importlib.import_module(name)
            except ImportError:
                continue
            docs.extend(_module_documents(name, module))
    docs = list({d["id"]: d for d in docs}.values())
    docs.sort(key=lambda d: KIND_ORDER[d["kind"]])
    return docs[:limit] if limit is not None else docs


def _module_documents(name: str, module: Any) -> Iterator[dict[str, Any]]:
    docstring = inspect.getdoc(module)
    if docstring:
        yield _doc(name, name, "module", docstring)
    for attr, value in sorted(vars(module).items()):
        owner = str(getattr(value, "__module__", None))
        if attr.startswith("_") or not (owner == module.__name__ or owner.startswith(name + ".")):
            continue  # defined elsewhere: documented under its own module
        if inspect.isclass(value) or inspect.isfunction(value):
            kind = "class" if inspect.isclass(value) else "function"
            text = inspect.getdoc(value)
            if text and len(text) > 40:
                yield _doc(f"{name}.{attr}", name, kind, text)
            if inspect.isclass(value):
                yield from _method_documents(name, attr, value)


def _method_documents(module: str, cls_name: str, cls: type) -> Iterator[dict[str, Any]]:
    for attr, value in sorted(vars(cls).items()):
        if attr.startswith("_") or not inspect.isfunction(value):
            continue
        text = inspect.getdoc(value)
        if text and len(text) > 40:
            yield _doc(f"{module}.{cls_name}.{attr}", module, "method", text)


def _doc(qualname: str, module: str, kind: str, text: str) -> dict[str, Any]:
    return {"id": qualname, "title": qualname, "text": text[:4000], "module": module, "kind": kind}
