"""Teaching tools that show backprop the way the lectures explain it.

Each reads the same per-edge local derivatives `backward()` uses (`_prev`, `_local`) and
computes on private numbers, so no `.grad` changes:

- `narrate(root)`: every step of the backward pass, with the numbers it moves.
- `paths(root, x)`: d root / d x as the sum over paths of products of local derivatives.
- `forward_mode(root, x)`: tangents d node / d x next to adjoints d root / d node.
- `mode_costs(outputs, inputs)`: multiply-adds for a full Jacobian, forward vs reverse.
- `backprop_frames(root)`: one graph picture per backward step, an HTML player in Jupyter.
- `misconceptions(root)`: the common wrong versions of backward next to the right one.
- `quiz(root, nodes)`: a picture with gradients hidden, answers checked with hints;
  `check_answer(what, yours, engine)` and `answered(...)`, the exercise checks that say
  what was wrong.
- `symbolic(root)`, `expression_swell()`: values and gradients as SymPy formulas (optional
  SymPy), and what writing the derivative out as a formula costs.
- `gradcheck_report(f, inputs)`: central differences next to backward, per input (the one in
  `tinygrad_scalar.gradcheck`, re-exported here).

Nodes are named by their label, else `n<i>` with i the node's position in
`topological_order(root)` (inputs first), the numbering the graph drawings use.
"""
from ..gradcheck import GradcheckReport, gradcheck_report
from .frames import Frames, backprop_frames
from .modes import CostTable, ForwardTable, forward_mode, mode_costs
from .narration import EdgeStep, Narration, Step, narrate
from .misconceptions import Misconceptions, Variant, misconceptions
from .pathsum import Path, PathSum, paths
from .quiz import Quiz, QuizResult, WrongAnswer, answered, check_answer, quiz
from .symbolic import SwellTable, SymbolicTable, expression_swell, symbolic

__all__ = ["narrate", "Narration", "Step", "EdgeStep", "paths", "PathSum", "Path",
           "forward_mode", "ForwardTable", "mode_costs", "CostTable", "backprop_frames", "Frames",
           "gradcheck_report", "GradcheckReport", "misconceptions", "Misconceptions", "Variant",
           "quiz", "Quiz", "QuizResult", "check_answer", "answered", "WrongAnswer", "symbolic",
           "SymbolicTable", "expression_swell", "SwellTable"]
