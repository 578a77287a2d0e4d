"""Gatys et al.'s method: the costs, their constants, the objective and its minimisation (the teaching core).

    costs.py         content cost, Gram matrix, style cost, total variation, with gradients
    presets.py       the constants published implementations put in front of the costs
    objective.py     J = alpha J_content + beta J_style (+ TV) and its gradient
    adam.py          Adam
    lbfgs.py         L-BFGS, the two-loop recursion
    line_search.py   the strong Wolfe line search
    optimize.py      minimize(): drives either optimiser, resumable
    color.py         colour preservation (luminance-only transfer, histogram matching)

Imports nothing from ``transfer``, ``inside``, ``files`` or ``cli``.
"""
