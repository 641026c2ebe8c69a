// The verdict on a checkpoint: flat minimum, sharp minimum or saddle, from the extreme
// eigenvalues, the trace, the spectral density and an optional learning rate.
#pragma once
#include <string>

namespace hspec {

// Thresholds of the rule (README.md, "Verdict", says why these values).
struct VerdictRule {
  // Saddle when lambda_min < -saddle_ratio * lambda_max: a negative direction whose curvature
  // is at least 5% of the top one is more than the small negative tail that SGD-trained
  // networks keep at their minima.
  double saddle_ratio = 0.05;
  // Without --lr, sharpness is judged at this reference step: GD with step eta is stable
  // along the top eigenvector only when lambda_max * eta / 2 <= 1.
  double reference_lr = 0.1;
};

struct VerdictInput {
  double lambda_max = 0, lambda_min = 0;
  bool have_extremes = false;  // both ends known (top >= 1 and bottom >= 1)
  bool have_trace = false;
  double trace = 0;
  bool have_density = false;
  double negative_fraction = 0;  // density mass on negative eigenvalues
  double lr = 0;                 // 0: not given
};

struct Verdict {
  std::string label;  // "flat minimum", "sharp minimum", "saddle"; "" when undecidable
  std::string rule;   // the rule that decided, with its numbers
  double lambda_max = 0, lambda_min = 0;
  double ratio = 0;      // |lambda_min| / lambda_max (lambda_max > 0)
  double stability = 0;  // lambda_max * lr / 2 with the lr used
  double lr = 0;         // the step judged: --lr, else VerdictRule::reference_lr
  bool lr_given = false;
  bool have_trace = false, have_density = false;
  double trace = 0, negative_fraction = 0;
};

Verdict decide_verdict(const VerdictInput& in, const VerdictRule& rule = {});

}  // namespace hspec
