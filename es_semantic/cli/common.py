"""What every command shares: connection/model options, error handling, output helpers."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import click

from es_semantic.config import ESConfig, load_config_file
from es_semantic.errors import ConfigError, EsSemanticError, InputError
from es_semantic.indexing.readers import BadLine, json_lines
from es_semantic.redact import RedactingFilter, redact

if TYPE_CHECKING:
    from elasticsearch import Elasticsearch

    from es_semantic.encoding.encoder import Encoder
    from es_semantic.encoding.reranker import CrossEncoder

F = TypeVar("F", bound=Callable[..., Any])
USAGE_ERRORS = (ConfigError, InputError)
BACKEND_CHOICES = ("auto", "torch", "onnx", "openvino")
PRECISION_CHOICES = ("auto", "float32", "bfloat16", "float16")

CONNECTION_OPTIONS: list[tuple[tuple[str, ...], dict[str, Any]]] = [
    (("--es-url",), {"help": "Elasticsearch URL [env ES_URL; default http://localhost:9200]"}),
    (("--api-key",), {"help": "API key (encoded) [env ES_API_KEY]"}),
    (("--username",), {"help": "basic-auth user [env ES_USERNAME]"}),
    (("--password",), {"help": "basic-auth password [env ES_PASSWORD]"}),
    (("--bearer-token",), {"help": "bearer token [env ES_BEARER_TOKEN]"}),
    (("--ca-certs",), {"help": "CA bundle for TLS [env ES_CA_CERTS]", "type": click.Path()}),
    (("--ssl-fingerprint",), {"help": "pin the server certificate [env ES_SSL_FINGERPRINT]"}),
    (("--cloud-id",), {"help": "Elastic Cloud id [env ES_CLOUD_ID]"}),
    (
        ("--model",),
        {
            "help": "model folder or hub id [env ES_SEMANTIC_MODEL; default: packaged "
            "all-MiniLM-L6-v2 from the 'models' extra]"
        },
    ),
    (
        ("--backend",),
        {
            "type": click.Choice(BACKEND_CHOICES),
            "help": "how the model runs: auto (the fastest installed at the precision), torch, "
            "onnx (ONNX Runtime) or openvino; the last two export the model once into a cache "
            "[env ES_SEMANTIC_BACKEND; default auto]",
        },
    ),
    (
        ("--precision",),
        {
            "type": click.Choice(PRECISION_CHOICES),
            "help": "auto: float16 on CUDA, bfloat16 on a CPU with native bf16 where it holds "
            "cosine 0.9999 to float32 (measured once per model and CPU), else float32; float32 "
            "gives exact vectors. `info` names what ran [env ES_SEMANTIC_PRECISION; default auto]",
        },
    ),
    (
        ("--device",),
        {"help": "cpu, cuda, cuda:1, mps [env ES_SEMANTIC_DEVICE; default: a GPU when present]"},
    ),
    (
        ("--quantize",),
        {
            "type": click.Choice(["none", "int8", "int8-dynamic", "int8-static"]),
            "help": "int8 encoding on CPU: int8 (torch), int8-dynamic or int8-static (onnx, "
            "openvino); the accuracy loss is printed when built [default none]",
        },
    ),
    (
        ("--calibration",),
        {
            "type": click.Path(dir_okay=False),
            "help": "text file (one text a line) or JSONL (a 'text' field) of your own texts "
            "to calibrate and check a quantised build, needed the first time",
        },
    ),
    (
        ("--force-quantized",),
        {"is_flag": True, "default": None, "help": "use a quantised build below min cosine"},
    ),
    (
        ("--config",),
        {
            "help": "TOML file with an [elasticsearch] table [env ES_SEMANTIC_CONFIG]",
            "type": click.Path(dir_okay=False),
        },
    ),
    (("--debug",), {"is_flag": True, "default": None, "help": "tracebacks and request logging"}),
]


@dataclass
class Settings:
    """Connection and model settings merged from group options, command options and env."""

    values: dict[str, Any] = field(default_factory=dict)
    _files: dict[str, dict[str, Any]] = field(default_factory=dict)  # read once per invocation

    def merge(self, options: dict[str, Any]) -> None:
        self.values.update({k: v for k, v in options.items() if v is not None})

    @property
    def debug(self) -> bool:
        return bool(self.values.get("debug"))

    def file_values(self) -> dict[str, Any]:
        path = self.values.get("config") or os.environ.get("ES_SEMANTIC_CONFIG")
        if not path:
            return {}
        if path not in self._files:
            self._files[path] = load_config_file(path)
        return self._files[path]

    def es_config(self) -> ESConfig:
        v = self.values
        file_values = {k: x for k, x in self.file_values().items() if k != "model"}
        return ESConfig.from_env(
            file_values=file_values,
            url=v.get("es_url"),
            api_key=v.get("api_key"),
            bearer_token=v.get("bearer_token"),
            ssl_fingerprint=v.get("ssl_fingerprint"),
            username=v.get("username"),
            password=v.get("password"),
            ca_certs=v.get("ca_certs"),
            cloud_id=v.get("cloud_id"),
        )

    def model(self) -> str | None:
        return (
            self.values.get("model")
            or os.environ.get("ES_SEMANTIC_MODEL")
            or self.file_values().get("model")
            or None
        )

    def secrets(self) -> list[str]:
        try:
            return self.es_config().secrets()
        except ConfigError:
            keys = ("api_key", "password", "bearer_token")
            return [s for s in (self.values.get(k) for k in keys) if s]


def connection_options(func: F) -> F:
    """Add the connection/model options to a command or the group."""
    for names, kwargs in reversed(CONNECTION_OPTIONS):
        func = click.option(*names, **kwargs)(func)
    return func


def settings(ctx: click.Context, options: dict[str, Any]) -> Settings:
    """The merged settings for this invocation (command options override group options)."""
    root = ctx.find_root()
    state: Settings = root.obj if isinstance(root.obj, Settings) else Settings()
    root.obj = state
    state.merge({k: options.pop(k) for k in list(options) if k in _OPTION_KEYS})
    _configure_logging(state)
    return state


_OPTION_KEYS = {names[0].lstrip("-").replace("-", "_") for names, _ in CONNECTION_OPTIONS}


def _configure_logging(state: Settings) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter(state.secrets()))
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if state.debug else logging.WARNING)
    if not state.debug:
        logging.getLogger("elastic_transport").setLevel(logging.ERROR)
        _quiet_transformers()


def _quiet_transformers() -> None:
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    except ImportError:  # pragma: no cover - transformers is a dependency
        pass


def client(state: Settings) -> Elasticsearch:
    """A checked client (the Elasticsearch client loads here, not when the CLI starts)."""
    from es_semantic.elastic.client import make_client

    return make_client(state.es_config())


def encoder(state: Settings) -> Encoder:
    """The model of ``--model`` with the backend, device and quantisation options (torch loads
    here, not when the CLI starts)."""
    from es_semantic.encoding.encoder import Encoder
    from es_semantic.encoding.images import ImageEncoder, is_clip_folder

    model = state.model()
    if model is not None and is_clip_folder(model):  # a CLIP model: texts and images (#32)
        return ImageEncoder(model)  # type: ignore[return-value]
    return Encoder(state.model(), **model_options(state))


def say_int8_hint(state: Settings, enc: Encoder | None = None) -> None:
    """One line on stderr where this machine's cache holds an int8 build of the model that met
    the accuracy goal on this CPU (``index`` and ``serve``, #35): read from the builds'
    records, nothing built or measured. ``enc``: the loaded encoder, else described."""
    from es_semantic.encoding.device import cpu_info, pick_device
    from es_semantic.encoding.encoder import describe_encoder
    from es_semantic.encoding.images import is_clip_folder
    from es_semantic.encoding.int8_hint import int8_hint

    if enc is None:
        if (state.values.get("quantize") or "none") != "none" or is_clip_folder(state.model()):
            return
        options = model_options(state)
        config = describe_encoder(state.model(), **options)
        on_cpu = pick_device(options["device"]).type == "cpu"
    else:
        device = getattr(enc, "device", None)  # a CLIP model's ImageEncoder has none
        config, on_cpu = enc.config, device is not None and device.type == "cpu"
    hint = int8_hint(config, cpu_info(), on_cpu=on_cpu)
    if hint:
        _to_stderr(hint)


def cross_encoder(state: Settings, model: str) -> CrossEncoder:
    """A reranker on the same backend and device as the encoder."""
    from es_semantic.encoding.reranker import CrossEncoder

    options = model_options(state)
    return CrossEncoder(model, backend=options["backend"], device=options["device"],
                        precision=options["precision"], report=_to_stderr)  # fmt: skip


def model_options(state: Settings) -> dict[str, Any]:
    """Backend, precision, device and quantisation options for Encoder (backend, precision and
    device for CrossEncoder)."""
    v = state.values
    options: dict[str, Any] = {
        "backend": _env_choice(v.get("backend"), "ES_SEMANTIC_BACKEND", BACKEND_CHOICES),
        "precision": _env_choice(v.get("precision"), "ES_SEMANTIC_PRECISION", PRECISION_CHOICES),
        "device": v.get("device") or os.environ.get("ES_SEMANTIC_DEVICE") or None,
        "quantize": v.get("quantize") or "none",
        "force_quantized": bool(v.get("force_quantized")),
    }
    if v.get("calibration"):
        options["calibration_texts"] = read_sample_texts(v["calibration"])
    return options


def _env_choice(given: str | None, variable: str, choices: tuple[str, ...]) -> str:
    """The option, else the environment variable (checked: one line naming it), else auto."""
    if given:
        return given
    value = os.environ.get(variable, "").strip()
    if value and value not in choices:
        raise ConfigError(f"{variable}={value!r} is not one of {', '.join(choices)}")
    return value or "auto"


def _to_stderr(message: str) -> None:
    click.echo(message, err=True)


def read_sample_texts(path: str, limit: int = 1000) -> list[str]:
    """Up to ``limit`` texts from a text file (one a line) or JSONL (``text``/``title``)."""
    texts: list[str] = []
    try:
        with open(path, "rb") as handle:
            for number, value in json_lines(handle, text_lines=True):
                texts.append(_sample_text(value, path, number))
                if len(texts) >= limit:
                    break
    except OSError as exc:
        raise InputError(f"cannot read the calibration file {path}: {exc.strerror}") from None
    return texts


def _sample_text(value: Any, path: str, number: int) -> str:
    """A calibration line's text: the line itself, or a JSON line's title and text."""
    if isinstance(value, BadLine):
        wrong = f"not valid JSON ({value.message})" if value.column is not None else value.reason
        raise InputError(f"{path}:{number}: {wrong}")
    if isinstance(value, str):
        return value.strip()
    text = " ".join(str(value[k]) for k in ("title", "text") if value.get(k)).strip()
    if not text:
        raise InputError(f"{path}:{number}: a JSON line needs a 'text' (or 'title') field")
    return text


def handle_errors(func: F) -> F:
    """One line on stderr and exit 1 (runtime) or 2 (usage); full traceback with --debug."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        try:
            return func(*args, **kwargs)
        except EsSemanticError as exc:
            _fail(ctx, exc, 2 if isinstance(exc, USAGE_ERRORS) else 1)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)
        except click.exceptions.Exit:
            raise
        except click.ClickException:
            raise
        except Exception as exc:  # last resort: still one line, never a secret
            _fail(ctx, exc, 1)

    return wrapper  # type: ignore[return-value]


def _fail(ctx: click.Context, exc: BaseException, code: int) -> None:
    state = ctx.find_root().obj if isinstance(ctx.find_root().obj, Settings) else Settings()
    secrets = state.secrets()
    if state.debug:
        click.echo(redact(traceback.format_exc(), secrets), err=True)
    message = str(exc) if isinstance(exc, EsSemanticError) else f"{type(exc).__name__}: {exc}"
    click.echo(f"error: {redact(message, secrets)}", err=True)
    ctx.exit(code)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised as Ctrl-C is: ``handle_errors`` reports it as "interrupted" (exit 130)."""


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """While inside, SIGTERM raises :class:`Terminated` (a ``KeyboardInterrupt``) in the main
    thread, so the cleanup a command does on Ctrl-C (``finally``, ``except BaseException``)
    runs on ``kill``, ``docker stop`` or a Kubernetes shutdown too. The previous handler is
    restored on leaving. Outside the main thread (where Python delivers no signals): no change.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise Terminated(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
