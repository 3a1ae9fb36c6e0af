"""Where an indexing run writes: the index created from an encoder's config, or the existing
one's contract checked against it; the concrete index behind an alias; the vector format the
cluster takes. Steps (``calls``), shared by both indexers and the Ray driver."""

from __future__ import annotations

from es_semantic.cluster import ClusterInfo
from es_semantic.config import EncoderConfig
from es_semantic.elastic.calls import Call, Steps
from es_semantic.errors import ConfigError, IndexContractError
from es_semantic.indexing.actions import VectorFormat
from es_semantic.indexing.admin import (
    add_metadata_field_steps,
    create_index_steps,
    read_contract_steps,
    resolve_write_index_steps,
)
from es_semantic.indexing.options import DUPLICATE_FIELD, IndexOptions
from es_semantic.indexing.readers import FieldSpec
from es_semantic.schema.contract import IndexContract, SparseLeg


class IndexSetup:
    """The index a run writes to, made ready once by :meth:`steps`."""

    def __init__(self, index: str, config: EncoderConfig, options: IndexOptions) -> None:
        self.index, self.config, self.options = index, config, options
        self.contract: IndexContract | None = None
        self.created = False  # made by this run: nothing in it to skip
        self.target = index  # the concrete index written to (the alias's, once resolved)
        fmt = options.vector_format
        self.vector_format: VectorFormat = "json" if fmt == "auto" else fmt  # type: ignore[assignment]

    def steps(self) -> Steps[IndexContract]:
        """Create the index from the encoder's contract, or check the existing one's (and
        write to the concrete index behind an alias)."""
        if self.contract is not None:
            return self.contract
        if self.options.vector_format != "json":
            self.vector_format = yield from self._vector_format_steps()
        exists = (yield Call("indices.exists", {"index": self.index})).raise_for_error()
        if exists:
            contract = self._accept((yield from read_contract_steps(self.index)))
            self.target = yield from resolve_write_index_steps(self.index)
            if self.options.flags_duplicates:
                contract = yield from add_metadata_field_steps(
                    self.target, contract, DUPLICATE_FIELD, "keyword"
                )
        else:
            spec, leg = self.options.sparse_spec(), None
            if spec is not None:
                leg = SparseLeg.from_model(spec, max_active_dims=self._active_dims(),
                                           **self.options.sparse_leg)  # fmt: skip
            contract = IndexContract.from_encoder(
                self.config, sparse=leg, **self.options.contract_options()
            )
            self.created = yield from create_index_steps(self.index, contract)
        self.contract = contract
        return contract

    def _accept_sparse(self, contract: IndexContract) -> None:
        """Documents of an index with a sparse leg carry its vectors, made by its model."""
        spec = self.options.sparse_spec()
        if contract.sparse is not None and spec is None:
            raise IndexContractError(
                f"index {self.index!r} has a sparse leg ({contract.sparse.model_name}): its "
                "documents need sparse vectors too; pass --sparse-model (Python: "
                "sparse_encoder=) with that model"
            )
        if contract.sparse is None and spec is not None:
            raise IndexContractError(
                f"index {self.index!r} has no sparse leg: create a new index with "
                "--sparse-model (or index without it)"
            )
        if contract.sparse is not None:
            contract.sparse.check(spec, self.index, for_indexing=True,
                                  max_active_dims=self._active_dims())  # fmt: skip

    def spec(self) -> FieldSpec:
        """Which input fields are id, text and metadata (after :meth:`steps`)."""
        assert self.contract is not None, "IndexSetup.steps() first"
        contract = self.contract
        return FieldSpec(self.options.id_field, contract.text_fields,
                         tuple(contract.metadata_fields), contract.image_field)  # fmt: skip

    def _vector_format_steps(self) -> Steps[VectorFormat]:
        info = (yield Call("info")).raise_for_error()
        cluster = ClusterInfo.from_responses(info, None)
        if cluster.accepts_base64_vectors:
            return "base64"
        if self.options.vector_format == "base64":
            raise ConfigError(
                f"vector_format='base64' needs Elasticsearch 9.3 or later; the cluster is "
                f"{cluster.number}: use 'auto' or 'json'"
            )
        return "json"

    def _active_dims(self) -> int | None:
        sparse = self.options.sparse_encoder
        if sparse is not None:
            return sparse.max_active_dims  # type: ignore[no-any-return]
        return self.options.sparse_options.get("max_active_dims")

    def _accept(self, contract: IndexContract) -> IndexContract:
        contract.check(self.config, self.index, for_indexing=True)
        self._accept_sparse(contract)
        wanted, text_fields = self.options.chunking, self.options.text_fields
        if wanted is not None and wanted != contract.chunking:
            raise ConfigError(
                f"index {self.index!r} has chunking {contract.chunking!r}, not {wanted!r}: "
                "index into a new index, or convert this one with `es-semantic migrate`"
            )
        image_field = self.options.image_field
        if image_field is not None and image_field != contract.image_field:
            where = (f"keeps its images' paths in {contract.image_field!r}, not {image_field!r}"
                     if contract.image_field else "holds texts, not images")  # fmt: skip
            raise ConfigError(
                f"index {self.index!r} {where}: index into a new index, or drop --image-field"
            )
        if text_fields and text_fields != contract.text_fields:
            raise ConfigError(
                f"index {self.index!r} has text fields {list(contract.text_fields)}; "
                f"--text-field asked for {list(text_fields)}"
            )
        return contract
