"""A cvxpy solver interface for the bidder's small linear programs: HiGHS, kept between solves.

cvxpy's own HiGHS interface builds a new ``highspy.Highs`` instance, a new model object
and its options at every solve, and runs HiGHS's presolve. For the MPC's LP (a few hundred
to a few thousand bounded columns, a few rows) that set-up costs three times the solve
itself. :class:`PersistentHighs` is the same interface (cvxpy's problem data in, cvxpy's
solution out, so the problem stays an ordinary cvxpy problem and ``problem.solve`` drives
it), with one HiGHS instance per interface object, reused from one solve to the next,
and presolve off.

With ``warm_start=True`` a solve starts the simplex from the basis of the last one (the
MPC's LP has the same shape every hour and a similar optimum: at 1,000 arms a warm solve
takes 18 ms against 311 cold). :meth:`PersistentHighs.forget` drops that basis; the
bidder calls it at every new campaign, so a reused bidder plans exactly as a new one.

An instance is not thread-safe; :class:`bidder.mpc.MPCBidder` keeps one of its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

import numpy as np
from cvxpy.error import SolverError
from cvxpy.lin_ops.lin_op import CONSTANT_ID
from cvxpy.reductions.solvers.conic_solvers.highs_conif import HIGHS, dims_to_solver_dict
from cvxpy.settings import (
    BOOL_IDX,
    DIMS,
    EQ_DIM,
    INT_IDX,
    LOWER_BOUNDS,
    SOLVER_ERROR,
    UPPER_BOUNDS,
    A,
    B,
    C,
)

#: The name the bidder's configuration uses for this interface.
NAME = "HIGHS"


class PersistentHighs(HIGHS):
    """cvxpy's HiGHS interface with one HiGHS instance kept between solves, presolve off,
    for continuous LPs."""

    MIP_CAPABLE = False

    def __init__(self) -> None:
        self._highs = None
        self._basis = None  # the last optimal basis, for a warm start

    def forget(self) -> None:
        """Drop the last basis: the next solve starts cold."""
        self._basis = None

    def name(self) -> str:
        # cvxpy requires a custom interface to have a name of its own.
        return "HIGHS_PERSISTENT"

    def _instance(self):
        if self._highs is None:
            from highspy import _core

            # The extension's own class: ``highspy.Highs`` adds Python callbacks and prints
            # HiGHS's banner on standard output when it is made, before any option can
            # silence it, and standard output is the MCP server's channel and the CLI's
            # JSON. A test checks that a decision prints nothing.
            highs = _core._Highs()
            highs.setOptionValue("output_flag", False)
            highs.setOptionValue("presolve", "off")
            highs.setOptionValue("solver", "simplex")
            self._highs = highs
        return self._highs

    def solve_lp(
        self,
        cost: np.ndarray,
        matrix: tuple[np.ndarray, np.ndarray, np.ndarray],
        rows_upper: np.ndarray,
        n_equalities: int,
        col_lower: np.ndarray,
        col_upper: np.ndarray,
        warm_start: bool,
    ) -> dict:
        """Minimise ``cost @ x`` subject to ``A x = b`` on the first ``n_equalities`` rows,
        ``A x <= b`` on the others and the column bounds. ``matrix`` is ``A`` by columns,
        as ``(start, index, value)``; ``rows_upper`` is ``b``. Returns HiGHS's results
        (``model_status`` by name, the solution's copies, ``info`` and ``run_time``)."""
        import highspy as hp

        highs = self._instance()
        inf = hp.kHighsInf
        start, index, value = matrix
        n_rows, n_cols = len(rows_upper), len(cost)
        lp = hp.HighsLp()
        lp.num_col_, lp.num_row_ = n_cols, n_rows
        lp.col_cost_ = cost
        lp.col_lower_, lp.col_upper_ = col_lower, col_upper
        lp.row_lower_ = np.concatenate(
            [rows_upper[:n_equalities], np.full(n_rows - n_equalities, -inf)]
        )
        lp.row_upper_ = rows_upper
        lp.a_matrix_.format_ = hp.MatrixFormat.kColwise
        lp.a_matrix_.start_ = start
        lp.a_matrix_.index_ = index
        lp.a_matrix_.value_ = value
        highs.clearSolver()  # no basis or solution from the last solve...
        highs.passModel(lp)
        basis = self._basis if warm_start else None
        if (
            basis is not None
            and len(basis.col_status) == n_cols
            and len(basis.row_status) == n_rows
        ):
            highs.setBasis(basis)  # ...unless asked to start from the last one's basis
        try:
            highs.run()
        except ValueError as err:
            raise SolverError(err) from err
        status = highs.getModelStatus().name
        self._basis = highs.getBasis() if status == "kOptimal" else None
        solution = highs.getSolution()
        results = {
            # Copies: the instance's own arrays change at the next solve.
            "solution": SimpleNamespace(
                col_value=np.array(solution.col_value), row_dual=np.array(solution.row_dual)
            ),
            "info": highs.getInfo(),
            "model_status": status,
            "run_time": highs.getRunTime(),
        }
        if status == "kInfeasible":
            results["dual_ray"] = highs.getDualRay()
        return results

    def solve_via_data(self, data, warm_start, verbose, solver_opts, solver_cache=None):
        if data[BOOL_IDX] or data[INT_IDX]:
            raise SolverError("PersistentHighs solves continuous LPs only")
        matrix = data[A].tocsc()
        return self.solve_lp(
            np.asarray(data[C], dtype=float),
            (matrix.indptr, matrix.indices, matrix.data),
            np.asarray(data[B], dtype=float),
            dims_to_solver_dict(data[DIMS])[EQ_DIM],
            *column_bounds(data, matrix.shape[1]),
            warm_start,
        )


def column_bounds(data: dict, n_cols: int) -> tuple[np.ndarray, np.ndarray]:
    """The columns' lower and upper bounds in cvxpy's problem data (infinite where the
    data hold none)."""
    import highspy as hp

    low, high = data[LOWER_BOUNDS], data[UPPER_BOUNDS]
    return (
        np.full(n_cols, -hp.kHighsInf) if low is None else np.asarray(low, dtype=float),
        np.full(n_cols, hp.kHighsInf) if high is None else np.asarray(high, dtype=float),
    )


class CompiledLP:
    """A DPP linear program compiled once by cvxpy, re-solved on :class:`PersistentHighs`
    from its Parameters' current values without the rest of ``problem.solve``.

    cvxpy compiles the problem (``get_problem_data``) into an affine map from the
    Parameters' values to the solver's data. ``problem.solve`` applies that map through
    general sparse-matrix code, then unpacks the solution through every reduction of the
    chain; for the MPC's LP at 20 arms those steps cost twice the HiGHS solve. Here the
    map is applied as two sparse products into the compiled sparsity pattern, and the
    named variables and constraint duals are read straight from HiGHS's columns and
    rows, at the offsets the compilation gave them. The data are the same numbers as
    ``problem.solve`` would pass; a test checks that the two give the same plans.
    """

    def __init__(self, problem, highs: PersistentHighs) -> None:
        from cvxpy.settings import PARAM_PROB

        data, _, inverse = problem.get_problem_data(solver=highs, enforce_dpp=True)
        if data[BOOL_IDX] or data[INT_IDX]:
            raise SolverError("CompiledLP solves continuous LPs only")
        program = data[PARAM_PROB]
        self.program, self.highs = program, highs
        self.n_equalities = dims_to_solver_dict(data[DIMS])[EQ_DIM]
        n_cols = program.x.size
        self.col_lower, self.col_upper = column_bounds(data, n_cols)
        program.reduced_A.cache(False)
        self._tensor = program.reduced_A.reduced_mat
        index, start, (n_rows, n_stuffed) = program.reduced_A.problem_data_index
        if n_stuffed != n_cols + 1:
            raise SolverError("unexpected compiled shape: solve through problem.solve")
        split = int(start[n_cols])  # the last stuffed column is the right-hand side
        self._split, self._start = split, np.asarray(start[: n_cols + 1])
        self._index, self._rhs_rows = np.asarray(index[:split]), np.asarray(index[split:])
        self._n_rows = n_rows
        self._columns = {v.id: (program.var_id_to_col[v.id], v.size) for v in problem.variables()}
        # Rows of each constraint: equalities, then inequalities, in the solver's order.
        solver_data = inverse[-1]
        rows, offset = {}, 0
        for constraint in solver_data[highs.EQ_CONSTR] + solver_data[highs.NEQ_CONSTR]:
            rows[constraint.id] = (offset, constraint.size)
            offset += constraint.size
        self._rows = rows
        # Each Parameter's slot in cvxpy's parameter vector (the last entry is the constant).
        self._slots = {
            p.id: (program.param_id_to_col[p.id], program.param_id_to_size[p.id])
            for p in problem.parameters()
        }
        self._constant = program.param_id_to_col[CONSTANT_ID]

    def solve(self, values: Mapping[Any, np.ndarray], warm_start: bool) -> str:
        """Solve with ``values`` (every Parameter of the problem to its value, which the
        Parameters themselves need not hold); cvxpy's name of the status."""
        program = self.program
        if len(values) != len(self._slots):
            raise SolverError("CompiledLP.solve needs a value for every Parameter")
        vector = np.zeros(program.total_param_size + 1)
        vector[self._constant] = 1.0
        for parameter, value in values.items():
            slot = self._slots.get(parameter.id)
            if slot is None:
                raise SolverError(f"parameter {parameter.name()} is not in the problem")
            col, size = slot
            flat = np.asarray(value, dtype=float).ravel(order="F")  # cvxpy's column order
            if flat.size != size:
                raise SolverError(f"parameter {parameter.name()}: {flat.size} values for {size}")
            vector[col : col + size] = flat
        cost = np.asarray(program.q @ vector, dtype=float)[:-1]
        flat = np.asarray(self._tensor @ vector, dtype=float)
        rhs = np.zeros(self._n_rows)
        rhs[self._rhs_rows] = flat[self._split :]
        matrix = (self._start, self._index, -flat[: self._split])  # the solver's A is -A
        self._results = self.highs.solve_lp(
            cost, matrix, rhs, self.n_equalities, self.col_lower, self.col_upper, warm_start
        )
        return self.highs.STATUS_MAP.get(self._results["model_status"], SOLVER_ERROR)

    def value(self, variable) -> np.ndarray:
        """A variable's value in the last solution."""
        offset, size = self._columns[variable.id]
        return self._results["solution"].col_value[offset : offset + size]

    def dual(self, constraint) -> np.ndarray:
        """A constraint's dual value in the last solution (cvxpy's sign convention)."""
        offset, size = self._rows[constraint.id]
        return -self._results["solution"].row_dual[offset : offset + size]
