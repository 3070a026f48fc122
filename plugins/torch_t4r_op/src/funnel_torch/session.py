"""Session-based next-item models for users leaving Transformers4Rec (extra ``funnel-torch[session]``).

The names and defaults of the Transformers4Rec API the session example uses::

    from funnel_torch import session as tr

    input_module = tr.TabularSequenceFeatures.from_schema(
        schema, max_sequence_length=20, continuous_projection=64, aggregation="concat",
        d_output=64, masking="mlm")
    prediction_task = tr.NextItemPredictionTask(hf_format=True, weight_tying=True)
    transformer_config = tr.XLNetConfig.build(d_model=64, n_head=4, n_layer=2, total_seq_length=20)
    model = transformer_config.to_torch_model(input_module, prediction_task)

    tr.fit(model, train_sessions, epochs=5)                   # tqdm progress bars
    tr.evaluate(model, test_sessions, ks=(10, 20))            # recall@k / ndcg@k, full ranking
    path = tr.export(model, "model.pt")                       # TorchScript (or .pt2: torch.export)
    op = tr.predict_op(model, path, top_k=20)                 # a funnel PredictPyTorch

``schema`` is a funnel Schema: list columns tagged ``item_id`` (one), ``categorical`` (with a
``cardinality`` property, or ``domain.max``) and ``continuous`` (what funnel-workflow writes).
Sessions are a funnel Table (or dict) of those list columns as Ragged lists. The transformer
body is Hugging Face ``transformers`` built from a config (nothing is downloaded).
``total_seq_length`` is the longest session the transformer takes: required for BERT and GPT-2
(their position embeddings), optional for XLNet, and never below the input block's
``max_sequence_length`` (``to_torch_model`` says so).

Masked-LM models predict at a [MASK] **appended after the last item** at inference, the way
Transformers4Rec evaluates them (feeding the raw sequence scores worse: the "parity trap");
the exported model does the same, so served scores equal :func:`evaluate`'s. Causal-LM
models predict from the last item's position. Item id 0 is padding.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, NamedTuple, Self

import numpy as np
import torch
from funnel.errors import SchemaError
from funnel.schema import Schema
from funnel.table import Ragged

__all__ = [
    "TabularSequenceFeatures",
    "NextItemPredictionTask",
    "XLNetConfig",
    "BertConfig",
    "GPT2Config",
    "SessionModel",
    "pad_sessions",
    "fit",
    "evaluate",
    "popularity_baseline",
    "export",
    "predict_op",
]


def _transformers() -> Any:
    try:
        import transformers  # noqa: PLC0415
    except ImportError as exc:
        raise ImportError(
            "funnel_torch.session needs Hugging Face transformers: pip install 'funnel-torch[session]'"
        ) from exc
    return transformers


def _cardinality(col: Any) -> int:
    props = col.properties
    if props.get("cardinality"):
        return int(props["cardinality"])
    domain = props.get("domain") or props.get("int_domain")
    if isinstance(domain, Mapping) and domain.get("max") is not None:
        return int(domain["max"]) + 1
    raise SchemaError(
        f"TabularSequenceFeatures: categorical column {col.name!r} has no 'cardinality' property (or domain.max); "
        "funnel-workflow's Categorify writes it; add it with col.with_properties({'cardinality': n})"
    )


def pad_sessions(data: Any, columns: Sequence[str], max_sequence_length: int, truncate: str = "last") -> dict[str, np.ndarray]:
    """List columns (Ragged or lists) as (B, max_sequence_length) arrays, right-padded with 0.

    Sessions longer than the length keep their last items (``truncate="last"``) or their
    first (``"first"``); ``"error"`` refuses them.
    """
    if truncate not in ("last", "first", "error"):  # any other word used to keep the first items
        raise SchemaError(f"pad_sessions: truncate={truncate!r} must be 'last', 'first' or 'error'")
    out: dict[str, np.ndarray] = {}
    for name in columns:
        col = data[name]
        rag = col if isinstance(col, Ragged) else Ragged.from_lists(col)
        values, offsets = np.asarray(rag.values), np.asarray(rag.offsets).astype(np.int64)
        lengths = np.diff(offsets)
        if lengths.max(initial=0) > max_sequence_length:
            if truncate == "error":
                raise SchemaError(f"column {name!r} has sessions longer than max_sequence_length={max_sequence_length}")
            starts = np.maximum(offsets[1:] - max_sequence_length, offsets[:-1]) if truncate == "last" else offsets[:-1]
            lengths = np.minimum(lengths, max_sequence_length)
        else:
            starts = offsets[:-1]
        rows = np.repeat(np.arange(lengths.size), lengths)
        pos = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        arr = np.zeros((lengths.size, max_sequence_length), dtype=values.dtype)
        arr[rows, pos] = values[np.repeat(starts, lengths) + pos]
        out[name] = arr
    return out


class TabularSequenceFeatures(torch.nn.Module):
    """Embeds the list columns of a session and aggregates them per position.

    Categorical columns → embeddings (``embedding_dim_default``); continuous columns →
    ``continuous_projection`` (a linear layer over the stacked values); ``aggregation="concat"``
    then a linear projection to ``d_output``. ``masking`` is ``"mlm"`` or ``"clm"``.
    """

    def __init__(
        self,
        categorical: Sequence[tuple[str, int]],
        continuous: Sequence[str],
        item_id: str,
        max_sequence_length: int,
        continuous_projection: int | None = 64,
        aggregation: str = "concat",
        d_output: int | None = None,
        masking: str | None = "mlm",
        embedding_dim_default: int = 64,
        mlm_probability: float = 0.15,
    ) -> None:
        super().__init__()
        if aggregation != "concat":
            raise SchemaError(f"TabularSequenceFeatures: aggregation={aggregation!r}; only 'concat' is supported")
        if masking not in ("mlm", "clm"):
            raise SchemaError(f"TabularSequenceFeatures: masking={masking!r} must be 'mlm' or 'clm'")
        self.categorical = [name for name, _ in categorical]
        self.cardinalities = {name: card for name, card in categorical}
        self.continuous = list(continuous)
        self.item_id = item_id
        self.max_sequence_length = int(max_sequence_length)
        self.masking = masking
        self.mlm_probability = float(mlm_probability)
        self.embeddings = torch.nn.ModuleDict(
            {_key(n): torch.nn.Embedding(card, embedding_dim_default, padding_idx=0) for n, card in categorical}
        )
        for emb in self.embeddings.values():  # Transformers4Rec's default: normal(0, 0.05)
            torch.nn.init.normal_(emb.weight, mean=0.0, std=0.05)
            with torch.no_grad():
                emb.weight[0].zero_()
        width = embedding_dim_default * len(self.categorical)
        self.continuous_layer = None
        if self.continuous:
            proj = continuous_projection or len(self.continuous)
            self.continuous_layer = torch.nn.Sequential(torch.nn.Linear(len(self.continuous), proj), torch.nn.ReLU())
            width += proj
        self.d_output = int(d_output or width)
        self.projection = torch.nn.Linear(width, self.d_output)
        self.mask_embedding = torch.nn.Parameter(torch.randn(self.d_output) * 0.02)

    @classmethod
    def from_schema(
        cls,
        schema: Schema,
        max_sequence_length: int = 20,
        continuous_projection: int | None = 64,
        aggregation: str = "concat",
        d_output: int | None = None,
        masking: str | None = "mlm",
        embedding_dim_default: int = 64,
        **kwargs: Any,
    ) -> TabularSequenceFeatures:
        """From a funnel Schema's list columns tagged ``item_id``/``categorical``/``continuous``."""
        items = [c for c in schema if "item_id" in c.tags]
        if len(items) != 1:
            raise SchemaError(
                f"TabularSequenceFeatures.from_schema: exactly one column must be tagged 'item_id'; found "
                f"{[c.name for c in items]} in {schema.column_names}"
            )
        cats = [c for c in schema if "categorical" in c.tags or "item_id" in c.tags]
        conts = [c.name for c in schema if "continuous" in c.tags and c not in cats]
        for c in [*cats, *(schema[n] for n in conts)]:
            if not c.is_list:
                raise SchemaError(f"TabularSequenceFeatures.from_schema: column {c.name!r} is not a list column")
        categorical = [(c.name, _cardinality(c)) for c in cats]
        return cls(categorical, conts, items[0].name, max_sequence_length, continuous_projection, aggregation,
                   d_output, masking, embedding_dim_default, **kwargs)

    @property
    def columns(self) -> list[str]:
        return [*self.categorical, *self.continuous]

    @property
    def item_cardinality(self) -> int:
        return self.cardinalities[self.item_id]

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        parts = [self.embeddings[_key(n)](inputs[n].long()) for n in self.categorical]
        if self.continuous_layer is not None:
            stacked = torch.stack([inputs[n].float() for n in self.continuous], dim=-1)
            parts.append(self.continuous_layer(stacked))
        return self.projection(torch.cat(parts, dim=-1))


#: instance attributes every torch module has (``training``, ``_modules``, ...)
_MODULE_ATTRIBUTES = frozenset(vars(torch.nn.ModuleDict()))


def _key(name: str) -> str:
    """A column's key in a ``ModuleDict``: one key per name (``.`` is not allowed in a key and used to
    become ``_``, so ``a.b`` and ``a_b`` shared one embedding) that is no attribute of the dict (a
    column named ``items`` or ``values`` failed with "attribute 'items' already exists")."""
    key = name.replace("%", "%25").replace(".", "%2E")
    return key if key and not hasattr(torch.nn.ModuleDict, key) and key not in _MODULE_ATTRIBUTES else "%" + key


class NextItemPredictionTask(torch.nn.Module):
    """Scores every item from a position's hidden state; ``weight_tying`` reuses the item embeddings.

    ``hf_format=True`` (the notebook's argument): in training the model returns a dict with
    ``loss``, ``predictions`` and ``labels``; in eval it returns the (B, n_items) logits.
    """

    def __init__(self, hf_format: bool = True, weight_tying: bool = True, softmax_temperature: float = 1.0) -> None:
        super().__init__()
        self.hf_format = hf_format
        self.weight_tying = weight_tying
        self.softmax_temperature = float(softmax_temperature)
        self.built = False

    def build(self, d_model: int, item_embedding: torch.nn.Embedding) -> None:
        n_items, dim = item_embedding.weight.shape
        self.item_embedding = item_embedding
        self.projection = torch.nn.Linear(d_model, dim) if d_model != dim else torch.nn.Identity()
        if self.weight_tying:
            self.bias = torch.nn.Parameter(torch.zeros(n_items))
        else:
            self.output = torch.nn.Linear(dim, n_items)
        self.built = True

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        h = self.projection(hidden)
        if self.weight_tying:
            logits = torch.nn.functional.linear(h, self.item_embedding.weight, self.bias)
        else:
            logits = self.output(h)
        return logits / self.softmax_temperature


class _BuildArgs(NamedTuple):
    """The arguments every ``build`` takes, for ``_hf_kwargs``."""

    d_model: int
    n_head: int
    n_layer: int
    seq: int | None
    hidden_act: str
    initializer_range: float
    layer_norm_eps: float
    dropout: float


class _TransformerConfig:
    kind = ""
    #: the Hugging Face config and model classes (names in ``transformers``) and the model's arguments
    hf_config_class = ""
    hf_model_class = ""
    hf_model_kwargs: ClassVar[Mapping[str, Any]] = {}
    #: absolute position embeddings (BERT, GPT-2): ``total_seq_length`` is how many; XLNet's attention is relative
    position_embeddings = True

    def __init__(self, hf_config: Any, d_model: int, total_seq_length: int | None) -> None:
        self.hf_config = hf_config
        self.d_model = d_model
        self.total_seq_length = total_seq_length

    @classmethod
    def build(cls, d_model: int, n_head: int, n_layer: int, total_seq_length: int | None = None,
              hidden_act: str = "gelu", initializer_range: float = 0.01, layer_norm_eps: float = 0.03,
              dropout: float = 0.3, **kwargs: Any) -> Self:
        """Transformers4Rec's ``build`` arguments and defaults; other keyword arguments go to the
        Hugging Face config."""
        seq = cls._sequence_length(total_seq_length)
        hf_kwargs = cls._hf_kwargs(_BuildArgs(d_model, n_head, n_layer, seq, hidden_act, initializer_range,
                                              layer_norm_eps, dropout))
        return cls(getattr(_transformers(), cls.hf_config_class)(**hf_kwargs, **kwargs), d_model, seq)

    @classmethod
    def _sequence_length(cls, total_seq_length: Any) -> int | None:
        """``total_seq_length`` checked: a positive integer; ``None`` only for a model without position
        embeddings (it was silently 20, and a longer input then failed inside the transformer)."""
        if total_seq_length is None:
            if cls.position_embeddings:
                raise SchemaError(
                    f"{cls.__name__}.build: total_seq_length is required ({cls.kind} has one position embedding "
                    "per position); pass the max_sequence_length of the TabularSequenceFeatures it reads"
                )
            return None
        if isinstance(total_seq_length, bool) or not isinstance(total_seq_length, (int, np.integer)) \
                or total_seq_length < 1:
            raise SchemaError(f"{cls.__name__}.build: total_seq_length must be a positive integer, got {total_seq_length!r}")
        return int(total_seq_length)

    @staticmethod
    def _hf_kwargs(a: _BuildArgs) -> dict[str, Any]:
        """``build``'s arguments under the Hugging Face config's names (each model names them its own way)."""
        raise NotImplementedError

    def to_torch_model(self, input_module: TabularSequenceFeatures, prediction_task: NextItemPredictionTask) -> SessionModel:
        """The end-to-end model: input block → transformer → next-item head."""
        return SessionModel(input_module, self, prediction_task)

    def body(self) -> torch.nn.Module:
        """The Hugging Face model built from ``hf_config`` (random weights, nothing downloaded)."""
        model = getattr(_transformers(), self.hf_model_class)(self.hf_config, **self.hf_model_kwargs)
        return _HFBody(model, self.kind)


class XLNetConfig(_TransformerConfig):
    """XLNet (relative attention; bidirectional for ``mlm``, causal for ``clm``)."""

    kind = "xlnet"
    position_embeddings = False
    hf_config_class = "XLNetConfig"
    hf_model_class = "XLNetModel"

    @classmethod
    def build(cls, d_model: int, n_head: int, n_layer: int, total_seq_length: int | None = None,
              attn_type: str = "bi", hidden_act: str = "gelu", initializer_range: float = 0.01,
              layer_norm_eps: float = 0.03, dropout: float = 0.3, **kwargs: Any) -> Self:
        """Transformers4Rec's ``XLNetConfig.build`` arguments and defaults (``attn_type`` is XLNet's own)."""
        return super().build(d_model, n_head, n_layer, total_seq_length, hidden_act, initializer_range,
                             layer_norm_eps, dropout, attn_type=attn_type, **kwargs)

    @staticmethod
    def _hf_kwargs(a: _BuildArgs) -> dict[str, Any]:
        return dict(
            d_model=a.d_model, n_head=a.n_head, n_layer=a.n_layer, d_inner=a.d_model * 4,
            ff_activation=a.hidden_act, initializer_range=a.initializer_range,
            layer_norm_eps=a.layer_norm_eps, dropout=a.dropout,
            vocab_size=1, mem_len=None, pad_token_id=None, bos_token_id=None, eos_token_id=None,
        )


class BertConfig(_TransformerConfig):
    """BERT (bidirectional; pair it with ``masking="mlm"``)."""

    kind = "bert"
    hf_config_class = "BertConfig"
    hf_model_class = "BertModel"
    hf_model_kwargs: ClassVar[Mapping[str, Any]] = {"add_pooling_layer": False}

    @staticmethod
    def _hf_kwargs(a: _BuildArgs) -> dict[str, Any]:
        return dict(
            hidden_size=a.d_model, num_attention_heads=a.n_head, num_hidden_layers=a.n_layer,
            intermediate_size=a.d_model * 4, hidden_act=a.hidden_act, initializer_range=a.initializer_range,
            layer_norm_eps=a.layer_norm_eps, hidden_dropout_prob=a.dropout, attention_probs_dropout_prob=a.dropout,
            max_position_embeddings=a.seq + 1, vocab_size=1, pad_token_id=None,
        )


class GPT2Config(_TransformerConfig):
    """GPT-2 (causal; pair it with ``masking="clm"``)."""

    kind = "gpt2"
    hf_config_class = "GPT2Config"
    hf_model_class = "GPT2Model"

    @staticmethod
    def _hf_kwargs(a: _BuildArgs) -> dict[str, Any]:
        return dict(
            n_embd=a.d_model, n_head=a.n_head, n_layer=a.n_layer, n_inner=a.d_model * 4,
            activation_function=a.hidden_act, initializer_range=a.initializer_range,
            layer_norm_epsilon=a.layer_norm_eps, resid_pdrop=a.dropout, embd_pdrop=a.dropout, attn_pdrop=a.dropout,
            n_positions=a.seq + 1, vocab_size=1, bos_token_id=None, eos_token_id=None,
        )


class _HFBody(torch.nn.Module):
    def __init__(self, model: torch.nn.Module, kind: str) -> None:
        super().__init__()
        self.model = model
        self.kind = kind

    def forward(self, x: torch.Tensor, attention_mask: torch.Tensor, causal: bool) -> torch.Tensor:
        if self.kind == "xlnet":
            mask = attention_mask.float()
            if causal:
                seq = x.shape[1]
                perm = torch.triu(torch.ones(seq, seq, device=x.device), diagonal=0)  # 1 = cannot see
                perm = perm.unsqueeze(0).expand(x.shape[0], seq, seq)
                return self.model(inputs_embeds=x, attention_mask=mask, perm_mask=perm, return_dict=False)[0]
            return self.model(inputs_embeds=x, attention_mask=mask, return_dict=False)[0]
        return self.model(inputs_embeds=x, attention_mask=attention_mask.long(), return_dict=False)[0]


class SessionModel(torch.nn.Module):
    """Input block → transformer → next-item head. Eval: ``forward(inputs)`` → (B, n_items) logits,
    ``inputs`` a dict of (B, L) right-padded tensors keyed by column name (item id 0 = padding)."""

    def __init__(self, input_module: TabularSequenceFeatures, config: _TransformerConfig,
                 prediction_task: NextItemPredictionTask) -> None:
        super().__init__()
        if config.d_model != input_module.d_output:
            raise SchemaError(
                f"SessionModel: the input block projects to d_output={input_module.d_output} but the transformer "
                f"has d_model={config.d_model}; pass d_output={config.d_model} to TabularSequenceFeatures.from_schema"
            )
        longest = config.total_seq_length
        if longest is not None and input_module.max_sequence_length > longest:
            raise SchemaError(
                f"SessionModel: the input block pads sessions to max_sequence_length="
                f"{input_module.max_sequence_length} but the {config.kind} transformer was built for "
                f"total_seq_length={longest}; pass total_seq_length={input_module.max_sequence_length} to "
                f"{type(config).__name__}.build"
            )
        self.input_module = input_module
        self.transformer_kind = config.kind
        self.body = config.body()
        self.causal = input_module.masking == "clm" or config.kind == "gpt2"
        self.max_sequence_length = input_module.max_sequence_length
        self.prediction_task = prediction_task
        prediction_task.build(config.d_model, input_module.embeddings[_key(input_module.item_id)])

    @property
    def item_id(self) -> str:
        return self.input_module.item_id

    @property
    def columns(self) -> list[str]:
        return self.input_module.columns

    def _encode(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        return self.body(x, valid, self.causal)

    def forward(self, inputs: dict[str, torch.Tensor]) -> Any:
        if self.training:
            return self.training_step(inputs)
        return self.predict_next(inputs)

    def predict_next(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, n_items) scores of the item following each session."""
        items = inputs[self.item_id]
        x = self.input_module(inputs)
        lengths = (items != 0).sum(dim=1)
        rows = torch.arange(items.shape[0], device=items.device)
        if self.causal:
            valid = items != 0
            h = self._encode(x, valid)
            return self.prediction_task(h[rows, (lengths - 1).clamp(min=0)])
        # masked LM: a [MASK] appended after the last item (a full session drops its first item)
        full = lengths >= items.shape[1]
        x = torch.where(full[:, None, None], torch.roll(x, -1, dims=1), x)
        pos = lengths - full.long()
        positions = torch.arange(items.shape[1], device=items.device)[None, :]
        at_mask = positions == pos[:, None]
        x = torch.where(at_mask[:, :, None], self.input_module.mask_embedding.to(x.dtype), x)
        valid = positions <= pos[:, None]
        h = self._encode(x, valid)
        return self.prediction_task(h[rows, pos])

    def training_step(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        items = inputs[self.item_id]
        valid = items != 0
        x = self.input_module(inputs)
        if self.causal:
            h = self._encode(x, valid)
            logits = self.prediction_task(h[:, :-1])
            labels = items[:, 1:]
        else:
            prob = torch.full(items.shape, self.input_module.mlm_probability, device=items.device)
            masked = (torch.bernoulli(prob).bool() & valid)
            lengths = valid.sum(dim=1)
            rows = torch.arange(items.shape[0], device=items.device)
            masked[rows, (lengths - 1).clamp(min=0)] = True  # the last item: what appended-mask inference predicts
            masked &= valid
            x = torch.where(masked[:, :, None], self.input_module.mask_embedding.to(x.dtype), x)
            h = self._encode(x, valid)
            logits = self.prediction_task(h)
            labels = torch.where(masked, items, torch.zeros_like(items))
        flat_labels = labels.reshape(-1)
        keep = flat_labels != 0
        flat = logits.reshape(-1, logits.shape[-1])[keep]
        loss = torch.nn.functional.cross_entropy(flat, flat_labels[keep])
        return {"loss": loss, "predictions": flat, "labels": flat_labels[keep]}


def _check_ids(model: SessionModel, sessions: Any, where: str) -> None:
    """Every categorical value inside its embedding table (an id past it was an IndexError
    "index out of range in self" from inside torch, naming neither the column nor the id)."""
    for name, card in model.input_module.cardinalities.items():
        col = sessions[name]
        values = np.asarray((col if isinstance(col, Ragged) else Ragged.from_lists(col)).values)
        if values.size and (values.min() < 0 or values.max() >= card):
            bad = values.max() if values.max() >= card else values.min()
            raise SchemaError(
                f"{where}: column {name!r} holds id {bad}, outside its embedding table of cardinality {card} "
                f"(ids 0..{card - 1}, 0 = padding); encode it with the workflow fitted for this schema, or give "
                "the schema the larger cardinality"
            )


def _batches(arrays: dict[str, np.ndarray], batch_size: int, shuffle: bool, seed: int) -> Iterable[dict[str, torch.Tensor]]:
    n = next(iter(arrays.values())).shape[0]
    order = np.random.default_rng(seed).permutation(n) if shuffle else np.arange(n)
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        yield {k: torch.as_tensor(v[idx]) for k, v in arrays.items()}


def fit(model: SessionModel, sessions: Any, epochs: int = 5, batch_size: int = 128, learning_rate: float = 1e-3,
        weight_decay: float = 0.0, seed: int = 0, progress: bool = True) -> list[float]:
    """Train with AdamW on padded sessions (Ragged list columns); returns each epoch's mean loss."""
    from tqdm.auto import tqdm  # noqa: PLC0415

    _check_ids(model, sessions, "fit")
    torch.manual_seed(seed)
    arrays = pad_sessions(sessions, model.columns, model.max_sequence_length)
    opt = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=weight_decay)
    losses: list[float] = []
    n = next(iter(arrays.values())).shape[0]
    model.train()
    for epoch in range(epochs):
        total, count = 0.0, 0
        bar = tqdm(_batches(arrays, batch_size, True, seed + epoch), total=math.ceil(n / batch_size),
                   desc=f"epoch {epoch + 1}/{epochs}", disable=not progress, leave=False)
        for batch in bar:
            out = model(batch)
            opt.zero_grad()
            out["loss"].backward()
            opt.step()
            total += out["loss"].item() * batch[model.item_id].shape[0]
            count += batch[model.item_id].shape[0]
            bar.set_postfix(loss=f"{total / count:.4f}")
        losses.append(total / max(count, 1))
    model.eval()
    return losses


def split_last(sessions: Any, columns: Sequence[str]) -> tuple[dict[str, Ragged], np.ndarray]:
    """Every session without its last item (inputs) and that item (the target), for sessions of ≥ 2 items."""
    first = sessions[columns[0]]
    first = first if isinstance(first, Ragged) else Ragged.from_lists(first)
    off = np.asarray(first.offsets).astype(np.int64)
    lengths = np.diff(off)
    keep = np.flatnonzero(lengths >= 2)
    out: dict[str, Ragged] = {}
    target = None
    for name in columns:
        col = sessions[name]
        col = col if isinstance(col, Ragged) else Ragged.from_lists(col)
        values = np.asarray(col.values)
        if name == columns[0]:
            target = values[off[keep + 1] - 1]
        rows = col.take_rows(keep)
        r_off = np.asarray(rows.offsets)
        drop = r_off[1:] - 1
        mask = np.ones(np.asarray(rows.values).shape[0], bool)
        mask[drop] = False
        out[name] = Ragged.from_lengths(np.asarray(rows.values)[mask], np.diff(r_off) - 1)
    assert target is not None
    return out, target


def _metrics(scores: np.ndarray, target: np.ndarray, ks: Sequence[int]) -> dict[str, float]:
    target_score = scores[np.arange(len(target)), target][:, None]
    rank = (scores > target_score).sum(axis=1)  # 0 = best
    out: dict[str, float] = {}
    for k in ks:
        hit = rank < k
        out[f"recall@{k}"] = float(hit.mean())
        out[f"ndcg@{k}"] = float(np.where(hit, 1.0 / np.log2(rank + 2.0), 0.0).mean())
    return out


def evaluate(model: SessionModel, sessions: Any, ks: Sequence[int] = (10, 20), batch_size: int = 512) -> dict[str, float]:
    """Recall@k and NDCG@k of predicting each session's last item from the items before it,
    ranked among all items (padding id 0 excluded)."""
    _check_ids(model, sessions, "evaluate")
    cols = [model.item_id, *[c for c in model.columns if c != model.item_id]]
    inputs, target = split_last(sessions, cols)
    arrays = pad_sessions(inputs, model.columns, model.max_sequence_length)
    model.eval()
    parts = []
    with torch.inference_mode():
        for batch in _batches(arrays, batch_size, False, 0):
            parts.append(model(batch).float().numpy())
    scores = np.concatenate(parts)
    scores[:, 0] = -np.inf
    return _metrics(scores, target, ks)


def popularity_baseline(train: Any, test: Any, item_id: str, ks: Sequence[int] = (10, 20)) -> dict[str, float]:
    """The same metrics for ranking items by their training-set frequency."""
    train_col = train[item_id] if isinstance(train[item_id], Ragged) else Ragged.from_lists(train[item_id])
    values = np.asarray(train_col.values).astype(np.int64)
    _, target = split_last(test, [item_id])
    counts = np.bincount(values, minlength=int(max(values.max(), target.max())) + 1).astype(np.float64)
    counts[0] = -np.inf
    scores = np.broadcast_to(counts, (len(target), counts.size))
    return _metrics(scores, target, ks)


def export(model: SessionModel, path: str | Path, batch_size: int = 4) -> Path:
    """Write the eval model as TorchScript (``.pt``, traced) or a torch.export program (``.pt2``).

    It takes a dict of (B, max_sequence_length) right-padded tensors keyed by column name and
    returns (B, n_items) logits (the appended-mask prediction for masked-LM models). The file
    is checked against the model on a batch of another size.
    """
    path = Path(path)
    model.eval()
    length = model.max_sequence_length
    rng = np.random.default_rng(0)

    def example(rows: int) -> dict[str, torch.Tensor]:
        lengths = rng.integers(1, length + 1, rows)
        lengths[0] = length
        data: dict[str, Any] = {}
        for name in model.columns:
            if name in model.input_module.cardinalities:
                card = model.input_module.cardinalities[name]
                vals = rng.integers(1, card, int(lengths.sum()))
            else:
                vals = rng.random(int(lengths.sum())).astype(np.float32)
            data[name] = Ragged.from_lengths(vals, lengths)
        return {k: torch.as_tensor(v) for k, v in pad_sessions(data, model.columns, length).items()}

    ex = example(batch_size)
    with torch.no_grad():
        if path.suffix == ".pt2":
            batch = torch.export.Dim("batch", min=1, max=1 << 16)
            program = torch.export.export(model, (ex,), dynamic_shapes=({k: {0: batch} for k in ex},), strict=False)
            torch.export.save(program, str(path))
            check = program.module()
        else:
            traced = torch.jit.trace(model, (ex,), strict=False, check_trace=False)
            traced.save(str(path))
            check = traced
        other = example(batch_size + 3)
        want, got = model(dict(other)), check(dict(other))
    if want.shape != got.shape or not torch.allclose(want, got, rtol=1e-4, atol=1e-5):
        raise RuntimeError(f"export: the {path.suffix} file computes other scores than the model; file a bug")
    return path


def predict_op(model: SessionModel, path: str | Path, top_k: int | None = 20, exclude_seen: bool = False,
               id_mapping: Any = None, **kwargs: Any) -> Any:
    """A :class:`funnel_torch.PredictPyTorch` over the exported file, reading the session's list columns
    padded to the model's fixed length (so no session depends on its batch neighbours)."""
    from funnel_torch.predict import PredictPyTorch  # noqa: PLC0415

    return PredictPyTorch(
        path, max_sequence_length={c: model.max_sequence_length for c in model.columns}, top_k=top_k,
        exclude_seen=exclude_seen, item_id_column=model.item_id if exclude_seen else None, id_mapping=id_mapping,
        truncate="last", **kwargs,
    )
