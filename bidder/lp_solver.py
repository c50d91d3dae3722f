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

from types import SimpleNamespace

import numpy as np
from cvxpy.error import SolverError
from cvxpy.reductions.solvers.conic_solvers.highs_conif import HIGHS, dims_to_solver_dict
from cvxpy.settings import (
    BOOL_IDX,
    DIMS,
    EQ_DIM,
    INT_IDX,
    LEQ_DIM,
    LOWER_BOUNDS,
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

    def solve_via_data(self, data, warm_start, verbose, solver_opts, solver_cache=None):
        import highspy as hp

        if data[BOOL_IDX] or data[INT_IDX]:
            raise SolverError("PersistentHighs solves continuous LPs only")
        highs = self._instance()
        inf = hp.kHighsInf
        dims = dims_to_solver_dict(data[DIMS])
        matrix = data[A].tocsc()
        n_rows, n_cols = matrix.shape
        eq, leq = dims[EQ_DIM], dims[LEQ_DIM]
        upper_rows = np.asarray(data[B], dtype=float)
        lower_rows = np.concatenate([upper_rows[:eq], np.full(leq, -inf)])
        lp = hp.HighsLp()
        lp.num_col_, lp.num_row_ = n_cols, n_rows
        lp.col_cost_ = np.asarray(data[C], dtype=float)
        low, high = data[LOWER_BOUNDS], data[UPPER_BOUNDS]
        lp.col_lower_ = np.full(n_cols, -inf) if low is None else np.asarray(low, dtype=float)
        lp.col_upper_ = np.full(n_cols, inf) if high is None else np.asarray(high, dtype=float)
        lp.row_lower_, lp.row_upper_ = lower_rows, upper_rows
        lp.a_matrix_.format_ = hp.MatrixFormat.kColwise
        lp.a_matrix_.start_ = matrix.indptr
        lp.a_matrix_.index_ = matrix.indices
        lp.a_matrix_.value_ = matrix.data
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
