"""Network × accelerator co-design: the three ways a ``<space>+hw(<device>)`` job searches both halves.

``[codesign] mode`` (or ``search(..., codesign=...)``):

* ``joint``: the searcher moves the whole genome (network settings and ``hw_*`` knobs) at once.
* ``nested``: the searcher moves the network only; each network it proposes is paired with the
  accelerator that minimises the job's *scalarised hardware cost* (:class:`TemplatePicker`), found by
  an exhaustive inner search over every feasible template (vectorised: ``TemplateBlockTable``).
* ``sequential``: first search the network on the device's default template (job ``<name>.network``,
  the same budget), then pick each front network's best accelerator as ``nested`` does and evaluate
  those pairs in the job itself (its accuracy is the network's: with the ``accuracy`` metric it is read
  back from the checkpoint's evaluation cache; a user function is called again).

The scalarised hardware cost of a template for one network is ``Σ_j log(m_j(template) /
m_j(default template))`` over the job's objectives that are metrics of the searched device (each
signed by its direction); with none, latency × energy (the energy-delay product). Infeasible templates
(DSP or BRAM over the device's) are never picked; the job's own constraints are not looked at when
picking (a pair that breaks one is rejected like any other trial). Objectives the analytic model does
not table (e.g. ``zigzag_latency_ms``) are not part of the cost. All three modes search the same
budget of networks (the sequential mode then evaluates its front's pairs besides, see above) and
record every trial as a (network, accelerator) pair.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from nas._config_io import ConfigError
from nas.jobs.evaluator import Evaluator
from nas.searchers import CheapObjectives
from search_spaces import AcceleratorSpace, ArchConfig

MODES = ("joint", "nested", "sequential")
_MEMO_LIMIT = 200_000  # networks whose picked accelerator is remembered
_DEFAULT_COST = ("latency_ms", "energy_mj")


def check_mode(mode: str, space) -> None:
    """``ConfigError`` unless ``mode`` is known and fits ``space``."""
    if mode not in MODES:
        raise ConfigError(f"[codesign] mode must be one of {list(MODES)}, got {mode!r}")
    if mode != "joint" and not isinstance(space, AcceleratorSpace):
        raise ConfigError(f"[codesign] mode = {mode!r} needs a co-design space such as '{space.name}+hw(zcu104)'; "
                          f"[search] space = {space.name!r}")


def check_resumed_mode(job, extra) -> None:
    """``ConfigError`` when a job started in one co-design mode is resumed in another."""
    stored = job.job_config.extra.get("codesign")
    wanted = (extra or {}).get("codesign")
    if stored != wanted:
        raise ConfigError(f"job {job.name!r} was searched with [codesign] mode = {stored!r}, now {wanted!r}; "
                          "choose a new job name")


class TemplatePicker:
    """The best feasible accelerator template of a network for an evaluator's hardware objectives."""

    def __init__(self, evaluator: Evaluator) -> None:
        space = evaluator.space
        if not isinstance(space, AcceleratorSpace):
            raise ValueError(f"picking accelerators needs a co-design space, got {space.name!r}")
        self.space, self.catalog = space, evaluator.catalog
        device = space.device
        from hw_profiles.template_table import TABLED

        terms = [(o.fn.rpartition(".")[2], o.sign) for o in evaluator.objectives  # the analytic model's
                 if isinstance(o.fn, str) and o.fn.rpartition(".")[0] == device and o.fn.rpartition(".")[2] in TABLED]
        self.terms = terms or [(metric, 1.0) for metric in _DEFAULT_COST]
        self.templates = space.templates()
        self._n_base = len(space.base.params)
        tables = {m: self.catalog.block_table(f"{device}.{m}") for m in {*dict(self.terms), "feasible"}}
        self._tables = tables if all(t is not None for t in tables.values()) else None
        self.picked: dict[str, ArchConfig] = {}

    @property
    def vectorised(self) -> bool:
        """Whether :meth:`best_index` works on codes (every metric has a joint table)."""
        return self._tables is not None

    def best_index(self, network_codes: np.ndarray) -> int:
        """The template index (in ``space.templates()`` order) :meth:`pick` chooses, from a network's
        canonical codes (needs :attr:`vectorised`)."""
        return self._best(self._scalarised({m: t.over_templates(network_codes) for m, t in self._tables.items()}))

    def _best(self, cost: np.ndarray) -> int:
        """The cheapest feasible template's index; the device's default when none is feasible."""
        return int(np.argmin(cost)) if np.isfinite(cost).any() else self.templates.index(self.space.default_template)

    def _metrics(self, network: ArchConfig) -> dict[str, np.ndarray]:
        """``{metric: (T,)}`` of ``network`` on every template."""
        if self._tables is not None:
            codes = self.space.base.encode(network)
            return {m: t.over_templates(codes) for m, t in self._tables.items()}
        models, rows = self.catalog.templates(), self.space.base.layers(network)
        per = [models.model_for(t).metrics(rows) for t in self.templates]
        return {m: np.array([p[m].value for p in per]) for m in {*dict(self.terms), "feasible"}}

    def cost(self, network: ArchConfig) -> np.ndarray:
        """``(T,)`` scalarised hardware cost of ``network`` per template (inf where infeasible)."""
        return self._scalarised(self._metrics(network))

    def _scalarised(self, values: dict[str, np.ndarray]) -> np.ndarray:
        default = self.templates.index(self.space.default_template)
        total = np.zeros(len(self.templates))
        for metric, sign in self.terms:
            v = np.maximum(values[metric], 1e-300)
            total += sign * np.log(v / v[default])
        return np.where(values["feasible"] >= 1.0, total, np.inf)

    def pick(self, network: ArchConfig) -> ArchConfig:
        """The joint arch of ``network`` (a base arch) on its cheapest feasible template; the device's
        default template when none is feasible (the device constraints then reject it)."""
        network = self.space.base.validate(network)
        found = self.picked.get(network.arch_id)
        if found is None:
            best = self._best(self.cost(network))
            if len(self.picked) >= _MEMO_LIMIT:
                self.picked.clear()
            found = self.picked[network.arch_id] = self.space.combine(network, self.templates[best])
        return found


class NestedSearcher:
    """A searcher over the network space whose proposals are paired with accelerators by ``pair``
    (``TemplatePicker.pick``, or the default template for the sequential baseline's first stage).
    It keeps the ask/tell contract of ``nas.searchers.Searcher`` towards the loop: archs of the joint
    space in, their networks passed to ``inner``."""

    def __init__(self, inner, space: AcceleratorSpace, pair) -> None:
        self.inner, self.space, self.pair = inner, space, pair
        self.name = f"nested-{inner.name}"
        self.n_objectives, self.n_constraints = inner.n_objectives, inner.n_constraints

    def ask(self, n: int) -> list[ArchConfig]:
        return [self.pair(network) for network in self.inner.ask(n)]

    def tell(self, archs: Sequence[ArchConfig], objectives, constraints=None) -> None:
        self.inner.tell([self.space.network(a) for a in archs], objectives, constraints)

    def warm_start(self, archs: Sequence[ArchConfig], objectives, constraints=None) -> None:
        self.inner.warm_start([self.space.network(a) for a in archs], objectives, constraints)

    @property
    def n_asked(self) -> int:
        return self.inner.n_asked

    @property
    def n_told(self) -> int:
        return self.inner.n_told

    @property
    def pending(self) -> tuple[ArchConfig, ...]:
        """The pending archs, each on the accelerator it was paired with."""
        return tuple(self.pair(network) for network in self.inner.pending)

    def is_seen(self, arch: ArchConfig) -> bool:
        """Whether ``arch``'s network was asked, told or warm-started (its accelerator is the pairing's)."""
        return self.inner.is_seen(self.space.network(arch))

    def report(self):
        return self.inner.report()


def nested_searcher(algorithm: str, evaluator: Evaluator, seed: int, *, default_template: bool = False):
    """``algorithm`` over the network part of the evaluator's co-design space, each proposal paired
    with its best accelerator (or, with ``default_template``, the device's own)."""
    from nas.jobs.objectives import ObjectiveError
    from nas.searchers import SearcherError, create_searcher, searcher_uses_cheap

    space = evaluator.space
    picker = None if default_template else TemplatePicker(evaluator)
    pair = (lambda network: space.combine(network)) if picker is None else picker.pick
    cheap = None
    if searcher_uses_cheap(algorithm):
        if picker is not None and not picker.vectorised:
            raise ObjectiveError(f"algorithm {algorithm!r} in nested mode would pick an accelerator for each of its "
                                 f"thousands of inner candidates, and {space.name!r} has no vectorised FPGA table (only "
                                 "plain MobileNetV3 networks do); use nsga2 or another searcher, or mode = \"joint\"")
        cheap = _network_cheap(evaluator.cheap_objectives(), space, pair, picker)
    try:
        inner = create_searcher(algorithm, space=space.base, n_objectives=len(evaluator.objectives),
                                n_constraints=len(evaluator.constraints), seed=seed, cheap=cheap)
    except SearcherError as err:
        raise ObjectiveError(f"algorithm {algorithm!r}: {err}") from None
    return NestedSearcher(inner, space, pair)


def _network_cheap(joint: CheapObjectives, space: AcceleratorSpace, pair, picker: TemplatePicker | None):
    """The joint cheap objectives offered to a searcher of the network part: each network is costed on
    the accelerator ``pair`` gives it; vectorised over network codes where the joint ones are."""
    evaluate = lambda networks: joint.evaluate([pair(n) for n in networks])  # noqa: E731
    if joint.evaluate_codes is None or (picker is not None and not picker.vectorised):
        return CheapObjectives(indices=joint.indices, evaluate=evaluate)
    n = len(space.base.params)
    hw_codes = np.array([[space.params[n + j].index(t[k]) for j, k in enumerate(space.knobs)]
                         for t in space.templates()], dtype=np.int64)
    default = space.templates().index(space.default_template)
    memo: dict[bytes, int] = {}

    def evaluate_codes(codes: np.ndarray):
        codes = np.asarray(codes, dtype=np.int64)
        if picker is None:
            index = np.full(len(codes), default)
        else:
            if len(memo) >= _MEMO_LIMIT:
                memo.clear()
            index = np.array([memo[row.tobytes()] if row.tobytes() in memo else
                              memo.setdefault(row.tobytes(), picker.best_index(row)) for row in codes])
        return joint.evaluate_codes(np.hstack([codes, hw_codes[index]]))

    def canonical(codes: np.ndarray) -> np.ndarray:
        return joint.canonical_codes(np.hstack([codes, np.zeros((len(codes), len(space.knobs)), np.int64)]))[:, :n]

    return CheapObjectives(indices=joint.indices, evaluate=evaluate, evaluate_codes=evaluate_codes,
                           canonical_codes=canonical)


def sequential_codesign(space: AcceleratorSpace, objectives, constraints=(), *, algorithm: str, budget: int,
                        seed: int, job: str | None = None, requested: str | None = None, **search_kwargs):
    """The sequential mode (module doc): the network job on the default template, then its front's
    networks on their best accelerators, evaluated in job ``job``. Returns that job's ``SearchResult``.
    ``requested``: the name the caller asked for (``auto``: a resumed job keeps its stored searcher)."""
    from nas.jobs.lease import driver_lease
    from nas.jobs.search import kept_algorithm, open_job

    name = job or f"{space.name}-{algorithm}-seed{seed}-sequential"
    evaluator = Evaluator(space, objectives, constraints, catalog=search_kwargs.get("catalog"))
    extra = {**(search_kwargs.get("config_extra") or {}), "codesign": "sequential", "network_job": f"{name}.network"}
    the_job, resumed = open_job(name, space, evaluator, algorithm=algorithm, budget=1, seed=seed,
                                storage=search_kwargs.get("storage"), extra=extra, resumed_flag=True)
    if resumed:  # before the first stage runs: a job of another mode is refused
        check_resumed_mode(the_job, extra)
        algorithm = kept_algorithm(the_job, requested or algorithm, algorithm)
    with driver_lease(the_job):
        return _sequential_stages(the_job, space, evaluator, objectives, constraints, algorithm=algorithm,
                                  budget=budget, seed=seed, name=name, **search_kwargs)


def _sequential_stages(the_job, space, evaluator, objectives, constraints, *, algorithm, budget, seed, name,
                       **search_kwargs):
    """The two stages of :func:`sequential_codesign`, run while holding the outer job's lease."""
    from nas.jobs.results import SearchResult
    from nas.jobs.search import DEFAULT_WAIT_TIMEOUT_S, search, through_the_job

    first = search(space, objectives, constraints, algorithm=algorithm, budget=budget, seed=seed,
                   job=f"{name}.network", codesign="sequential", _default_template=True, **search_kwargs)
    picker = TemplatePicker(evaluator)
    archs = [picker.pick(space.network(space.parse(dict(r.arch)))) for r in first.front_records()]
    the_job.update_config(budget=max(1, len(archs)))
    if archs:
        through_the_job(the_job, evaluator, evaluate_locally=search_kwargs.get("evaluate_locally", True),
                        timeout_s=search_kwargs.get("wait_timeout_s", DEFAULT_WAIT_TIMEOUT_S))(archs)
    the_job.set_status("done")
    return SearchResult(the_job, evaluator.objectives, space=space)
